"""The read path's caches answer exactly like fresh reads; older segment layouts still read."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
from factories import make_batch, make_result

from core.store import BacktestStore
from core.store import _details


def _versions_store(path) -> tuple[BacktestStore, list[tuple]]:
    """Three symbols x three periods, each stored twice (latest wins), one latest deleted."""
    store = BacktestStore(path)
    keys = [(s, "rsi_meanrev", {"period": p}, None) for s in ("AAA", "BBB", "CCC")
            for p in (5, 9, 14)]
    for seed in (1, 2):
        store.store_many([make_result(symbol=s, params=dict(params), seed=seed * 100 + i,
                                      curve=False, trades=0)
                          for i, (s, _, params, _) in enumerate(keys)])
    latest = store.get_stats("BBB", "rsi_meanrev", {"period": 9})["backtest_id"]
    store.delete_backtest(latest)
    return store, keys


def test_bulk_keys_reusing_one_params_object_match_single_lookups(store):
    params = {"period": 9}
    store.store_many([make_result(symbol=s, params=params, seed=i, curve=False, trades=0)
                      for i, s in enumerate(("AAA", "BBB", "CCC"))])
    shared = [(s, "rsi_meanrev", params, None) for s in ("AAA", "BBB", "NOPE", "CCC")]
    mixed = shared + [("AAA", "rsi_meanrev", {"period": 5}, None)]
    table = store.bulk_get_stats(mixed)
    expected = [store.get_stats(*key)["backtest_id"] for key in shared if key[0] != "NOPE"]
    assert list(table["backtest_id"]) == expected  # unknown keys (NOPE, period 5) left out


def test_details_from_cached_chunks_equal_a_fresh_read_and_stay_independent(tmp_path):
    store = BacktestStore(tmp_path / "d.zarr")
    results = [make_result(symbol=f"S{i}", seed=i, trades=2 + i % 3) for i in range(6)]
    ids = store.store_many(results)
    first = [store.get_detailed_results(b) for b in ids]
    first[0]["equity"].iloc[0] = -1.0  # a caller's change never reaches the cache
    first[0]["trades"].loc[0, "pnl"] = -1.0
    again = [store.get_detailed_results(b) for b in ids]
    fresh = BacktestStore(tmp_path / "d.zarr", mode="r")
    fresh._chunks = _details.ChunkCache(0)  # nothing kept: every read decodes
    for bid, result, cached in zip(ids, results, again):
        plain = fresh.get_detailed_results(bid)
        pd.testing.assert_series_equal(cached["equity"], plain["equity"])
        pd.testing.assert_frame_equal(cached["trades"], plain["trades"])
        assert np.array_equal(cached["equity"].to_numpy(), result.equity.to_numpy())


def test_chunk_cache_is_bounded_by_bytes_dropping_least_recent():
    cache = _details.ChunkCache(max_bytes=3 * 800)
    for k in range(3):
        cache.put(("seg", "eq_values", k), np.zeros(100))
    assert cache.get(("seg", "eq_values", 0)) is not None  # now most recently used
    cache.put(("seg", "eq_values", 3), np.zeros(100))
    assert cache.get(("seg", "eq_values", 1)) is None
    assert all(cache.get(("seg", "eq_values", k)) is not None for k in (0, 2, 3))


def _slash_keyed(store_path) -> int:
    """Rewrite every segment array to "/" chunk keys (``c/0/0``), as earlier writers laid
    them out; returns how many chunk files moved."""
    moved = 0
    for document in (store_path / "segments").glob("*/*/zarr.json"):
        meta = json.loads(document.read_text())
        meta["chunk_key_encoding"]["configuration"]["separator"] = "/"
        document.write_text(json.dumps(meta))
        for chunk in list(document.parent.glob("c.*")):
            target = document.parent.joinpath(*chunk.name.split("."))
            target.parent.mkdir(parents=True, exist_ok=True)
            chunk.rename(target)
            moved += 1
    return moved


def test_segments_with_slash_chunk_keys_still_read_and_compact(tmp_path):
    path = tmp_path / "old.zarr"
    store = BacktestStore(path)
    ids = store.store_many([make_result(symbol=f"S{i}", seed=i, trades=1 + i % 3)
                            for i in range(5)])
    ids += store.store_many(make_batch(["GOOG"], [5, 6, 7], seed=3, trades_per_row=2))
    expected_stats = store.get_all_stats()
    expected = [store.get_detailed_results(b) for b in ids]
    store.close()
    assert _slash_keyed(path) > 20 and not list(path.glob("segments/*/*/c.*"))

    old = BacktestStore(path)
    pd.testing.assert_frame_equal(old.get_all_stats(), expected_stats)
    for bid, want in zip(ids, expected):
        got = old.get_detailed_results(bid)
        pd.testing.assert_frame_equal(got["trades"], want["trades"])
        if want["equity"] is None:
            assert got["equity"] is None
        else:
            pd.testing.assert_series_equal(got["equity"], want["equity"])
    assert old.verify()["ok"]
    old.compact(grace_s=0)  # rewrites with "." keys; nothing else reads the old ones
    assert list(path.glob("segments/*/*/c.*")) and not list(path.glob("segments/*/*/c/"))
    pd.testing.assert_frame_equal(old.get_all_stats(), expected_stats)
    assert old.verify()["ok"]
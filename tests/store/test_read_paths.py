"""The read path's shortcuts answer exactly like the plain paths they stand in for."""
from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd
import pytest
from factories import make_batch, make_result

from core.store import BacktestStore
from core.store import _details, _frames, _index


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


def test_scanned_lookups_equal_sorted_index_lookups(tmp_path, monkeypatch):
    store, keys = _versions_store(tmp_path / "s.zarr")
    monkeypatch.setattr(_index, "_SCANS_BEFORE_SORT", 10_000)
    scanning = BacktestStore(tmp_path / "s.zarr", mode="r")
    scanned = [scanning.get_stats(*key) for key in keys]
    assert scanning._index._key_index is None  # every answer came from a scan
    monkeypatch.setattr(_index, "_SCANS_BEFORE_SORT", 0)
    sorting = BacktestStore(tmp_path / "s.zarr", mode="r")
    indexed = [sorting.get_stats(*key) for key in keys]
    assert sorting._index._key_index is not None
    assert [s["backtest_id"] for s in scanned] == [s["backtest_id"] for s in indexed]
    deleted = keys.index(("BBB", "rsi_meanrev", {"period": 9}, None))
    versions = store.history(*keys[deleted])
    assert scanned[deleted]["backtest_id"] == versions["backtest_id"].iloc[-1]  # older version
    assert scanning.get_stats("ZZZ", "rsi_meanrev", {"period": 5}) is None


def test_bulk_keys_reusing_one_params_object_match_single_lookups(store):
    params = {"period": 9}
    store.store_many([make_result(symbol=s, params=params, seed=i, curve=False, trades=0)
                      for i, s in enumerate(("AAA", "BBB", "CCC"))])
    shared = [(s, "rsi_meanrev", params, None) for s in ("AAA", "BBB", "NOPE", "CCC")]
    mixed = shared + [("AAA", "rsi_meanrev", {"period": 5}, None)]
    table = store.bulk_get_stats(mixed)
    expected = [store.get_stats(*key)["backtest_id"] for key in shared if key[0] != "NOPE"]
    assert list(table["backtest_id"]) == expected  # unknown keys (NOPE, period 5) left out


def test_snapshots_appending_segments_fill_the_previous_blocks_room(tmp_path):
    """A warm reader's next snapshot writes only its new rows into the previous snapshot's
    block buffers (whose own views stay as they were), and answers like a fresh handle;
    a new float column or a full buffer starts new buffers."""
    path = tmp_path / "s.zarr"
    writer = BacktestStore(path)
    writer.store_many(make_batch([f"S{i:02d}" for i in range(20)], [5, 9, 14, 21], seed=1))
    reader = BacktestStore(path, mode="r")
    reader.get_all_stats()  # warm

    def two_commits_read_between():  # the snapshot between them is never warmed
        writer.store_many([make_result(symbol="V0", seed=5, curve=False, trades=0)])
        reader.get_stats("V0", "rsi_meanrev", {})
        writer.store_many([make_result(symbol="V1", seed=6, curve=False, trades=0)])

    steps = [("room", lambda: writer.store_many(make_batch(["T00"], [5, 9], seed=2))),
             ("room", two_commits_read_between),
             ("room", lambda: writer.delete_backtest(reader.get_stats(
                 "S03", "rsi_meanrev", {"period": 9})["backtest_id"])),
             ("new columns", lambda: writer.store_many([make_result(
                 symbol="B", strategy="breakout", seed=3, curve=False, trades=0)])),
             ("full", lambda: writer.store_many(make_batch(["U00", "U01", "U02"],
                                                           [5, 9, 14, 21, 30], seed=4)))]
    for expect, step in steps:
        before = reader._current()
        kept = before.float_block.copy()
        step()
        after = reader._current()
        table = reader.get_all_stats()
        pd.testing.assert_frame_equal(table, BacktestStore(path, mode="r").get_all_stats())
        assert np.array_equal(before.float_block, kept, equal_nan=True)
        assert np.shares_memory(after.float_block, before.float_block) == (expect == "room")
        asked = table[["symbol", "strategy", "params_hash", "exit_hash"]].astype(object)
        pd.testing.assert_frame_equal(reader.bulk_get_stats(asked.iloc[::7]),
                                      table.iloc[::7].reset_index(drop=True))


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


def test_key_codes_and_ids_read_straight_from_shards_equal_zarrs_read(store_path, monkeypatch):
    """Small row chunks and shards: the direct reader of the open path (2-D codes of fresh and
    compacted segments, 1-D ids of compacted ones) gives zarr's arrays, edge chunks included,
    and a damaged chunk raises the segment's corruption error."""
    from core.errors import StoreCorruptionError
    from core.store import _segment

    monkeypatch.setattr(_segment, "ROW_CHUNK", 3)
    monkeypatch.setattr(_segment, "SHARD_CHUNKS", 2)
    monkeypatch.setattr(_segment, "_TEMPLATES", {})
    store = BacktestStore(store_path)
    for k in range(3):
        store.store_many([make_result(symbol=f"K{k}{i}", seed=i) for i in range(8)])
    store.store_many([make_result(symbol="ONE")])
    store.compact()
    for seg in store._index.readable:
        for field in ("codes", "bids"):
            if not seg.reader.has(field):
                continue
            direct = _details.read_local_array(seg.reader, field)
            assert direct is not None and direct.shape == tuple(seg.reader.attrs["arrays"][field])
            assert np.array_equal(direct, seg.reader.read(field))
    seg = store._index.readable[0].reader
    shard = next(p for p in (store_path / "segments" / seg.name / "codes").rglob("*")
                 if p.is_file() and p.name != "zarr.json")
    shard.write_bytes(shard.read_bytes()[:-40])  # a truncated shard: its index fails its crc
    with pytest.raises(StoreCorruptionError, match=seg.name):
        _details.read_local_array(seg, "codes")
    store.close()


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
    old.compact()  # rewrites with "." keys
    assert list(path.glob("segments/*/*/c.*")) and not list(path.glob("segments/*/*/c/"))
    pd.testing.assert_frame_equal(old.get_all_stats(), expected_stats)
    assert old.verify()["ok"]


def test_stat_rows_and_blocks_read_straight_from_shards_equal_zarrs_read(store_path,
                                                                          monkeypatch):
    """Small stat chunks: a cold handle's stat rows (through the chunk cache) and a warm
    handle's stat blocks (whole arrays decoded from the shard files) equal zarr's reads."""
    from core.store import _segment

    monkeypatch.setattr(_segment, "STAT_CHUNK", 4)
    monkeypatch.setattr(_segment, "_TEMPLATES", {})
    monkeypatch.setattr(_index, "_SCANS_BEFORE_SORT", 10**6)
    store = BacktestStore(store_path)
    store.store_many(make_batch(["MSFT", "GOOG"], list(range(5, 14)), seed=4))
    store.compact()
    store.store_many(make_batch(["AAPL"], [5, 6, 7], seed=5))  # a fresh segment beside it
    keys = [(s, p) for s in ("MSFT", "GOOG") for p in range(5, 14)] + [("AAPL", 6)]
    cold = BacktestStore(store_path, mode="r")
    monkeypatch.setattr(cold, "_row_misses", -10**6)  # never warms: every row from chunks
    rows = [cold.get_stats(s, "rsi_meanrev", {"period": p}) for s, p in keys]
    assert not cold._current().warm
    warm = BacktestStore(store_path, mode="r")
    warm._current().warm_up()
    for (symbol, period), row in zip(keys, rows):
        assert row == warm.get_stats(symbol, "rsi_meanrev", {"period": period})
    index = warm._current()
    for seg, lo, hi in zip(index.readable, index.starts[:-1], index.starts[1:]):
        floats = seg.reader.read("floats")
        for j, name in enumerate(seg.reader.attrs["float_columns"]):
            assert np.array_equal(index.columns[name][lo:hi], floats[:, j], equal_nan=True)
        assert np.array_equal(index.time_block[:, lo:hi].T, seg.reader.read("times"))


def test_frames_assembled_from_block_classes_equal_pandas_own(tmp_path, monkeypatch):
    """Stats tables and trade logs, built from pandas' block classes directly, equal the
    frames ``create_dataframe_from_blocks`` makes of the same blocks, pass pandas' own
    integrity check and behave as any frame."""
    from pandas.api.internals import create_dataframe_from_blocks

    built = []
    assemble = _frames._assemble

    def both(blocks, rows, columns):
        frame = assemble(blocks, rows, columns)
        built.append((frame, create_dataframe_from_blocks(blocks, pd.RangeIndex(rows),
                                                          columns.view())))
        return frame

    monkeypatch.setattr(_frames, "_assemble", both)
    store, keys = _versions_store(tmp_path / "s.zarr")
    store.store_backtest(make_result(symbol="DDD", seed=7))
    bid = store.get_stats("DDD", "rsi_meanrev", {"period": 14})["backtest_id"]
    store.set_note(bid, note="checked", tags=["a", "b"])
    store.get_all_stats(), store.bulk_get_stats(keys[:4]), store.query(order_by="-cagr", limit=3)
    store.get_detailed_results(bid)
    assert [frame.shape[0] for frame, _ in built] == [10, 4, 3, 3]
    for frame, expected in built:
        pd.testing.assert_frame_equal(frame, expected)
        assert [type(b) for b in frame._mgr.blocks] == [type(b) for b in expected._mgr.blocks]
        frame._mgr._verify_integrity()
        twice = pd.concat([frame, frame.iloc[::-1]], ignore_index=True)
        assert twice.iloc[len(frame):].reset_index(drop=True).equals(frame.iloc[::-1]
                                                                      .reset_index(drop=True))
        assert pd.read_csv(io.StringIO(frame.to_csv(index=False))).shape == frame.shape

"""Write-path encoding: trade logs in any frame layout, the collector left alone, codec levels."""
from __future__ import annotations

import dataclasses
import gc
import json

import numpy as np
import pandas as pd
import pytest
from factories import make_batch, make_result

from core.errors import ValidationError
from core.store import _segment
from core.store._format import COMPACT_LEVEL, WRITE_LEVEL
from core.types import TRADE_COLUMNS


def stored_trades(store, result) -> pd.DataFrame:
    (bid,) = store.store_many([result])
    return store.get_detailed_results(bid)["trades"]


def test_trade_logs_read_the_same_whatever_the_frame_layout(store):
    result = make_result(seed=1, trades=5)
    canonical = result.trades
    want = stored_trades(store, result)
    assert len(want) == 5
    layouts = {
        "reordered with an extra column": canonical[list(reversed(TRADE_COLUMNS))].assign(x=1),
        "utc datetimes": canonical.assign(
            entry_time=canonical["entry_time"].dt.tz_localize("UTC"),
            exit_time=canonical["exit_time"].dt.tz_localize("UTC")),
        "categorical reasons": canonical.assign(
            exit_reason=canonical["exit_reason"].astype("category")),
        "object reasons, float bars": canonical.assign(
            exit_reason=canonical["exit_reason"].astype(object),
            bars_held=canonical["bars_held"].astype(float)),
        "microsecond dates": canonical.assign(
            entry_time=canonical["entry_time"].astype("datetime64[us]")),
        "unconsolidated blocks": pd.concat([canonical[[c]] for c in TRADE_COLUMNS], axis=1),
    }
    for name, frame in layouts.items():
        got = stored_trades(store, dataclasses.replace(result, trades=frame))
        pd.testing.assert_frame_equal(got, want, obj=name)


def test_many_trade_logs_join_in_one_segment_exactly(store):
    results = [make_result(symbol=f"S{i}", seed=i, trades=1 + i % 4) for i in range(30)]
    results[7] = dataclasses.replace(results[7], trades=results[7].trades.assign(
        exit_reason=results[7].trades["exit_reason"].astype("category")))
    ids = store.store_many(results)
    for bid, result in zip(ids, results):
        got = store.get_detailed_results(bid)["trades"]
        assert got["entry_price"].tolist() == result.trades["entry_price"].tolist()
        assert got["exit_reason"].astype(str).tolist() == \
            result.trades["exit_reason"].astype(str).tolist()
        assert got["bars_held"].tolist() == result.trades["bars_held"].tolist()


@pytest.mark.parametrize("bars, ok", [([1, 2, 3], True), ([1.0, 2.0, 3.0], True),
                                      ([1.5, 2, 3], False), ([-1, 2, 3], False),
                                      ([2**40, 2, 3], False), ([np.nan, 2, 3], False)])
def test_bars_held_must_be_whole_non_negative_counts(store_path, bars, ok):
    from core.store import BacktestStore

    store = BacktestStore(store_path)
    result = make_result(trades=3)
    bad = dataclasses.replace(result, trades=result.trades.assign(bars_held=bars))
    if ok:
        store.store_many([bad])
    else:
        with pytest.raises(ValidationError, match="bars_held"):
            store.store_many([bad])
        assert store.count() == 0


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_state_is_restored_after_a_write(store, enabled):
    (gc.enable if enabled else gc.disable)()
    try:
        store.store_many([make_result(seed=i, curve=False, trades=0) for i in range(70)])
        assert gc.isenabled() is enabled
        with pytest.raises(ValidationError):
            store.store_many([make_result(symbol="../x")])
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def pcodec_level(store_path, segment: str, array: str) -> int:
    meta = json.loads((store_path / "segments" / segment / array / "zarr.json").read_text())
    return meta["codecs"][0]["configuration"]["codecs"][0]["configuration"]["level"]


def segment_names(store_path) -> list[str]:
    manifest = json.loads((store_path / "manifest.json").read_text())
    return [entry["name"] for entry in manifest["segments"]]


def test_fresh_writes_keep_trade_arrays_cheap_and_compaction_packs_them(store, store_path):
    store.store_many(make_batch(["AAA"], [5, 6, 7], trades_per_row=4))
    store.store_many(make_batch(["BBB"], [5, 6, 7], trades_per_row=4))
    fresh = segment_names(store_path)[0]
    assert pcodec_level(store_path, fresh, "floats") == WRITE_LEVEL
    assert pcodec_level(store_path, fresh, "tr_floats") == _segment.RAGGED_WRITE_LEVEL
    before = store.get_all_stats().sort_values("backtest_id").reset_index(drop=True)
    store.compact()
    (merged,) = segment_names(store_path)
    assert pcodec_level(store_path, merged, "floats") == COMPACT_LEVEL
    assert pcodec_level(store_path, merged, "tr_floats") == COMPACT_LEVEL
    after = store.get_all_stats().sort_values("backtest_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after.drop(columns=["created_at"]),
                                  before.drop(columns=["created_at"]), check_categorical=False)
    assert store.verify()["ok"]

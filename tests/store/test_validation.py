"""Guarantee 4 (bad input never damages the store) and 5 (format version)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import snapshot
from factories import make_batch, make_result

from core.errors import StoreVersionError, ValidationError
from core.store import FORMAT_VERSION, BacktestStore, open_store
from core.store._backend import manifest_bytes
from core.types import BatchCurves, BatchResult


def _bad_results():
    good = make_result(seed=1)
    short_equity = good.equity.copy()
    short_equity.index = pd.DatetimeIndex([pd.NaT, *short_equity.index[1:]])
    metrics_missing = dict(good.metrics)
    del metrics_missing["sharpe_ratio"]
    bad_trades = good.trades.drop(columns=["exit_price"])
    nat_trades = good.trades.copy()
    nat_trades.loc[1, "entry_time"] = pd.NaT
    return {
        "symbol ../x": dataclasses.replace(good, symbol="../x"),
        "symbol a/b": dataclasses.replace(good, symbol="a/b"),
        "symbol empty": dataclasses.replace(good, symbol=""),
        "symbol 200 chars": dataclasses.replace(good, symbol="A" * 200),
        "unknown strategy": dataclasses.replace(good, strategy="rsi_meanrevv"),
        "unknown param": dataclasses.replace(good, params={"perod": 3}),
        "NaN start": dataclasses.replace(good, start=pd.NaT),
        "end before start": dataclasses.replace(good, end=pd.Timestamp("2019-01-01")),
        "NaN equity date": dataclasses.replace(good, equity=short_equity),
        "equity values not a series": dataclasses.replace(good, equity=np.ones(5)),
        "NaN equity value": dataclasses.replace(
            good, equity=good.equity.where(good.equity.index != good.equity.index[3])),
        "metric missing": dataclasses.replace(good, metrics=metrics_missing),
        "metric not a number": dataclasses.replace(good, metrics={**good.metrics,
                                                                  "win_rate": "high"}),
        "trades miss a column": dataclasses.replace(good, trades=bad_trades),
        "trade NaN date": dataclasses.replace(good, trades=nat_trades),
        "unknown exit reason": dataclasses.replace(
            good, trades=good.trades.assign(exit_reason="magic")),
        "bad exit rule": dataclasses.replace(good, exit_rule=[{"type": "stop_los"}]),
        "negative capital": dataclasses.replace(good, initial_capital=-5.0),
        "not a result": {"symbol": "AAPL"},
    }


BAD = _bad_results()


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_result_leaves_the_store_byte_identical(store, store_path, case):
    store.store_many([make_result(symbol="KEEP", seed=5)])
    before = snapshot(store_path)
    with pytest.raises(ValidationError) as info:
        store.store_many([make_result(symbol="OK", seed=6), BAD[case]])
    assert "#1" in str(info.value) or case == "not a result" or "symbol" in case.lower()
    assert snapshot(store_path) == before
    assert store.count() == 1
    assert store.store_backtest(make_result(symbol="AFTER")).isdigit()  # still writable


def test_bad_batch_tables_leave_the_store_byte_identical(store, store_path):
    store.store_many(make_batch(["KEEP"], [5]))
    before = snapshot(store_path)
    good = make_batch(["AAA", "BBB"], [5, 10], trades_per_row=1).table
    bad_tables = {
        "path symbol": good.assign(symbol=["../x", "AAA", "BBB", "BBB"]),
        "NaN date": good.assign(start=[pd.NaT, *good["start"][1:]]),
        "unknown strategy": good.assign(strategy="nope"),
        "metric missing": good.drop(columns=["win_rate"]),
        "param column missing": good.drop(columns=["rsi_period"]),
        "hash disagrees": good.assign(params_hash=["0" * 16, *good["params_hash"][1:]]),
        "non canonical json": good.assign(params_json=good["params_json"].str.replace(
            '"period":5', '"period":6')),
        "text metric": good.assign(win_rate="x"),
    }
    for name, table in bad_tables.items():
        with pytest.raises(ValidationError):
            store.store_many(table)
        assert snapshot(store_path) == before, name
    batch = make_batch(["AAA"], [5, 10], trades_per_row=2)
    batch.trades.loc[0, "row"] = 7
    with pytest.raises(ValidationError, match="row"):
        store.store_many(batch)
    with pytest.raises(ValidationError):
        store.store_many("not results")
    assert snapshot(store_path) == before


def test_bad_batch_curves_leave_the_store_byte_identical(store, store_path):
    store.store_many(make_batch(["KEEP"], [5]))
    before = snapshot(store_path)
    good = make_batch(["AAA"], [5, 10])
    dates = pd.bdate_range("2020-01-01", periods=4).to_numpy("datetime64[ns]")
    values, offsets, starts = np.full(8, 1e5), np.array([0, 4, 8]), np.array([0, 0])
    bad_curves = {
        "not curves": {"values": values},
        "offsets short": BatchCurves(values, offsets[:2], dates, starts),
        "offsets past the values": BatchCurves(values[:6], offsets, dates, starts),
        "NaN value": BatchCurves(np.where(np.arange(8) == 5, np.nan, values), offsets, dates,
                                 starts),
        "dates past the calendar": BatchCurves(values, offsets, dates, np.array([0, 1])),
        "dates not increasing": BatchCurves(values, offsets, dates[::-1].copy(), starts),
        "NaT date": BatchCurves(values, offsets, np.where(np.arange(4) == 2,
                                                          np.datetime64("NaT", "ns"), dates),
                                starts),
        "text values": BatchCurves(np.array(["x"] * 8), offsets, dates, starts),
    }
    for name, curves in bad_curves.items():
        with pytest.raises(ValidationError, match="curves|equity values"):
            store.store_many(BatchResult(table=good.table, curves=curves))
        assert snapshot(store_path) == before, name
    ids = store.store_many(BatchResult(table=good.table,
                                       curves=BatchCurves(values, offsets, dates, starts)))
    assert store.get_detailed_results(ids[1])["equity"].tolist() == [1e5] * 4


def test_newer_format_refuses_to_open(store_path):
    BacktestStore(store_path).store_backtest(make_result())
    root_json = store_path / "zarr.json"
    doc = json.loads(root_json.read_text())
    assert doc["attributes"]["hindsight_store"]["format_version"] == FORMAT_VERSION
    doc["attributes"]["hindsight_store"]["format_version"] = FORMAT_VERSION + 1
    root_json.write_text(json.dumps(doc))
    for mode in ("r", "r+"):
        with pytest.raises(StoreVersionError, match=f"format version {FORMAT_VERSION + 1}.*"
                                                    "Upgrade Hindsight"):
            open_store(store_path, mode=mode)


def test_newer_manifest_format_is_refused_by_an_open_handle(store, store_path):
    store.store_backtest(make_result())
    manifest = store_path / "manifest.json"
    doc = json.loads(manifest.read_text())
    doc["format_version"] = FORMAT_VERSION + 1
    manifest.write_bytes(manifest_bytes(doc))  # checksummed, as a newer writer would
    with pytest.raises(StoreVersionError):
        store.count()


def test_not_a_backtest_store(tmp_path):
    import zarr

    zarr.open_group(tmp_path / "other.zarr", mode="w")
    (tmp_path / "other.zarr" / "manifest.json").write_text('{"segments": []}')
    with pytest.raises(Exception, match="not a Hindsight backtest store"):
        open_store(tmp_path / "other.zarr")


@pytest.mark.parametrize("text_dtype", ["str", "object"])
def test_a_batch_repeating_the_last_params_column_is_stored_and_checked_as_new(
        store, store_path, text_dtype):
    """A sweep stores one grid symbol after symbol: an equal column reuses the last batch's
    checked codes, while a changed order, a wrong hash or a missing text is still caught."""
    texts = ["params_json", "params_hash", "exit_json", "exit_hash"]

    def batch(symbol: str, periods: list[int], seed: int) -> pd.DataFrame:
        table = make_batch([symbol], periods, seed=seed).table
        return table.astype({c: text_dtype for c in texts})

    store.store_many(batch("AAA", [5, 10, 14], 1))
    store.store_many(batch("BBB", [5, 10, 14], 2))  # the same params column
    store.store_many(batch("CCC", [14, 5, 10], 3))  # the same params, another order
    for period in (5, 10, 14):
        found = [store.get_stats(s, "rsi_meanrev", {"period": period})
                 for s in ("AAA", "BBB", "CCC")]
        assert [f["params"]["period"] for f in found] == [period] * 3
        assert len({f["params_hash"] for f in found}) == 1
    before = snapshot(store_path)
    good = batch("DDD", [14, 5, 10], 4)
    wrong_hash = good.assign(params_hash=["0" * 16, *good["params_hash"][1:]])
    missing = good.assign(params_json=[None, *good["params_json"][1:]])
    for table in (wrong_hash.astype({"params_hash": text_dtype}),
                  missing.astype({"params_json": text_dtype})):
        with pytest.raises(ValidationError):
            store.store_many(table)
        assert snapshot(store_path) == before
    store.store_many(good)
    assert store.get_stats("DDD", "rsi_meanrev", {"period": 14})["params"]["period"] == 14

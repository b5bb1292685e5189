"""Round-trips of the public API on a real store on disk."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from factories import make_batch, make_result

from core.errors import NotFoundError, ParamError, StoreError, UnknownStrategyError
from core.store import BacktestStore, open_store
from core.types import EXIT_REASON_DTYPE, METRIC_NAMES, TRADE_COLUMNS


def test_store_and_read_back_everything(store):
    result = make_result(seed=3)
    bid = store.store_backtest(result)
    assert isinstance(bid, str) and bid.isdigit()
    stats = store.get_stats("AAPL", "rsi_meanrev", {"period": 14}, None)
    assert stats["backtest_id"] == bid
    assert stats["params"] == {"period": 14, "oversold": 30, "overbought": 70}
    assert stats["exit_rule"] == [{"type": "signal"}]
    for name in METRIC_NAMES:
        assert stats[name] == result.metrics[name]
        assert stats["metrics"][name] == result.metrics[name]
    assert stats["rsi_period"] == 14.0
    assert stats["start"] == result.start and stats["end"] == result.end
    assert stats["costs"] == {}
    assert stats["engine_version"] == "test-1"
    assert stats["data_fingerprint"] == "f" * 16
    assert stats["note"] == "" and stats["tags"] == []
    details = store.get_detailed_results(bid)
    assert details["equity"].index.equals(result.equity.index)
    np.testing.assert_array_equal(details["equity"].to_numpy(), result.equity.to_numpy())
    assert list(details["trades"].columns) == list(TRADE_COLUMNS)
    assert details["trades"].dtypes.to_dict() == TRADE_DTYPES
    pd.testing.assert_frame_equal(details["trades"].astype({"exit_reason": object}),
                                  result.trades.astype({"exit_reason": object,
                                                        "bars_held": np.int64}),
                                  check_dtype=False)


TRADE_DTYPES = {"entry_time": np.dtype("datetime64[ns]"), "entry_price": np.dtype("float64"),
                "exit_time": np.dtype("datetime64[ns]"), "exit_price": np.dtype("float64"),
                "units": np.dtype("float64"), "pnl": np.dtype("float64"),
                "return": np.dtype("float64"), "bars_held": np.dtype("int64"),
                "exit_reason": EXIT_REASON_DTYPE}


def test_nan_metrics_round_trip_as_nan(store):
    result = make_result(nan=True, trades=0, curve=False)
    bid = store.store_backtest(result)
    stats = store.get_stats("AAPL", "rsi_meanrev", {}, None)
    assert stats["num_trades"] == 0.0
    assert math.isnan(stats["win_rate"]) and math.isnan(stats["sharpe_ratio"])
    details = store.get_detailed_results(bid)
    assert details["equity"] is None
    assert len(details["trades"]) == 0 and list(details["trades"].columns) == list(TRADE_COLUMNS)
    assert details["trades"].dtypes.to_dict() == TRADE_DTYPES
    table = store.get_all_stats()
    assert table["win_rate"].isna().all()


def test_canonical_hashing_key_order_int_float_and_exit_params(store):
    store.store_backtest(make_result(params={"period": 10, "oversold": 25}, seed=1))
    same = [{"oversold": 25, "period": 10}, {"period": 10.0, "oversold": 25.0},
            {"oversold": 25.0, "period": 10, "overbought": 70}]
    bids = {store.get_stats("AAPL", "rsi_meanrev", p)["backtest_id"] for p in same}
    assert len(bids) == 1
    assert store.get_stats("AAPL", "rsi_meanrev", {"period": 11, "oversold": 25}) is None
    store.store_backtest(make_result(params={"period": 10, "oversold": 25}, seed=2,
                                     exit_rule={"type": "stop_loss", "pct": 0.05}))
    a = store.get_stats("AAPL", "rsi_meanrev", {"period": 10, "oversold": 25},
                        {"type": "stop_loss", "pct": 0.05})
    b = store.get_stats("AAPL", "rsi_meanrev", {"period": 10, "oversold": 25},
                        [{"pct": 0.05, "type": "stop_loss"}, {"type": "signal"}])
    c = store.get_stats("AAPL", "rsi_meanrev", {"period": 10, "oversold": 25},
                        {"type": "stop_loss", "pct": 0.06})
    assert a["backtest_id"] == b["backtest_id"] != next(iter(bids))
    assert c is None
    assert store.count() == 2


def test_latest_wins_and_history_is_kept(store):
    first = store.store_backtest(make_result(seed=1))
    second = store.store_backtest(make_result(seed=2))
    stats = store.get_stats("AAPL", "rsi_meanrev", {}, None)
    assert stats["backtest_id"] == second
    assert stats["win_rate"] == make_result(seed=2).metrics["win_rate"]
    history = store.history("AAPL", "rsi_meanrev", {}, None)
    assert list(history["backtest_id"]) == [first, second]
    assert store.count() == 1 and store.count(include_history=True) == 2
    assert len(store.get_all_stats()) == 1
    assert len(store.get_all_stats(include_history=True)) == 2
    store.get_detailed_results(first)  # older versions stay readable by id
    store.delete_backtest(second)
    assert store.get_stats("AAPL", "rsi_meanrev", {}, None)["backtest_id"] == first


def test_store_many_list_batch_result_and_dataframe(store):
    ids = store.store_many([make_result(symbol=s, seed=i) for i, s in enumerate("ABC")])
    assert ids == [str(int(ids[0]) + i) for i in range(3)]
    batch = make_batch(["MSFT", "GOOG"], [5, 10, 20], trades_per_row=2, seed=4)
    batch_ids = store.store_many(batch)
    assert len(batch_ids) == 6
    table_ids = store.store_many(make_batch(["IBM"], [7, 8]).table)
    assert len(table_ids) == 2
    assert store.count() == 11
    row = batch.table.iloc[4]
    stats = store.get_stats(row["symbol"], "rsi_meanrev", {"period": int(row["rsi_period"])})
    assert stats["backtest_id"] == batch_ids[4]
    assert stats["sharpe_ratio"] == row["sharpe_ratio"]
    details = store.get_detailed_results(batch_ids[4])
    assert details["equity"] is None
    expected = batch.trades[batch.trades["row"] == 4]
    np.testing.assert_array_equal(details["trades"]["pnl"].to_numpy(), expected["pnl"].to_numpy())
    assert store.store_many([]) == []


def test_bulk_get_stats_tuples_and_frame(store):
    batch = make_batch(["MSFT", "GOOG"], [5, 10], seed=5)
    ids = store.store_many(batch)
    keys = [("MSFT", "rsi_meanrev", {"period": 10}, None),
            ("NOPE", "rsi_meanrev", {"period": 10}, None),
            ("GOOG", "rsi_meanrev", {"period": 5.0}, [{"type": "signal"}])]
    found = store.bulk_get_stats(keys)
    assert list(found["backtest_id"]) == [ids[1], ids[2]]
    frame = batch.table[["symbol", "strategy", "params_hash", "exit_hash"]]
    assert list(store.bulk_get_stats(frame)["backtest_id"]) == ids
    assert len(store.bulk_get_stats([])) == 0


def test_notes_of_many_backtests_are_one_commit_all_or_none(store, store_path):
    from core.store._format import COMMIT_COUNTER_KEY

    def commits() -> int:
        return int.from_bytes((store_path / COMMIT_COUNTER_KEY).read_bytes()[:8], "little")

    ids = store.store_many(make_batch(["AAA", "BBB"], [5, 9], seed=3))
    before = commits()
    store.set_notes({ids[0]: {"note": "first", "tags": ["wf:1"]}, ids[1]: {"tags": ["wf:2"]},
                     int(ids[2]): {"note": "third"}})
    assert commits() == before + 2  # one commit: the counter is odd while it runs
    table = store.get_all_stats().set_index("backtest_id")
    assert table.loc[ids[0], ["note", "tags"]].tolist() == ["first", "wf:1"]
    assert table.loc[ids[1], ["note", "tags"]].tolist() == ["", "wf:2"]
    assert table.loc[ids[2], "note"] == "third"
    with pytest.raises(NotFoundError):
        store.set_notes({ids[3]: {"note": "never"}, "999999": {"note": "x"}})
    with pytest.raises(ValueError, match="unknown note fields \\['colour'\\]"):
        store.set_notes({ids[3]: {"colour": "red"}})
    assert store.get_detailed_results(ids[3])["note"] == ""
    assert commits() == before + 2


def test_delete_and_notes(store):
    ids = store.store_many([make_result(symbol=s, seed=i) for i, s in enumerate("ABCD")])
    assert store.delete_backtest([ids[0], ids[1]]) == 2
    assert store.count() == 2
    with pytest.raises(NotFoundError, match="deleted"):
        store.get_detailed_results(ids[0])
    with pytest.raises(NotFoundError):
        store.delete_backtest(ids[0])
    with pytest.raises(NotFoundError):
        store.get_detailed_results("999999")
    store.set_note(ids[2], note="looks robust", tags=["keep", "wf:1"])
    stats = store.get_stats("C", "rsi_meanrev", {})
    assert stats["note"] == "looks robust" and stats["tags"] == ["keep", "wf:1"]
    store.set_note(ids[2], tags=[])
    assert store.get_stats("C", "rsi_meanrev", {})["note"] == "looks robust"
    table = store.get_all_stats().set_index("backtest_id")
    assert table.loc[ids[2], "note"] == "looks robust" and table.loc[ids[3], "note"] == ""


def test_other_handles_see_commits(store, store_path):
    reader = open_store(store_path, mode="r")
    assert reader.count() == 0
    store.store_backtest(make_result(seed=1))
    assert reader.count() == 1  # noticed without an explicit refresh
    with pytest.raises(StoreError, match="read-only"):
        reader.store_backtest(make_result(seed=1))


def test_compact_keeps_every_answer(store):
    ids = []
    for i in range(6):
        ids += store.store_many([make_result(symbol=f"S{i}", seed=i)])
    ids += store.store_many(make_batch(["MSFT"], [5, 6, 7], trades_per_row=1))
    store.delete_backtest(ids[1])
    store.set_note(ids[2], note="n")
    before = store.get_all_stats()
    details = store.get_detailed_results(ids[3])
    summary = store.compact()
    assert summary["segments"] == 1 and summary["dropped_rows"] == 1
    after = store.get_all_stats()
    pd.testing.assert_frame_equal(before.drop(columns=["note"]), after.drop(columns=["note"]))
    assert after.set_index("backtest_id").loc[ids[2], "note"] == "n"
    again = store.get_detailed_results(ids[3])
    pd.testing.assert_series_equal(details["equity"], again["equity"])
    with pytest.raises(NotFoundError):
        store.get_detailed_results(ids[1])
    new = store.store_backtest(make_result(symbol="NEW"))
    assert int(new) > max(int(b) for b in ids)
    assert store.verify()["ok"]


def test_memory_url_works():
    url = "memory://hindsight-test-store"
    store = BacktestStore(url, mode="r+")
    bid = store.store_backtest(make_result(seed=9))
    other = open_store(url, mode="r")
    assert other.get_stats("AAPL", "rsi_meanrev", {})["backtest_id"] == bid
    assert other.get_detailed_results(bid)["equity"] is not None
    assert store.verify()["ok"]


def test_bad_keys_raise_clear_errors(store):
    store.store_backtest(make_result())
    with pytest.raises(UnknownStrategyError, match="rsi_meanrev"):
        store.get_stats("AAPL", "rsi_meanrevv", {})
    with pytest.raises(ParamError):
        store.get_stats("AAPL", "rsi_meanrev", {"perod": 3})


def test_missing_store_in_read_mode(tmp_path):
    with pytest.raises(StoreError, match="No backtest store"):
        open_store(tmp_path / "nothing.zarr", mode="r")
    assert not (tmp_path / "nothing.zarr").exists()


def test_read_racing_a_compaction_retries_on_the_new_manifest(store, store_path):
    ids = [store.store_backtest(make_result(symbol=s, seed=i)) for i, s in enumerate("ABC")]
    reader = BacktestStore(store_path, mode="r", refresh_interval=3600.0)  # stale on purpose
    store.compact()  # replaces (and deletes) the segments the reader's index points to
    details = reader.get_detailed_results(ids[1])
    assert details["symbol"] == "B" and details["equity"] is not None
    assert reader.get_stats("C", "rsi_meanrev", {})["backtest_id"] == ids[2]


def test_curves_with_different_dates_share_calendars_losslessly(store, store_path):
    import dataclasses

    from factories import make_equity

    rng = np.random.default_rng(5)
    curves = [make_equity(rng, n=40, start="2020-01-01"), make_equity(rng, n=40,
                                                                      start="2020-01-01"),
              make_equity(rng, n=25, start="2021-06-01"), make_equity(rng, n=40,
                                                                      start="2020-01-02")]
    results = [dataclasses.replace(make_result(symbol=f"K{i}", seed=i), equity=curve)
               for i, curve in enumerate(curves)]
    ids = store.store_many(results)
    store.store_many(results[2:])
    store.compact()
    for bid, curve in zip(ids, curves):
        back = store.get_detailed_results(bid)["equity"]
        assert back.index.equals(curve.index)
        np.testing.assert_array_equal(back.to_numpy(), curve.to_numpy())
    assert store.verify()["ok"]

"""The where/order_by language: grammar, column resolution, safety (no eval)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from factories import make_batch, make_result

from core.errors import QueryError
from core.store import BacktestStore


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    store = BacktestStore(tmp_path_factory.mktemp("query") / "store.zarr")
    store.store_many(make_batch(["AAA", "BBB", "CCC"], [5, 10, 14, 20, 30], seed=11))
    store.store_backtest(make_result(symbol="MAX", strategy="ma_crossover",
                                     params={"fast": 5, "slow": 20}, seed=12))
    store.store_backtest(make_result(symbol="BOL", strategy="bollinger_reversion",
                                     params={"period": 10}, seed=13))
    return store


def reference(table: pd.DataFrame, predicate) -> list[str]:
    """Slow per-row reference filter over get_all_stats."""
    return sorted(r.backtest_id for r in table.itertuples() if predicate(r))


def test_and_or_parentheses_match_a_row_by_row_reference(filled):
    table = filled.get_all_stats()
    cases = {
        "win_rate >= 0.5 and num_trades >= 20":
            lambda r: r.win_rate >= 0.5 and r.num_trades >= 20,
        "win_rate >= 0.5 or rsi_period <= 10":
            lambda r: r.win_rate >= 0.5 or r.rsi_period <= 10,
        "(win_rate < 0.3 or win_rate > 0.7) and not rsi_period == 14":
            lambda r: (r.win_rate < 0.3 or r.win_rate > 0.7) and not r.rsi_period == 14,
        "symbol == 'AAA' and rsi_period >= 14":
            lambda r: r.symbol == "AAA" and r.rsi_period >= 14,
        "0.5 < sharpe_ratio": lambda r: r.sharpe_ratio > 0.5,
        "sharpe_ratio > sortino_ratio": lambda r: r.sharpe_ratio > r.sortino_ratio,
        "symbol != 'BBB' and start >= '2015-01-01'":
            lambda r: r.symbol != "BBB" and r.start >= pd.Timestamp("2015-01-01"),
        "ma_fast == 5": lambda r: r.ma_fast == 5,
    }
    for where, predicate in cases.items():
        got = sorted(filled.query(where=where)["backtest_id"])
        assert got == reference(table, predicate), where


def test_nan_never_matches(store):
    store.store_backtest(make_result(symbol="Z", nan=True))
    store.store_backtest(make_result(symbol="Y", seed=3))
    assert list(store.query(where="win_rate != 0.123")["symbol"]) == ["Y"]
    assert len(store.query(where="win_rate < 100 or win_rate >= 100")) == 1


def test_strategy_filter_and_bare_param_resolution(filled):
    rows = filled.query(strategy="rsi_meanrev", where="period <= 10")
    assert set(rows["rsi_period"]) == {5.0, 10.0}
    assert "ma_fast" not in rows.columns  # only the queried strategy's param columns
    rows = filled.query(strategy=["ma_crossover"], where="fast == 5")
    assert list(rows["symbol"]) == ["MAX"]
    assert len(filled.query(where="fast == 5")) == 1  # only one strategy has 'fast'
    with pytest.raises(QueryError, match="ambiguous.*rsi_period, bb_period"):
        filled.query(where="period <= 10")  # rsi_period or bb_period?
    rows = filled.query(strategy="bollinger_reversion", where="period <= 10")
    assert list(rows["symbol"]) == ["BOL"]
    rows = filled.query(symbol=["AAA", "CCC"], params={"period": 14}, strategy="rsi_meanrev")
    assert sorted(rows["symbol"]) == ["AAA", "CCC"]


def test_order_by_descending_nan_last_and_limit(store):
    store.store_many([make_result(symbol=f"S{i}", seed=i, nan=(i % 3 == 0)) for i in range(9)])
    rows = store.query(order_by="-sharpe_ratio", limit=100)
    values = rows["sharpe_ratio"].to_numpy()
    finite = values[~np.isnan(values)]
    assert (np.diff(finite) <= 0).all()
    assert np.isnan(values[len(finite):]).all() and len(values) == 9
    top = store.query(order_by="-sharpe_ratio", limit=2)
    assert list(top["backtest_id"]) == list(rows["backtest_id"][:2])
    asc = store.query(order_by="sharpe_ratio")
    assert np.isnan(asc["sharpe_ratio"].to_numpy()[-3:]).all()
    assert list(store.query(order_by="symbol")["symbol"]) == sorted(f"S{i}" for i in range(9))


def test_unknown_column_lists_valid_ones(filled):
    with pytest.raises(QueryError) as info:
        filled.query(where="win_rat >= 0.5")
    message = str(info.value)
    assert "win_rat" in message and "Did you mean 'win_rate'" in message
    assert "rsi_period" in message and "sharpe_ratio" in message
    with pytest.raises(QueryError, match="Unknown column"):
        filled.query(order_by="-sharpe")


@pytest.mark.parametrize("where", [
    "__import__('os').system('echo hi')",
    "win_rate >= 0.5; import os",
    "win_rate >= 0.5 and",
    "(win_rate >= 0.5",
    "win_rate >= 0.5)",
    "win_rate >= 'abc'",
    "symbol > 'AAA'",
    "symbol == AAA",
    "win_rate",
    "1 < 2",
    "win_rate >= 0.5 or or num_trades > 1",
    "start >= 2020",
    "win_rate.__class__ == 1",
    "x" * 3000,
])
def test_bad_where_is_rejected_without_eval(filled, where):
    with pytest.raises(QueryError):
        filled.query(where=where)


def test_blank_where_means_no_filter(filled):
    assert len(filled.query(where="  ")) == len(filled.query()) == filled.count()


def test_bad_limit_and_order(filled):
    with pytest.raises(QueryError):
        filled.query(limit=-1)
    with pytest.raises(QueryError):
        filled.query(order_by=3)


@pytest.mark.parametrize("where, everything", [
    ("start > '3000-01-01'", False), ("start < '3000-01-01'", True),
    ("end >= '1000-01-01'", True), ("created_at <= '1000-01-01'", False)])
def test_dates_outside_the_nanosecond_range_compare_like_any_date(filled, where, everything):
    """Dates before 1677 or after 2262 (which datetime64[ns] cannot hold) filter as dates."""
    count = len(filled.get_all_stats())
    assert len(filled.query(where=where)) == (count if everything else 0)

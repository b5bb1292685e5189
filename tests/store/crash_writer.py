"""Writer processes for the crash and concurrency tests (run in real child processes).

Every batch ``k`` holds ``rows`` backtests of symbol ``B<k>`` with metrics, curve and trades
derived from (k, i) alone, so a checker can tell a complete batch, an absent one, and any row
showing fill values (zeros) instead of what was written.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd

from core.exits import canonical_exit_rule
from core.store import BacktestStore
from core.store._backend import CRASH_ENV
from core.strategies import validate_params
from core.types import METRIC_NAMES, TRADE_COLUMNS, BacktestResult

CURVE_POINTS = 40
#: Modules a fork server imports once so that each writer child starts in milliseconds
#: (installed packages: the fork server does not see the test folder on sys.path).
PRELOAD = ["core.store", "core.strategies", "core.exits", "pandas"]


def batch_symbol(k: int) -> str:
    return f"B{k:05d}"


def expected_metric(k: int, i: int, j: int) -> float:
    return k * 1000.0 + i + j / 100.0 + 0.5


def expected_curve(k: int, i: int) -> pd.Series:
    dates = pd.bdate_range("2021-01-04", periods=CURVE_POINTS)
    values = 1000.0 + k + i / 7.0 + np.arange(CURVE_POINTS) / 3.0
    return pd.Series(values, index=dates, name="equity")


def batch_results(k: int, rows: int, prefix: str = "") -> list[BacktestResult]:
    results = []
    for i in range(rows):
        trades = pd.DataFrame({
            "entry_time": [pd.Timestamp("2021-01-05")], "entry_price": [10.0 + i],
            "exit_time": [pd.Timestamp("2021-01-12")], "exit_price": [11.0 + k],
            "units": [1.0], "pnl": [1.0], "return": [0.1], "bars_held": [5],
            "exit_reason": ["signal"]})[list(TRADE_COLUMNS)]
        results.append(BacktestResult(
            symbol=prefix + batch_symbol(k), strategy="rsi_meanrev",
            params=validate_params("rsi_meanrev", {"period": 2 + i}),
            exit_rule=canonical_exit_rule(None),
            metrics={m: expected_metric(k, i, j) for j, m in enumerate(METRIC_NAMES)},
            equity=expected_curve(k, i), trades=trades,
            start=pd.Timestamp("2021-01-04"), end=pd.Timestamp("2021-03-01")))
    return results


def write_batches(url: str, first: int, count: int, rows: int, crash_step: str | None = None,
                  ready=None, compact_every: int = 0) -> None:
    """Write batches first..first+count-1, optionally dying at a commit step."""
    if crash_step:
        os.environ[CRASH_ENV] = crash_step
    store = BacktestStore(url)
    if ready is not None:
        ready.set()
    for n, k in enumerate(range(first, first + count)):
        store.store_many(batch_results(k, rows))
        if compact_every and n % compact_every == compact_every - 1:
            store.compact()


def compact_only(url: str, crash_step: str) -> None:
    os.environ[CRASH_ENV] = crash_step
    BacktestStore(url).compact()


def check_store(url: str, rows: int, deep: bool = True) -> dict[int, int]:
    """Assert every batch is complete with exact values; returns {batch: rows visible}.

    ``deep`` also reads one curve and trade log per batch and runs verify() (every checksum).
    """
    store = BacktestStore(url, mode="r")
    table = store.get_all_stats()
    seen: dict[int, int] = {}
    for symbol, group in table.groupby("symbol", observed=True):
        k = int(symbol[1:])
        assert len(group) == rows, f"batch {k} is partial: {len(group)} of {rows} rows"
        i = (group["rsi_period"].to_numpy() - 2).astype(int)
        for j, metric in enumerate(METRIC_NAMES):
            np.testing.assert_array_equal(group[metric].to_numpy(), expected_metric(k, i, j))
        seen[k] = len(group)
        if not deep:
            continue
        details = store.get_detailed_results(group["backtest_id"].iloc[0])
        first = int(details["rsi_period"]) - 2
        curve = expected_curve(k, first)
        assert details["equity"].index.equals(curve.index)
        np.testing.assert_array_equal(details["equity"].to_numpy(), curve.to_numpy())
        assert float(details["trades"]["exit_price"].iloc[0]) == 11.0 + k
    if deep:
        report = store.verify()
        assert report["ok"], report
    return seen


def write_plan(url: str, plan: list[tuple[int, int]], threads: int = 1) -> None:
    """Write batches (k, rows) of a plan; with threads > 1 through one shared handle."""
    store = BacktestStore(url)
    if threads == 1:
        for k, rows in plan:
            _write_one(store, k, rows)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda item: _write_one(store, *item), plan))


def _write_one(store: BacktestStore, k: int, rows: int) -> None:
    if rows == 1:
        store.store_backtest(batch_results(k, 1)[0])
    else:
        store.store_many(batch_results(k, rows))

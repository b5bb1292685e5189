"""Synthetic engine output for store tests: results and batch tables built from core.types."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.canonical import canonical_json, stable_hash
from core.exits import canonical_exit_rule
from core.strategies import param_columns, validate_params
from core.types import EXIT_REASONS, METRIC_NAMES, TRADE_COLUMNS, BacktestResult, BatchResult


def make_metrics(rng: np.random.Generator, nan: bool = False) -> dict[str, float]:
    """Every metric, random but plausible; ``nan`` gives a zero-trade backtest's NaNs."""
    metrics = {name: float(rng.normal()) for name in METRIC_NAMES}
    metrics["num_trades"] = 0.0 if nan else float(rng.integers(1, 60))
    if nan:
        for name in ("win_rate", "sharpe_ratio", "expectancy", "profit_factor", "avg_bars_held",
                     "best_trade", "worst_trade", "sortino_ratio"):
            metrics[name] = float("nan")
    else:
        metrics["win_rate"] = float(rng.integers(0, 10) / 10)
    return metrics


def make_equity(rng: np.random.Generator, n: int = 60, start: str = "2020-01-01") -> pd.Series:
    dates = pd.bdate_range(start, periods=n)
    values = 100_000 * np.cumprod(1 + rng.normal(0, 0.01, n))
    return pd.Series(values, index=dates, name="equity")


def make_trades(rng: np.random.Generator, k: int = 3, start: str = "2020-01-01") -> pd.DataFrame:
    entry = pd.bdate_range(start, periods=k, freq="10B")
    return pd.DataFrame({
        "entry_time": entry,
        "entry_price": rng.uniform(10, 200, k),
        "exit_time": entry + pd.Timedelta(days=5),
        "exit_price": rng.uniform(10, 200, k),
        "units": rng.uniform(1, 100, k),
        "pnl": rng.normal(0, 100, k),
        "return": rng.normal(0, 0.05, k),
        "bars_held": rng.integers(1, 20, k),
        "exit_reason": [EXIT_REASONS[i % len(EXIT_REASONS)] for i in range(k)],
    })[list(TRADE_COLUMNS)]


def make_result(symbol: str = "AAPL", strategy: str = "rsi_meanrev", params: dict | None = None,
                exit_rule=None, seed: int = 0, curve: bool = True, trades: int = 3,
                nan: bool = False) -> BacktestResult:
    rng = np.random.default_rng(seed)
    equity = make_equity(rng) if curve else None
    return BacktestResult(
        symbol=symbol, strategy=strategy,
        params=validate_params(strategy, params or {}),
        exit_rule=canonical_exit_rule(exit_rule),
        metrics=make_metrics(rng, nan=nan),
        equity=equity,
        trades=make_trades(rng, trades) if trades else pd.DataFrame(columns=list(TRADE_COLUMNS)),
        start=pd.Timestamp("2020-01-01"), end=pd.Timestamp("2020-03-24"),
        costs={}, engine_version="test-1", data_fingerprint="f" * 16)


def make_batch(symbols: list[str], periods: list[int], exit_rule=None, seed: int = 0,
               trades_per_row: int = 0) -> BatchResult:
    """A run_many-style batch: symbols x rsi periods, metrics random."""
    rng = np.random.default_rng(seed)
    rows = []
    exit_canon = canonical_exit_rule(exit_rule)
    for symbol in symbols:
        for period in periods:
            params = validate_params("rsi_meanrev", {"period": period})
            row = {"symbol": symbol, "strategy": "rsi_meanrev",
                   "params_json": canonical_json(params), "params_hash": stable_hash(params),
                   "exit_json": canonical_json(exit_canon), "exit_hash": stable_hash(exit_canon),
                   "start": pd.Timestamp("2015-01-02"), "end": pd.Timestamp("2024-12-31"),
                   "initial_capital": 100_000.0, "costs_json": "{}", "settings_json": "{}",
                   "engine_version": "test-1", "data_fingerprint": "a" * 16}
            row.update(param_columns("rsi_meanrev", params))
            row.update(make_metrics(rng))
            rows.append(row)
    table = pd.DataFrame(rows)
    trades = None
    if trades_per_row:
        parts = []
        for i in range(len(table)):
            part = make_trades(rng, trades_per_row)
            part["row"] = i
            parts.append(part)
        trades = pd.concat(parts, ignore_index=True)
    return BatchResult(table=table, trades=trades)

"""Performance metrics: a numpy version over an equity curve + trade log (single backtests)
and a numba twin that finishes metrics from running sums (batches keep no equity curve).

Definitions (docs/engine.md pins each with a test). ``r`` are the per-bar equity returns
``E[t] / E[t-1] - 1`` for t = 1..n-1; ``P`` is the bars per year (``core.frequency``: read from
the bars, or given); "undefined" gives NaN.

- num_trades: closed trades, the end-of-data one included.
- win_rate: trades with return > 0 / num_trades.
- total_return: E[-1] / initial - 1.
- cagr: (E[-1] / initial) ** (365.25 / calendar days from first to last bar) - 1 (elapsed
  time, so intraday bars need no factor).
- sharpe_ratio: mean(r) / std(r, ddof=1) x sqrt(P); undefined if std is 0 or < 2 returns.
- sortino_ratio: mean(r) / sqrt(mean(min(r, 0)^2)) x sqrt(P); undefined if no r < 0.
- max_drawdown: min over t of E[t] / max(E[0..t]) - 1 (<= 0).
- calmar_ratio: cagr / |max_drawdown|; undefined if max_drawdown is 0.
- expectancy: mean trade return; best_trade / worst_trade: max / min trade return.
- profit_factor: sum of winning pnl / |sum of losing pnl|; undefined if no losing trade.
- exposure: bars in the market / n (a bar is in the market if a position is held at its close).
- avg_bars_held: mean bars held per trade.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from core.frequency import DAYS_PER_YEAR
from core.types import METRIC_NAMES

N_METRICS = len(METRIC_NAMES)


def _nan_if_empty(values: np.ndarray, reduce) -> float:
    return float(reduce(values)) if values.size else math.nan


def cagr(final_ratio: float, days: float) -> float:
    """Compound annual growth from a final/initial ratio over ``days`` calendar days."""
    if days <= 0 or final_ratio <= 0:
        return math.nan
    return final_ratio ** (DAYS_PER_YEAR / days) - 1.0


def sharpe_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sharpe ratio (risk-free 0) of per-bar returns."""
    if returns.size < 2:
        return math.nan
    std = float(np.std(returns, ddof=1))
    return float(np.mean(returns)) / std * math.sqrt(periods_per_year) if std > 0 else math.nan


def sortino_ratio(returns: np.ndarray, periods_per_year: float) -> float:
    """Annualised Sortino ratio (target 0) of per-bar returns."""
    if returns.size < 2:
        return math.nan
    downside = math.sqrt(float(np.mean(np.minimum(returns, 0.0) ** 2)))
    if downside == 0:
        return math.nan
    return float(np.mean(returns)) / downside * math.sqrt(periods_per_year)


def max_drawdown(equity: np.ndarray) -> float:
    return float(np.min(equity / np.maximum.accumulate(equity) - 1.0))


def profit_factor(pnl: np.ndarray) -> float:
    loss = -float(pnl[pnl < 0].sum())
    return float(pnl[pnl > 0].sum()) / loss if loss > 0 else math.nan


def compute_metrics(
    equity: np.ndarray,
    trade_returns: np.ndarray,
    trade_pnl: np.ndarray,
    bars_held: np.ndarray,
    days: float,
    initial_capital: float,
    periods_per_year: float,
) -> dict[str, float]:
    """Every metric in ``METRIC_NAMES`` from one equity curve and its trade log."""
    equity = np.asarray(equity, dtype=np.float64)
    returns = equity[1:] / equity[:-1] - 1.0
    n_trades = trade_returns.size
    total = equity[-1] / initial_capital
    growth = cagr(total, days)
    drawdown = max_drawdown(equity)
    metrics = {
        "num_trades": float(n_trades),
        "win_rate": float(np.mean(trade_returns > 0)) if n_trades else math.nan,
        "total_return": total - 1.0,
        "cagr": growth,
        "sharpe_ratio": sharpe_ratio(returns, periods_per_year),
        "sortino_ratio": sortino_ratio(returns, periods_per_year),
        "max_drawdown": drawdown,
        "calmar_ratio": growth / -drawdown if drawdown < 0 else math.nan,
        "expectancy": _nan_if_empty(trade_returns, np.mean),
        "profit_factor": profit_factor(trade_pnl) if n_trades else math.nan,
        "exposure": float(np.sum(bars_held)) / equity.size,
        "avg_bars_held": _nan_if_empty(bars_held, np.mean),
        "best_trade": _nan_if_empty(trade_returns, np.max),
        "worst_trade": _nan_if_empty(trade_returns, np.min),
    }
    return {name: float(metrics[name]) for name in METRIC_NAMES}


# --- numba twin: the kernels keep running sums and call this once at the end ---------------

@njit(cache=True, nogil=True, error_model="numpy")
def finish_metrics_nb(
    out, n_bars, final_equity, initial, days, periods_per_year,
    ret_count, ret_sum, ret_sumsq, down_sumsq, worst_drawdown,
    n_trades, wins, trade_ret_sum, gross_win, gross_loss, held_sum, best, worst,
):
    """Write METRIC_NAMES (in order) into ``out`` from the running sums of one backtest."""
    nan = np.nan
    out[0] = n_trades
    out[1] = wins / n_trades if n_trades > 0 else nan
    ratio = final_equity / initial
    out[2] = ratio - 1.0
    growth = nan
    if days > 0 and ratio > 0:
        growth = ratio ** (DAYS_PER_YEAR / days) - 1.0
    out[3] = growth
    sharpe = nan
    sortino = nan
    if ret_count >= 2:
        mean = ret_sum / ret_count
        var = (ret_sumsq - ret_sum * mean) / (ret_count - 1)
        if var > 0:
            sharpe = mean / np.sqrt(var) * np.sqrt(periods_per_year)
        if down_sumsq > 0:
            sortino = mean / np.sqrt(down_sumsq / ret_count) * np.sqrt(periods_per_year)
    out[4] = sharpe
    out[5] = sortino
    out[6] = worst_drawdown
    out[7] = growth / -worst_drawdown if worst_drawdown < 0 else nan
    out[8] = trade_ret_sum / n_trades if n_trades > 0 else nan
    out[9] = gross_win / gross_loss if (n_trades > 0 and gross_loss > 0) else nan
    out[10] = held_sum / n_bars
    out[11] = held_sum / n_trades if n_trades > 0 else nan
    out[12] = best if n_trades > 0 else nan
    out[13] = worst if n_trades > 0 else nan

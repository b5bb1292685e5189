"""Every metric on a hand-computed case (definitions in docs/engine.md)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.metrics import N_METRICS, compute_metrics, finish_metrics_nb
from core.types import METRIC_NAMES

# Equity 100 -> 110 -> 99 -> 121 -> 121 over exactly two calendar years (730.5 days), so
# 4 bar intervals in 2 years: 2 bars per year (the rule of docs/engine.md, Annualisation);
# three trades with returns +10 %, -5 %, +20 %, pnl +10, -5, +20, held 1, 2, 1 bars.
EQUITY = np.array([100.0, 110.0, 99.0, 121.0, 121.0])
TRADE_RETURNS = np.array([0.10, -0.05, 0.20])
TRADE_PNL = np.array([10.0, -5.0, 20.0])
HELD = np.array([1, 2, 1])
DAYS = 730.5
PERIODS = 2.0

# per-bar returns r = 0.1, -0.1, 22/99, 0
R = [0.1, -0.1, 22 / 99, 0.0]
MEAN = (0.1 - 0.1 + 22 / 99 + 0.0) / 4  # 0.0555...
STD = math.sqrt(sum((r - MEAN) ** 2 for r in R) / 3)  # ddof = 1 -> 0.13788...

EXPECTED = {
    "num_trades": 3.0,
    "win_rate": 2 / 3,
    "total_return": 0.21,
    "cagr": 0.10,  # 1.21 ** (365.25 / 730.5) - 1 = sqrt(1.21) - 1
    "sharpe_ratio": MEAN / STD * math.sqrt(PERIODS),  # 0.5698...
    "sortino_ratio": MEAN / math.sqrt(0.1 ** 2 / 4) * math.sqrt(PERIODS),  # 0.0555/0.05*1.414
    "max_drawdown": 99 / 110 - 1,  # -0.1
    "calmar_ratio": 1.0,  # 0.10 / 0.10
    "expectancy": 0.25 / 3,
    "profit_factor": 30 / 5,
    "exposure": 4 / 5,
    "avg_bars_held": 4 / 3,
    "best_trade": 0.20,
    "worst_trade": -0.05,
}


def test_hand_computed_values_are_as_documented():
    assert EXPECTED["sharpe_ratio"] == pytest.approx(0.5698, abs=1e-4)
    assert EXPECTED["sortino_ratio"] == pytest.approx(1.5713, abs=1e-4)


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_each_metric_numpy(name):
    metrics = compute_metrics(EQUITY, TRADE_RETURNS, TRADE_PNL, HELD, DAYS, 100.0, PERIODS)
    assert metrics[name] == pytest.approx(EXPECTED[name], rel=1e-12)


def finish(equity, trade_returns, pnl, held, days, initial, periods_per_year):
    """The numba twin, fed the running sums a kernel would have kept."""
    r = equity[1:] / equity[:-1] - 1
    out = np.empty(N_METRICS)
    finish_metrics_nb(
        out, len(equity), equity[-1], initial, days, periods_per_year,
        len(r), r.sum(), (r * r).sum(), (np.minimum(r, 0) ** 2).sum(),
        (equity / np.maximum.accumulate(equity) - 1).min(),
        len(trade_returns), int((trade_returns > 0).sum()), trade_returns.sum(),
        pnl[pnl > 0].sum(), -pnl[pnl < 0].sum(), held.sum(),
        trade_returns.max() if len(trade_returns) else -np.inf,
        trade_returns.min() if len(trade_returns) else np.inf,
    )
    return dict(zip(METRIC_NAMES, out))


@pytest.mark.parametrize("name", METRIC_NAMES)
def test_each_metric_numba_twin(name):
    metrics = finish(EQUITY, TRADE_RETURNS, TRADE_PNL, HELD, DAYS, 100.0, PERIODS)
    assert metrics[name] == pytest.approx(EXPECTED[name], rel=1e-12)


@pytest.mark.parametrize("metrics_of", [compute_metrics, finish])
def test_undefined_metrics_are_nan(metrics_of):
    flat = np.full(6, 100.0)
    none = np.array([])
    m = metrics_of(flat, none, none, np.array([], dtype=int), 10.0, 100.0, 252.0)
    assert m["num_trades"] == 0 and m["total_return"] == 0 and m["max_drawdown"] == 0
    assert m["exposure"] == 0 and m["cagr"] == 0
    for name in ("win_rate", "sharpe_ratio", "sortino_ratio", "calmar_ratio", "expectancy",
                 "profit_factor", "avg_bars_held", "best_trade", "worst_trade"):
        assert math.isnan(m[name]), name


@pytest.mark.parametrize("metrics_of", [compute_metrics, finish])
def test_no_losing_trade_gives_nan_profit_factor_and_sortino(metrics_of):
    equity = np.array([100.0, 101.0, 103.0, 104.0])
    m = metrics_of(equity, np.array([0.04]), np.array([4.0]), np.array([3]), 3.0, 100.0, 252.0)
    assert math.isnan(m["profit_factor"]) and math.isnan(m["sortino_ratio"])
    assert m["win_rate"] == 1.0 and m["exposure"] == 0.75
    assert math.isnan(m["calmar_ratio"])  # no drawdown


@pytest.mark.parametrize("metrics_of", [compute_metrics, finish])
def test_zero_calendar_days_gives_nan_cagr(metrics_of):
    m = metrics_of(np.array([100.0]), np.array([]), np.array([]), np.array([], dtype=int),
                   0.0, 100.0, 252.0)
    assert math.isnan(m["cagr"]) and math.isnan(m["sharpe_ratio"])


@pytest.mark.parametrize("metrics_of", [compute_metrics, finish])
def test_sharpe_and_sortino_scale_with_the_root_of_the_bars_per_year(metrics_of):
    # the same returns read as weekly bars (52 a year) or daily ones (252): only the two
    # annualised ratios change, each by the square root of the factor
    weekly = metrics_of(EQUITY, TRADE_RETURNS, TRADE_PNL, HELD, DAYS, 100.0, 52.0)
    daily = metrics_of(EQUITY, TRADE_RETURNS, TRADE_PNL, HELD, DAYS, 100.0, 252.0)
    assert weekly["sharpe_ratio"] == pytest.approx(MEAN / STD * math.sqrt(52), rel=1e-12)
    assert daily["sharpe_ratio"] == pytest.approx(6.3960, abs=1e-4)
    assert daily["sortino_ratio"] == pytest.approx(17.6383, abs=1e-4)
    for name in METRIC_NAMES:
        if name not in ("sharpe_ratio", "sortino_ratio"):
            assert weekly[name] == pytest.approx(EXPECTED[name], rel=1e-12), name

"""Walk-forward end to end: winner choice, OOS tests, stitching, gap and stored linking."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from core.canonical import bars_fingerprint
from core.engine import run_backtest
from core.walkforward import load_walk_forward, walk_forward

GRID = {"period": [6, 10, 14], "oversold": [25, 35]}


def _reference_winner(bars, metric, min_trades):
    """Slow reference: every grid cell with run_backtest, first best by metric."""
    best, best_value = None, -math.inf
    for period, oversold in itertools.product(GRID["period"], GRID["oversold"]):
        params = {"period": period, "oversold": oversold}
        m = run_backtest(bars, "rsi_meanrev", params).metrics
        if m["num_trades"] >= min_trades and np.isfinite(m[metric]) and m[metric] > best_value:
            best, best_value = params, m[metric]
    return best, best_value


def test_walk_forward_matches_a_slow_reference_and_links_windows(provider, store):
    bars = provider.load_bars("DEMO01")
    report = walk_forward(bars, "rsi_meanrev", GRID, None, in_sample=200, out_of_sample=100,
                          metric="total_return", min_trades=2, store=store)
    windows = report.windows
    assert len(windows) == (len(bars) - 200) // 100
    level = 100_000.0
    for k, row in windows.iterrows():
        is_bars = bars.iloc[k * 100:k * 100 + 200]
        oos_bars = bars.iloc[k * 100 + 200:k * 100 + 300]
        assert (row["is_start"], row["oos_end"]) == (is_bars.index[0], oos_bars.index[-1])
        params, value = _reference_winner(is_bars, "total_return", 2)
        if params is None:
            assert row["params_json"] is None
            continue
        assert row["is_total_return"] == pytest.approx(value, rel=1e-12)
        oos = run_backtest(oos_bars, "rsi_meanrev", params)
        assert row["oos_total_return"] == pytest.approx(oos.metrics["total_return"], rel=1e-12)
        level *= 1 + oos.metrics["total_return"]
    assert len(report.oos_equity) == 100 * len(windows)
    assert report.oos_equity.index.is_monotonic_increasing
    assert float(report.oos_equity.iloc[-1]) == pytest.approx(level, rel=1e-9)
    summary = report.summary()
    assert summary["is_oos_gap"] == pytest.approx(
        windows["is_total_return"].mean() - windows["oos_total_return"].mean())

    stored = load_walk_forward(store, report.parent_id)
    winners = windows["params_json"].notna().sum()
    assert len(stored) == 2 * winners
    for _, row in stored.iterrows():
        window = windows.iloc[row["window"]]
        assert row["backtest_id"] == window[f"{row['part']}_id"]
        first = window["is_start"] if row["part"] == "is" else window["oos_start"]
        assert pd.Timestamp(row["start"]) == first
        details = store.get_detailed_results(row["backtest_id"])
        assert details["equity"] is not None  # window backtests keep their curves
        last = window["is_end"] if row["part"] == "is" else window["oos_end"]
        assert details["data_fingerprint"] == bars_fingerprint(bars.loc[first:last])


def test_anchored_walk_forward_grows_the_in_sample(provider):
    bars = provider.load_bars("DEMO02")
    report = walk_forward(bars, "rsi_meanrev", GRID, [{"type": "stop_loss", "pct": 0.05}],
                          in_sample=150, out_of_sample=100, anchored=True, metric="sharpe_ratio")
    starts = report.windows["is_start"].unique()
    assert len(starts) == 1 and starts[0] == bars.index[0]
    assert report.windows["is_end"].tolist() == [bars.index[149 + 100 * k]
                                                 for k in range(len(report.windows))]


def test_same_inputs_same_parent_id(provider):
    bars = provider.load_bars("DEMO03")
    a = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=150)
    b = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=150)
    c = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=100)
    assert a.parent_id == b.parent_id != c.parent_id

"""Walk-forward end to end: winner choice, OOS tests, stitching, gap, efficiency, and the
windows stored in the main store under their own window scope, read back as a report."""
from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from core.canonical import bars_fingerprint
from core.engine import run_backtest
from core.errors import NotFoundError
from core.walkforward import (list_walk_forwards, load_walk_forward, stored_windows,
                               walk_forward, window_summary)

GRID = {"period": [6, 10, 14], "oversold": [25, 35]}
#: Enough in-sample trades that some (not all) windows of DEMO03 have no winner.
MIN_TRADES_FOR_CASH = 6


def figures(report) -> dict:
    """A report's summary figures (without its id)."""
    return {k: v for k, v in report.summary().items() if k != "parent_id"}


def _reference_winner(bars, metric, min_trades):
    """Slow reference: every grid cell with run_backtest, first best by metric."""
    best, best_value = None, -math.inf
    for period, oversold in itertools.product(GRID["period"], GRID["oversold"]):
        params = {"period": period, "oversold": oversold}
        m = run_backtest(bars, "rsi_meanrev", params).metrics
        if m["num_trades"] >= min_trades and np.isfinite(m[metric]) and m[metric] > best_value:
            best, best_value = params, m[metric]
    return best, best_value


def test_walk_forward_matches_a_slow_reference_and_links_windows(provider, store, tmp_path):
    bars = provider.load_bars("DEMO01")
    calls = []
    report = walk_forward(bars, "rsi_meanrev", GRID, None, in_sample=200, out_of_sample=100,
                          metric="total_return", min_trades=2, store=store,
                          progress=lambda done, total: calls.append((done, total)))
    windows = report.windows
    assert len(windows) == (len(bars) - 200) // 100
    assert calls == [(k + 1, len(windows)) for k in range(len(windows))]
    level = 100_000.0
    for k, row in windows.iterrows():
        is_bars = bars.iloc[k * 100:k * 100 + 200]
        oos_bars = bars.iloc[k * 100 + 200:k * 100 + 300]
        assert (row["is_start"], row["oos_end"]) == (is_bars.index[0], oos_bars.index[-1])
        params, value = _reference_winner(is_bars, "total_return", 2)
        if params is None:
            assert pd.isna(row["params_json"])
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

    stored = stored_windows(store, report.parent_id)
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
        assert details["scope_detail"]["window"] == {"start": first.strftime("%Y-%m-%d"),
                                                     "end": last.strftime("%Y-%m-%d")}
    assert not (tmp_path / "walkforward.zarr").exists()  # one store: no second one is created


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


def test_window_backtests_leave_the_full_history_record_alone(provider, store):
    bars = provider.load_bars("DEMO02")
    params = {"period": 6, "oversold": 35}
    full = store.store_backtest(run_backtest(bars, "rsi_meanrev", params, symbol="DEMO02"))
    report = walk_forward(bars, "rsi_meanrev", {"period": [6], "oversold": [35]},
                          in_sample=200, out_of_sample=100, store=store)
    assert report.windows["params_json"].notna().all()  # every window stored this config
    assert store.get_stats("DEMO02", "rsi_meanrev", params)["backtest_id"] == full
    every = store.query(include_history=True, scope="all")
    assert len(every) == 1 + 2 * len(report.windows)


def test_a_stored_walk_forward_reads_back_as_the_report_it_ran(provider, store):
    bars = provider.load_bars("DEMO03")
    report = walk_forward(bars, "rsi_meanrev", GRID, [None, {"type": "stop_loss", "pct": 0.05}],
                          in_sample=150, out_of_sample=80, anchored=True, metric="sharpe_ratio",
                          min_trades=MIN_TRADES_FOR_CASH, store=store)
    cash = report.windows["params_json"].isna()
    assert cash.any() and not cash.all()  # windows in cash are recorded, not stored
    loaded = load_walk_forward(store, report.parent_id)
    assert (loaded.symbol, loaded.strategy, loaded.metric) == ("DEMO03", "rsi_meanrev",
                                                               "sharpe_ratio")
    assert loaded.spec == report.spec and loaded.spec["scheme"] == "anchored"
    assert sorted(loaded.stored_ids) == sorted(report.stored_ids)
    pd.testing.assert_frame_equal(loaded.windows, report.windows, rtol=1e-12)
    pd.testing.assert_series_equal(report.oos_equity.loc[loaded.oos_equity.index],
                                   loaded.oos_equity, rtol=1e-12)
    assert loaded.summary().pop("parent_id") == report.parent_id
    assert figures(loaded) == pytest.approx(figures(report), rel=1e-12, nan_ok=True)
    with pytest.raises(NotFoundError, match="No stored walk-forward 'wfnope'"):
        load_walk_forward(store, "wfnope")


def test_each_walk_forward_is_listed_once_and_a_rerun_replaces_its_windows(provider, store):
    bars = provider.load_bars("DEMO04")
    first = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=100, store=store)
    other = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=150,
                         anchored=True, store=store)
    again = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=100, store=store)
    assert again.parent_id == first.parent_id != other.parent_id
    assert set(again.stored_ids).isdisjoint(first.stored_ids)
    for bid in first.stored_ids:
        with pytest.raises(NotFoundError):
            store.get_detailed_results(bid)
    listed = list_walk_forwards(store)
    assert listed["parent_id"].tolist() == [again.parent_id, other.parent_id]  # newest first
    row = listed.iloc[0]
    assert (row.symbol, row.strategy, row.scheme, row.in_sample, row.out_of_sample, row.step,
            row.metric) == ("DEMO04", "rsi_meanrev", "rolling", 200, 100, 100, "sharpe_ratio")
    summary = again.summary()
    assert (row.windows, row.windows_with_winner) == (summary["windows"],
                                                      summary["windows_with_winner"])
    assert row.oos_total_return == pytest.approx(summary["oos_total_return"], rel=1e-12)
    assert row.wf_efficiency == pytest.approx(summary["wf_efficiency"], rel=1e-12, nan_ok=True)
    assert listed.iloc[1].scheme == "anchored"


def test_walk_forward_efficiency_is_oos_over_is_annualised_return(provider):
    bars = provider.load_bars("DEMO01")
    report = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=100)
    is_cagr, oos_cagr = [], []
    for k, row in report.windows.iterrows():
        if pd.isna(row["params_json"]):
            continue
        params, rule = json.loads(row["params_json"]), json.loads(row["exit_json"])
        is_bars = bars.iloc[k * 100:k * 100 + 200]
        oos_bars = bars.iloc[k * 100 + 200:k * 100 + 300]
        is_cagr.append(run_backtest(is_bars, "rsi_meanrev", params, rule).metrics["cagr"])
        oos_cagr.append(run_backtest(oos_bars, "rsi_meanrev", params, rule).metrics["cagr"])
    assert np.mean(is_cagr) > 0
    summary = report.summary()
    assert summary["wf_efficiency"] == pytest.approx(np.mean(oos_cagr) / np.mean(is_cagr),
                                                     rel=1e-12)
    assert summary["oos_total_return"] == pytest.approx(
        float(report.oos_equity.iloc[-1]) / 100_000.0 - 1.0, rel=1e-12)


def test_efficiency_is_empty_unless_the_in_sample_return_is_positive():
    windows = pd.DataFrame({"params_json": ["{}", "{}", None], "is_cagr": [-0.3, 0.1, math.nan],
                            "oos_cagr": [0.2, 0.1, math.nan], "oos_return": [0.1, -0.05, 0.0]})
    summary = window_summary(windows, None)
    assert math.isnan(summary["wf_efficiency"])
    assert summary["oos_total_return"] == pytest.approx(1.1 * 0.95 - 1.0)
    assert (summary["windows"], summary["windows_with_winner"]) == (3, 2)
    windows["is_cagr"] = [0.3, 0.1, math.nan]
    assert window_summary(windows, None)["wf_efficiency"] == pytest.approx(0.15 / 0.2)

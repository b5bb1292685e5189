"""Heatmap, stability, top configurations and universe view on hand-built cell tables."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.canonical import canonical_json, stable_hash
from core.errors import ValidationError
from core.exits import canonical_exit_rule
from core.strategies import validate_params
from core.sweep import heatmap_data, stability_score, top_configurations, universe_view

PERIODS, OVERSOLD = [10, 14, 20], [25, 30, 35]
SHARPE = np.array([[0.5, 0.6, 0.4],   # period 10, oversold 25 / 30 / 35
                   [0.7, 1.2, 0.8],   # period 14
                   [0.3, 0.9, 0.5]])  # period 20


def _cell(symbol, params, rule=None, **metrics):
    params = validate_params("rsi_meanrev", params)
    rule = canonical_exit_rule(rule)
    row = {"symbol": symbol, "strategy": "rsi_meanrev", "params": canonical_json(params),
           "exit_rule": canonical_json(rule), "params_hash": stable_hash(params),
           "exit_hash": stable_hash(rule), "rsi_period": float(params["period"]),
           "rsi_oversold": params["oversold"], "rsi_overbought": params["overbought"],
           "num_trades": 10.0, "win_rate": 0.5, "total_return": 0.1, "sharpe_ratio": 0.0}
    row.update(metrics)
    return row


def _grid_frame(trades=None, symbols=("AAA",), shift=0.0):
    rows = []
    for k, symbol in enumerate(symbols):
        for i, p in enumerate(PERIODS):
            for j, o in enumerate(OVERSOLD):
                n = 10.0 if trades is None else trades[i][j]
                rows.append(_cell(symbol, {"period": p, "oversold": o},
                                  sharpe_ratio=SHARPE[i, j] + k * shift, num_trades=n))
    return pd.DataFrame(rows)


def test_heatmap_is_the_metric_pivot():
    pivot = heatmap_data(_grid_frame(), "sharpe_ratio", "oversold", "period")
    assert list(pivot.index) == PERIODS and list(pivot.columns) == OVERSOLD
    np.testing.assert_allclose(pivot.to_numpy(), SHARPE)


def test_heatmap_min_trades_masks_and_symbols_aggregate_by_median():
    trades = [[10, 10, 10], [2, 10, 10], [10, 10, 10]]
    pivot = heatmap_data(_grid_frame(trades), "sharpe_ratio", "oversold", "period", min_trades=5)
    assert math.isnan(pivot.loc[14, 25]) and pivot.loc[14, 30] == pytest.approx(1.2)
    two = _grid_frame(symbols=("AAA", "BBB"), shift=0.2)  # BBB = AAA + 0.2: median = +0.1
    pivot = heatmap_data(two, "sharpe_ratio", "rsi_oversold", "rsi_period")
    np.testing.assert_allclose(pivot.to_numpy(), SHARPE + 0.1)
    only_b = heatmap_data(two, "sharpe_ratio", "oversold", "period", {"symbol": "BBB"})
    np.testing.assert_allclose(only_b.to_numpy(), SHARPE + 0.2)


def test_stability_score_hand_computed():
    out = stability_score(_grid_frame(), "sharpe_ratio")
    assert out["best"] == pytest.approx(1.2)
    assert out["best_params"] == {"rsi_period": 14.0, "rsi_oversold": 30.0, "rsi_overbought": 70.0}
    assert out["n_neighbours"] == 8
    assert out["neighbour_mean"] == pytest.approx(4.7 / 8)
    assert out["neighbour_min"] == pytest.approx(0.3)
    assert out["drop"] == pytest.approx(1.2 - 4.7 / 8)
    assert out["score"] == pytest.approx(1 - (1.2 - 4.7 / 8) / 1.2)


def test_stability_min_trades_guard_moves_the_best_cell():
    trades = [[10, 10, 10], [10, 2, 10], [10, 10, 10]]
    out = stability_score(_grid_frame(trades), "sharpe_ratio", min_trades=5)
    assert out["best"] == pytest.approx(0.9)  # period 20, oversold 30 (corner row)
    assert out["n_neighbours"] == 5
    assert out["neighbour_mean"] == pytest.approx((0.7 + 1.2 + 0.8 + 0.3 + 0.5) / 5)
    assert out["score"] == pytest.approx(1 - (0.9 - 0.7) / 0.9)
    with pytest.raises(ValidationError, match="at least 50 trades"):
        stability_score(_grid_frame(), "sharpe_ratio", min_trades=50)


def test_top_configurations_orders_and_guards():
    trades = [[10, 10, 10], [10, 2, 10], [10, 10, 10]]
    top = top_configurations(_grid_frame(trades), "sharpe_ratio", n=3, min_trades=5)
    assert top["sharpe_ratio"].tolist() == pytest.approx([0.9, 0.8, 0.7])
    assert top["rsi_period"].tolist() == [20.0, 14.0, 14.0]
    assert top["trades"].tolist() == [10.0, 10.0, 10.0]


def test_universe_view_hand_computed():
    config = {"period": 10}
    rows = [
        _cell("AAA", config, total_return=0.10, sharpe_ratio=1.0, num_trades=10, win_rate=0.6),
        _cell("BBB", config, total_return=-0.05, sharpe_ratio=-0.5, num_trades=4, win_rate=0.25),
        _cell("CCC", config, total_return=0.20, sharpe_ratio=1.5, num_trades=6, win_rate=0.5),
        _cell("DDD", config, total_return=0.0, sharpe_ratio=0.2, num_trades=0, win_rate=np.nan),
        _cell("AAA", {"period": 12}, total_return=9.0),  # another configuration
        _cell("EEE", config, {"type": "stop_loss", "pct": 0.05}, total_return=9.0),  # other exit
    ]
    view = universe_view(pd.DataFrame(rows), "rsi_meanrev", config, None, n_best=2)
    assert view["n_symbols"] == 4
    assert view["share_positive"] == 0.5
    assert view["median_sharpe"] == pytest.approx(0.6)
    assert view["pooled_trades"] == 20
    assert view["pooled_win_rate"] == pytest.approx((6 + 1 + 3) / 20)
    assert view["best"] == ["CCC", "AAA"] and view["worst"] == ["BBB", "DDD"]
    assert view["table"]["symbol"].tolist() == ["CCC", "AAA", "DDD", "BBB"]


def test_readouts_name_unknown_columns():
    with pytest.raises(ValidationError, match="Did you mean"):
        heatmap_data(_grid_frame(), "sharpe_ratio", "oversld", "period")

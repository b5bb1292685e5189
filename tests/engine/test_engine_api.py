"""run_backtest / run_many: result shapes, settings, look-ahead, grids and bad input."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.canonical import bars_fingerprint, canonical_json
from core.data.validate import validate_bars
from core.engine import ENGINE_VERSION, canonical_costs, expand_grid, run_backtest, run_many
from core.errors import DataValidationError, ParamError, UnknownExitRuleError, UnknownStrategyError
from core.types import METRIC_NAMES, TRADE_COLUMNS, BacktestResult

from .conftest import bars_from, make_bars

ROOT = Path(__file__).resolve().parents[2]
RSI = {"period": 5, "oversold": 35, "overbought": 65}


def test_result_shape(bars):
    result = run_backtest(bars, "rsi_meanrev", RSI, {"type": "stop_loss", "pct": 0.05})
    assert isinstance(result, BacktestResult)
    assert result.symbol == "TEST" and result.strategy == "rsi_meanrev"
    assert result.params == {"period": 5, "oversold": 35.0, "overbought": 65.0}
    assert result.exit_rule == [{"type": "signal"}, {"type": "stop_loss", "pct": 0.05}]
    assert set(result.metrics) == set(METRIC_NAMES)
    assert result.equity.index.equals(bars.index) and result.equity.iloc[0] == 100_000
    assert tuple(result.trades.columns) == (*TRADE_COLUMNS, "direction") and len(result.trades) > 2
    assert (result.trades["direction"] == "long").all() and result.direction == "long"
    assert result.trades["bars_held"].dtype == np.int64
    assert result.start == bars.index[0] and result.end == bars.index[-1]
    assert result.costs == {"commission": 0.0, "fixed": 0.0, "slippage_bps": 0.0}
    assert result.settings == {"whole_shares": False, "stop_on_entry_bar": True}
    assert result.engine_version == ENGINE_VERSION
    assert result.data_fingerprint == bars_fingerprint(validate_bars(bars))
    assert result.metrics["num_trades"] == len(result.trades)


@pytest.mark.parametrize("direction", ["long", "short"])
def test_final_equity_is_initial_plus_every_pnl(bars, direction):
    params = {"period": 10, "exit_period": 5, "direction": direction}
    result = run_backtest(bars, "breakout", params,
                          costs={"commission": 0.002, "fixed": 3, "slippage_bps": 7,
                                 "borrow_rate": 0.04})
    assert result.metrics["num_trades"] >= 3
    assert result.equity.iloc[-1] == pytest.approx(100_000 + result.trades["pnl"].sum(), rel=1e-12)
    assert result.metrics["total_return"] == pytest.approx(result.equity.iloc[-1] / 1e5 - 1)


def test_symbol_and_fingerprint_come_from_attrs(bars):
    from core.canonical import stamp_fingerprint

    stamp_fingerprint(bars, "feedfacefeedface")
    result = run_backtest(bars, "rsi_meanrev")
    assert result.data_fingerprint == "feedfacefeedface" and result.symbol == "TEST"
    assert run_backtest(bars, "rsi_meanrev", symbol="XYZ").symbol == "XYZ"


def test_trades_follow_the_fill_convention(bars):
    """Entries fill at the open of the bar after the signal; signal exits likewise."""
    result = run_backtest(bars, "rsi_meanrev", RSI)
    from core.strategies import get_strategy
    arrays = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    entries, exits = get_strategy("rsi_meanrev").signals(*arrays, **RSI)
    for trade in result.trades.itertuples():
        i = bars.index.get_loc(trade.entry_time)
        assert entries[i - 1] and trade.entry_price == bars["open"].iloc[i]
        if trade.exit_reason == "signal":
            j = bars.index.get_loc(trade.exit_time)
            assert exits[j - 1] and trade.exit_price == bars["open"].iloc[j]


@settings(max_examples=25)
@given(st.integers(0, 500), st.integers(30, 199),
       st.sampled_from([None, {"type": "trailing_stop", "pct": 0.03},
                        [{"type": "stop_loss", "pct": 0.02}, {"type": "time_stop", "bars": 4}]]))
def test_no_look_ahead(seed, cut, rule):
    """Truncating after bar t changes nothing up to t (bar t's close liquidates if long)."""
    bars = make_bars(200, seed)
    full = run_backtest(bars, "rsi_meanrev", RSI, rule)
    part = run_backtest(bars.iloc[:cut + 1], "rsi_meanrev", RSI, rule)
    np.testing.assert_array_equal(part.equity.to_numpy(), full.equity.to_numpy()[:cut + 1])
    last = bars.index[cut]
    closed = full.trades[full.trades["exit_time"] <= last]
    head = part.trades.iloc[:len(closed)]
    pd.testing.assert_frame_equal(head.reset_index(drop=True), closed.reset_index(drop=True))
    rest = part.trades.iloc[len(closed):]
    assert len(rest) <= 1 and (rest["exit_reason"] == "end_of_data").all()


def test_whole_shares_and_initial_capital(bars):
    result = run_backtest(bars, "rsi_meanrev", RSI, whole_shares=True, initial_capital=10_000)
    units = result.trades["units"].to_numpy()
    assert (units == np.floor(units)).all() and (units > 0).all()
    assert result.equity.iloc[0] == 10_000 and result.initial_capital == 10_000.0
    assert result.settings["whole_shares"] is True


def test_stop_on_entry_bar_false_is_recorded(bars):
    result = run_backtest(bars, "rsi_meanrev", RSI, {"type": "stop_loss", "pct": 0.01},
                          stop_on_entry_bar=False)
    assert result.settings == {"whole_shares": False, "stop_on_entry_bar": False}
    assert (result.trades["bars_held"] > 0).all()


def test_costs_canonical_form():
    assert canonical_costs({"commission": 0.001, "slippage_bps": 5}) == {
        "commission": 0.001, "fixed": 0.0, "slippage_bps": 5.0}
    with pytest.raises(ParamError, match="Did you mean 'commission'"):
        canonical_costs({"comission": 0.001})
    with pytest.raises(ParamError, match="commission=-0.1 is out of range"):
        canonical_costs({"commission": -0.1})
    with pytest.raises(ParamError, match="must be a number"):
        canonical_costs({"fixed": "1"})
    with pytest.raises(ParamError, match="fixed=inf is out of range"):
        canonical_costs({"fixed": float("inf")})


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b.assign(close=b["close"].where(b.index != b.index[5])), "NaN"),
    (lambda b: b.assign(low=-b["low"]), "non-positive"),
    (lambda b: b.iloc[:10], r"10 bars is too few; rsi_meanrev with period=14.* needs at least 16"),
    (lambda b: b.drop(columns="close"), "missing close"),
])
def test_bad_bars_raise_data_validation_error(bars, mutate, message):
    with pytest.raises(DataValidationError, match=message):
        run_backtest(mutate(bars), "rsi_meanrev")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"strategy": "rsi_mean"}, UnknownStrategyError, "Did you mean 'rsi_meanrev'"),
    ({"params": {"period": 0}}, ParamError, "out of range"),
    ({"exit_rule": {"type": "trailing"}}, UnknownExitRuleError, "Did you mean 'trailing_stop'"),
    ({"initial_capital": -5}, ParamError, "initial_capital=-5.0"),
    ({"initial_capital": 10, "costs": {"fixed": 10}}, ParamError, "above the fixed cost"),
])
def test_bad_arguments_are_named(bars, kwargs, error, message):
    args = {"strategy": "rsi_meanrev", **kwargs}
    with pytest.raises(error, match=message):
        run_backtest(bars, **args)


def test_too_few_bars_in_a_batch_names_the_symbol():
    with pytest.raises(DataValidationError, match="SHORT: 20 bars is too few.*period=30"):
        run_many({"OK": make_bars(100), "SHORT": make_bars(20)}, "rsi_meanrev",
                 {"period": [5, 30]})


def test_expand_grid_product_order_defaults_and_skips():
    cells = expand_grid("ma_crossover", {"fast": [5, 20], "slow": [10, 30]})
    assert cells == [
        {"fast": 5, "slow": 10, "kind": "sma"},
        {"fast": 5, "slow": 30, "kind": "sma"},
        {"fast": 20, "slow": 30, "kind": "sma"},  # (20, 10) breaks fast < slow: skipped
    ]
    assert expand_grid("rsi_meanrev", {"period": [14, 14.0]}) == [
        {"period": 14, "oversold": 30.0, "overbought": 70.0}]
    assert len(expand_grid("rsi_meanrev", {"period": range(5, 31), "oversold": range(20, 41, 4),
                                           "overbought": range(60, 81, 4)})) == 936


@pytest.mark.parametrize("grid, message", [
    ({"perio": [3]}, "Did you mean 'period'"),
    ({"period": [3, 1]}, "period=1 is out of range"),
    ({"period": []}, "no values"),
    ([{"period": 3}, {"period": "x"}], "must be a number"),
    ({"oversold": [80], "overbought": [70]}, "no valid combination"),
    ("period=3", "must be a dict of lists"),
])
def test_bad_grids(grid, message):
    with pytest.raises(ParamError, match=message):
        expand_grid("rsi_meanrev", grid)


def test_run_many_table_columns_and_order():
    data = {"AAA": make_bars(150, 1), "BBB": make_bars(160, 2)}
    calls = []
    batch = run_many(data, "ma_crossover", {"fast": [3, 5], "slow": [20]},
                     [None, {"type": "stop_loss", "pct": 0.05}], costs={"commission": 0.001},
                     progress=lambda done, total: calls.append((done, total)))
    table = batch.table
    assert list(table.columns) == [
        "symbol", "strategy", "params_json", "params_hash", "exit_json", "exit_hash", "start",
        "end", "initial_capital", "costs_json", "settings_json", "engine_version",
        "data_fingerprint", "periods_per_year", "bar_seconds", "source", "window_json",
        "definition", "ma_fast", "ma_slow", "ma_kind",
        *METRIC_NAMES]
    assert table["symbol"].tolist() == ["AAA"] * 4 + ["BBB"] * 4
    assert table["ma_fast"].tolist() == [3, 3, 5, 5] * 2
    assert table["exit_json"].tolist()[:2] == [
        '[{"type":"signal"}]', '[{"type":"signal"},{"pct":0.05,"type":"stop_loss"}]']
    assert table["costs_json"].iloc[0] == canonical_json(
        {"commission": 0.001, "fixed": 0.0, "slippage_bps": 0.0})
    assert json.loads(table["settings_json"].iloc[0]) == {"stop_on_entry_bar": True,
                                                          "whole_shares": False}
    assert table["start"].iloc[4] == data["BBB"].index[0]
    assert table["end"].iloc[0] == data["AAA"].index[-1]
    # under a year of weekday bars: the nominal 252 exchange days, one day apart
    assert table["periods_per_year"].tolist() == [252.0] * 8
    assert table["bar_seconds"].tolist() == [86_400.0] * 8
    assert batch.trades is None and calls == [(1, 2), (2, 2)]


@pytest.mark.parametrize("strategy, grid", [
    ("rsi_meanrev", {"period": [5, 14], "oversold": [20, 25.5], "overbought": [70.0, 80]}),
    ("ma_crossover", {"fast": [3], "slow": [10, 20], "kind": ["sma", "ema"]}),
    ("bollinger_reversion", {"num_std": [0.5, 1.25, 2]}),
])
def test_batch_params_json_and_hash_equal_the_canonical_ones(strategy, grid):
    from core.canonical import stable_hash
    batch = run_many({"A": make_bars(120)}, strategy, grid)
    cells = expand_grid(strategy, grid)
    assert batch.table["params_json"].tolist() == [canonical_json(c) for c in cells]
    assert batch.table["params_hash"].tolist() == [stable_hash(c) for c in cells]


def test_run_many_trades_carry_their_row():
    data = {"AAA": make_bars(150, 1), "BBB": make_bars(160, 2)}
    batch = run_many(data, "rsi_meanrev", [RSI, {"period": 9}], with_trades=True)
    trades = batch.trades
    assert list(trades.columns) == [*TRADE_COLUMNS, "direction", "row"]
    counts = trades.groupby("row").size().reindex(range(len(batch)), fill_value=0)
    assert counts.tolist() == batch.table["num_trades"].astype(int).tolist()
    assert trades["row"].is_monotonic_increasing
    single = run_backtest(data["BBB"], "rsi_meanrev", {"period": 9})
    pd.testing.assert_frame_equal(
        trades[trades["row"] == 3].drop(columns="row").reset_index(drop=True), single.trades)


def test_importing_the_engine_pulls_in_neither_zarr_nor_streamlit():
    code = ("import sys, core.engine; bad = [m for m in ('zarr', 'streamlit') if m in sys.modules];"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_nan_metrics_for_a_run_without_trades():
    flat = bars_from(*([[100.0] * 30] * 4))
    result = run_backtest(flat, "rsi_meanrev")
    assert result.metrics["num_trades"] == 0 and result.trades.empty
    assert math.isnan(result.metrics["win_rate"]) and math.isnan(result.metrics["sharpe_ratio"])
    assert result.metrics["total_return"] == 0


def _grid_rows(seed: int) -> list:
    batch = run_many({"A": make_bars(200, seed)}, "rsi_meanrev", {"period": [4, 6, 9]},
                     [None, {"type": "stop_loss", "pct": 0.03}], with_trades=True)
    return [batch.table["total_return"].tolist(), len(batch.trades)]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_grids_run_in_forked_children_after_the_parent_ran_one():
    """The OpenMP layer cannot be reused after fork(); children fall back to one thread."""
    import multiprocessing

    expected = [_grid_rows(seed) for seed in range(3)]  # the parent uses the parallel kernel
    with multiprocessing.get_context("fork").Pool(2) as pool:
        got = pool.map_async(_grid_rows, range(3)).get(timeout=120)
    assert got == expected


def test_serial_and_parallel_grid_kernels_agree(monkeypatch):
    from core import kernels

    parallel = _grid_rows(11)
    monkeypatch.setattr(kernels, "parallel_allowed", lambda: False)
    assert _grid_rows(11) == parallel


def test_cells_with_more_trades_than_slots_take_the_exact_route(monkeypatch):
    from core import kernels

    data = {"A": make_bars(220, 5), "B": make_bars(200, 6)}
    grid = {"period": [3, 5, 8, 40]}
    one_pass = run_many(data, "rsi_meanrev", grid, [None], with_trades=True)
    counts = one_pass.table["num_trades"]
    slots = int(counts.median())
    assert (counts > slots).any() and (counts <= slots).any()  # both routes are taken
    monkeypatch.setattr(kernels, "TRADE_SLOTS", slots)
    exact = run_many(data, "rsi_meanrev", grid, [None], with_trades=True)
    pd.testing.assert_frame_equal(exact.table, one_pass.table)
    pd.testing.assert_frame_equal(exact.trades, one_pass.trades)
    single = run_backtest(data["B"], "rsi_meanrev", {"period": 3})
    pd.testing.assert_frame_equal(
        exact.trades[exact.trades["row"] == 4].drop(columns="row").reset_index(drop=True),
        single.trades)


def test_a_single_bar_runs_and_yields_no_trades():
    one = make_bars(1)
    result = run_backtest(one, "rsi_meanrev", exit_rule={"type": "stop_loss", "pct": 0.05})
    assert result.metrics["num_trades"] == 0
    assert result.metrics["total_return"] == 0.0
    assert len(result.equity) == 1 and result.trades.empty


def test_a_slice_does_not_reuse_its_parents_fingerprint(bars):
    from core.canonical import stamp_fingerprint

    stamp_fingerprint(bars)
    piece = bars.iloc[: len(bars) // 2]
    assert piece.attrs["fingerprint"] == bars.attrs["fingerprint"]  # pandas copied the attrs
    result = run_backtest(piece, "rsi_meanrev")
    assert result.data_fingerprint == bars_fingerprint(validate_bars(piece))
    assert result.data_fingerprint != bars.attrs["fingerprint"]

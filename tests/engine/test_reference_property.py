"""The numba engine agrees with the slow reference loop on random data, params, exits and both
directions (long and short)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from core.engine import run_backtest, run_many
from core.exits import canonical_exit_rule
from core.metrics import compute_metrics
from core.strategies import validate_params
from core.types import METRIC_NAMES

from . import reference
from .conftest import make_bars

PARAMS = {
    "rsi_meanrev": st.fixed_dictionaries({
        "period": st.integers(2, 20),
        "oversold": st.sampled_from([20.0, 30.0, 35.5, 45.0]),
        "overbought": st.sampled_from([55.0, 60.0, 70.0, 80.0]),
    }),
    "ma_crossover": st.fixed_dictionaries({
        "fast": st.integers(1, 8),
        "slow": st.integers(9, 30),
        "kind": st.sampled_from(["sma", "ema"]),
    }),
    # period 2 with 1 std is degenerate (the lower band is then min(c[t-1], c[t]), so the
    # crossing value is 0 up to rounding): left out, as rounding is not a convention.
    "bollinger_reversion": st.fixed_dictionaries({
        "period": st.integers(3, 30),
        "num_std": st.sampled_from([0.5, 1.0, 2.0]),
    }),
    "breakout": st.fixed_dictionaries({
        "period": st.integers(1, 30),
        "exit_period": st.integers(1, 20),
    }),
}

EXIT_PIECES = st.fixed_dictionaries({}, optional={
    "stop_loss": st.sampled_from([0.01, 0.03, 0.08]),
    "take_profit": st.sampled_from([0.02, 0.05, 0.2]),
    "trailing_stop": st.sampled_from([0.02, 0.05]),
    "time_stop": st.integers(1, 15),
    "atr_stop": st.tuples(st.sampled_from([0.5, 1.5, 3.0]), st.integers(1, 20)),
    "signal_off": st.just(True),
})

COSTS = st.one_of(
    st.none(),
    st.fixed_dictionaries({
        "commission": st.sampled_from([0.0, 0.001, 0.01]),
        "fixed": st.sampled_from([0.0, 1.0, 25.0]),
        "slippage_bps": st.sampled_from([0.0, 5.0, 50.0]),
        "borrow_rate": st.sampled_from([0.0, 0.03, 0.8]),
    }),
)


def exit_rule_from(pieces: dict) -> list[dict]:
    rule = []
    for kind, value in pieces.items():
        if kind == "signal_off":
            rule.append({"type": "signal", "enabled": False})
        elif kind == "time_stop":
            rule.append({"type": "time_stop", "bars": value})
        elif kind == "atr_stop":
            rule.append({"type": "atr_stop", "mult": value[0], "period": value[1]})
        else:
            rule.append({"type": kind, "pct": value})
    return canonical_exit_rule(rule)


@st.composite
def cases(draw):
    strategy = draw(st.sampled_from(sorted(PARAMS)))
    params = {**draw(PARAMS[strategy]), "direction": draw(st.sampled_from(["long", "short"]))}
    return {
        "strategy": strategy,
        "params": validate_params(strategy, params),
        "exit_rule": exit_rule_from(draw(EXIT_PIECES)),
        "costs": draw(COSTS),
        "initial": draw(st.sampled_from([100_000.0, 5_000.0, 250.0])),
        "whole_shares": draw(st.booleans()),
        "stop_on_entry_bar": draw(st.booleans()),
        "seed": draw(st.integers(0, 10_000)),
        "n": draw(st.integers(40, 260)),
        "vol": draw(st.sampled_from([0.01, 0.03])),
    }


def assert_close(actual, expected, what):
    if isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), f"{what}: expected NaN, got {actual}"
    else:
        assert math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9), (
            f"{what}: {actual} != {expected}"
        )


def assert_same_trades(frame, index, ref_trades):
    assert len(frame) == len(ref_trades)
    for row, ref in zip(frame.itertuples(index=False), ref_trades):
        row = row._asdict()
        assert row["entry_time"] == index[ref["entry_bar"]]
        assert row["exit_time"] == index[ref["exit_bar"]]
        assert row["exit_reason"] == ref["exit_reason"]
        assert row["bars_held"] == ref["bars_held"]
        for field in ("entry_price", "exit_price", "units", "pnl"):
            assert_close(row[field], ref[field], field)
        assert_close(row["_6"], ref["return"], "return")  # 'return' is a keyword


def run_case(case):
    bars = make_bars(case["n"], case["seed"], case["vol"])
    kwargs = dict(costs=case["costs"], initial_capital=case["initial"],
                  whole_shares=case["whole_shares"], stop_on_entry_bar=case["stop_on_entry_bar"])
    result = run_backtest(bars, case["strategy"], case["params"], case["exit_rule"], **kwargs)
    ref_metrics, ref_trades, ref_equity = reference.backtest(
        bars, case["strategy"], case["params"], case["exit_rule"], case["costs"],
        case["initial"], case["whole_shares"], case["stop_on_entry_bar"],
    )
    return bars, kwargs, result, ref_metrics, ref_trades, ref_equity


@settings(max_examples=120)
@given(cases())
def test_run_backtest_matches_reference(case):
    bars, _, result, ref_metrics, ref_trades, ref_equity = run_case(case)
    assert_same_trades(result.trades, bars.index, ref_trades)
    np.testing.assert_allclose(result.equity.to_numpy(), ref_equity, rtol=1e-9, atol=1e-9)
    for name in METRIC_NAMES:
        assert_close(result.metrics[name], ref_metrics[name], name)
    assert_close(result.periods_per_year, reference.weekday_bars_per_year(bars.index),
                 "periods_per_year")
    # The numpy metrics over the equity curve and trade log agree with the kernel's running sums.
    days = (bars.index[-1] - bars.index[0]).total_seconds() / 86400
    trades = result.trades
    from_curve = compute_metrics(result.equity.to_numpy(), trades["return"].to_numpy(),
                                 trades["pnl"].to_numpy(), trades["bars_held"].to_numpy(), days,
                                 case["initial"], result.periods_per_year)
    for name in METRIC_NAMES:
        assert_close(from_curve[name], result.metrics[name], name)


@settings(max_examples=40)
@given(cases(), st.lists(st.sampled_from([{"type": "stop_loss", "pct": 0.04},
                                          {"type": "take_profit", "pct": 0.05},
                                          {"type": "trailing_stop", "pct": 0.03},
                                          {"type": "atr_stop", "mult": 1.0, "period": 5},
                                          [{"type": "signal", "enabled": False},
                                           {"type": "time_stop", "bars": 4}]]),
                        max_size=2, unique_by=str))
def test_run_many_rows_equal_run_backtest_and_reference(case, extra_rules):
    bars, kwargs, _, _, _, _ = run_case(case)
    other = make_bars(case["n"] + 7, case["seed"] + 1, case["vol"])
    strategy = case["strategy"]
    other_params = (validate_params(strategy, None) if strategy != "ma_crossover"
                    else {"fast": 2, "slow": 9, "kind": "ema"})
    flipped = "long" if case["params"].get("direction") == "short" else "short"
    grid = [case["params"], validate_params(strategy, {**case["params"], "direction": flipped}),
            other_params]  # both directions in one grid
    grid = [dict(cell) for cell in dict.fromkeys(tuple(c.items()) for c in grid)]  # as run_many
    rules = [case["exit_rule"], *extra_rules]
    batch = run_many({"A": bars, "B": other}, strategy, grid, rules, with_trades=True,
                     with_curves=True, **kwargs)
    assert len(batch.table) == 2 * len(grid) * len(rules) == len(batch.curves)
    row = 0
    for symbol, data in (("A", bars), ("B", other)):
        for params in grid:
            for rule in rules:
                single = run_backtest(data, strategy, params, rule, symbol=symbol, **kwargs)
                got = batch.table.iloc[row]
                assert got["symbol"] == symbol and got["exit_json"] == single.exit_json
                assert got["params_hash"] == single.params_hash
                assert got["periods_per_year"] == single.periods_per_year
                assert got["bar_seconds"] == single.bar_seconds == 86_400
                for name in METRIC_NAMES:
                    assert_close(got[name], single.metrics[name], name)
                ref_metrics, ref_trades, _ = reference.backtest(
                    data, strategy, params, canonical_exit_rule(rule), kwargs["costs"],
                    kwargs["initial_capital"], kwargs["whole_shares"],
                    kwargs["stop_on_entry_bar"])
                for name in METRIC_NAMES:
                    assert_close(got[name], ref_metrics[name], name)
                trades = batch.trades[batch.trades["row"] == row].drop(columns="row")
                assert_same_trades(trades, data.index, ref_trades)
                assert (trades["direction"] == single.direction).all()
                pd.testing.assert_series_equal(batch.curves.curve(row), single.equity,
                                               check_exact=True, check_freq=False)
                row += 1

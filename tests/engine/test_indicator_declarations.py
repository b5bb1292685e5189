"""The indicators a strategy declares for its chart: built-ins and rule strategies alike."""
from __future__ import annotations

import numpy as np
import pytest

from core import indicators
from core.errors import ParamError, UnknownStrategyError
from core.rule_files import load_text
from core.rules import OSCILLATOR, PRICE
from core.strategies import get_strategy, indicator_series, list_strategies

from .conftest import make_bars

BUILT_INS = ("rsi_meanrev", "ma_crossover", "bollinger_reversion", "breakout")

RSI_TREND = """
name = "rsi_trend_test"
entry = "rsi(close, period) crosses_below oversold and close > sma(close, trend)"
exit = "rsi(close, period) crosses_above 70"

[params.period]
kind = "int"
default = 14

[params.oversold]
kind = "float"
default = 30

[params.trend]
kind = "int"
default = 50
"""


def rule(entry: str, exit_: str, params: str = "") -> object:
    """A rule strategy from its entry and exit (params declared by the caller)."""
    return load_text(f'name = "drawn"\nentry = "{entry}"\nexit = "{exit_}"\n{params}')


def by_label(series) -> dict:
    return {s.label: s for s in series}


def assert_same(values, expected) -> None:
    np.testing.assert_array_equal(np.isnan(values), np.isnan(expected))
    np.testing.assert_allclose(values[~np.isnan(values)], expected[~np.isnan(expected)],
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", BUILT_INS)
def test_every_built_in_declares_indicators_for_both_directions(name, bars):
    assert get_strategy(name).indicators
    for direction in ("long", "short"):
        series = indicator_series(name, {"direction": direction}, bars)
        assert series, (name, direction)
        for s in series:
            assert s.values.shape == (len(bars),) and np.isfinite(s.values[-1])
            assert s.pane in (PRICE, OSCILLATOR)


def test_rsi_meanrev_draws_its_rsi_below_the_price_with_both_levels(bars):
    (rsi,) = indicator_series("rsi_meanrev", {"period": 9, "oversold": 25}, bars)
    assert rsi.label == "RSI(9)" and rsi.pane == OSCILLATOR and rsi.group == "RSI"
    assert rsi.levels == {"oversold": 25.0, "overbought": 70.0}
    assert_same(rsi.values, indicators.rsi(bars["close"], 9))


@pytest.mark.parametrize("kind", ["sma", "ema"])
def test_ma_crossover_draws_the_average_kind_the_run_chose(kind, bars):
    drawn = by_label(indicator_series("ma_crossover", {"fast": 7, "slow": 30, "kind": kind},
                                      bars))
    compute = getattr(indicators, kind)
    assert list(drawn) == [f"{kind.upper()}(7)", f"{kind.upper()}(30)"]
    assert_same(drawn[f"{kind.upper()}(7)"].values, compute(bars["close"], 7))
    assert_same(drawn[f"{kind.upper()}(30)"].values, compute(bars["close"], 30))
    assert {s.pane for s in drawn.values()} == {PRICE}


def test_bollinger_bands_equal_the_indicator(bars):
    drawn = by_label(indicator_series("bollinger_reversion", {"period": 15, "num_std": 1.5},
                                      bars))
    middle, upper, lower = indicators.bollinger(bars["close"], 15, 1.5)
    assert list(drawn) == ["BB upper(15, 1.5)", "BB mid(15)", "BB lower(15, 1.5)"]
    assert_same(drawn["BB upper(15, 1.5)"].values, upper)
    assert_same(drawn["BB mid(15)"].values, middle)
    assert_same(drawn["BB lower(15, 1.5)"].values, lower)


def test_breakout_draws_the_channels_its_direction_trades(bars):
    high, low = bars["high"], bars["low"]
    long = by_label(indicator_series("breakout", {"period": 20, "exit_period": 5}, bars))
    assert list(long) == ["Donchian high(20)", "Donchian low(5)"]
    assert_same(long["Donchian high(20)"].values, indicators.donchian(high, low, 20)[0])
    assert_same(long["Donchian low(5)"].values, indicators.donchian(high, low, 5)[1])
    short = by_label(indicator_series("breakout", {"period": 20, "exit_period": 5,
                                                   "direction": "short"}, bars))
    assert list(short) == ["Donchian low(20)", "Donchian high(5)"]
    assert_same(short["Donchian low(20)"].values, indicators.donchian(high, low, 20)[1])


def test_a_rule_strategy_has_the_same_indicator_list_as_a_built_in(bars):
    strategy = load_text(RSI_TREND)
    assert [(i.fn, i.args, i.pane, i.levels) for i in strategy.indicators] == [
        ("rsi", ("close", "period"), OSCILLATOR, ("oversold", "70")),
        ("sma", ("close", "trend"), PRICE, ()),
    ]
    rsi, sma = indicator_series(strategy, {"period": 10, "oversold": 20, "trend": 40}, bars)
    assert (rsi.label, rsi.pane, rsi.levels) == ("RSI(10)", OSCILLATOR,
                                                 {"oversold": 20.0, "70": 70.0})
    assert_same(rsi.values, indicators.rsi(bars["close"], 10))
    assert (sma.label, sma.pane, sma.levels) == ("SMA(40)", PRICE, {})
    assert_same(sma.values, indicators.sma(bars["close"], 40))


def test_the_shipped_rule_strategies_declare_their_indicators():
    shipped = {s.name: s for s in list_strategies() if s.source != "built-in"}
    macd = [(i.fn, i.pane, i.levels) for i in shipped["macd_cross"].indicators]
    assert macd == [("macd", OSCILLATOR, ()), ("macd_signal", OSCILLATOR, ())]
    fade = [(i.fn, i.pane) for i in shipped["overbought_fade"].indicators]
    assert fade == [("rsi", OSCILLATOR), ("sma", PRICE), ("lowest", PRICE), ("shift", PRICE)]


def test_oscillators_share_a_pane_by_kind_and_atr_has_no_levels(bars):
    strategy = rule("macd(close, 12, 26) crosses_above macd_signal(close, 12, 26, 9) "
                    "and roc(close, n) > 0 and atr(14) < 5",
                    "sma(rsi(close, 14), 5) crosses_below 40 or close < lowest(low, n)",
                    "[params.n]\nkind = 'int'\ndefault = 10")
    drawn = by_label(indicator_series(strategy, {}, bars))
    groups = {label: (s.pane, s.group, s.levels) for label, s in drawn.items()}
    assert groups == {
        "MACD(12, 26)": (OSCILLATOR, "MACD", {}),
        "MACD signal(12, 26, 9)": (OSCILLATOR, "MACD", {}),
        "ROC(10)": (OSCILLATOR, "ROC", {"0": 0.0}),
        "ATR(14)": (OSCILLATOR, "ATR", {}),
        "SMA(rsi(close, 14), 5)": (OSCILLATOR, "RSI", {"40": 40.0}),
        "RSI(14)": (OSCILLATOR, "RSI", {}),
        "Lowest(low, 10)": (PRICE, "price", {}),
    }
    assert_same(drawn["ATR(14)"].values,
                indicators.atr(bars["high"], bars["low"], bars["close"], 14))
    assert_same(drawn["Lowest(low, 10)"].values, indicators.lowest(bars["low"], 10))


def test_the_same_series_written_twice_is_drawn_once(bars):
    strategy = rule("close crosses_above sma(close, n)", "close crosses_below sma(close, 20)",
                    "[params.n]\nkind = 'int'\ndefault = 20")
    assert len(strategy.indicators) == 2
    assert [s.label for s in indicator_series(strategy, {}, bars)] == ["SMA(20)"]
    assert len(indicator_series(strategy, {"n": 30}, bars)) == 2


def test_levels_and_periods_follow_the_params_and_bad_params_are_refused(bars):
    (rsi,) = indicator_series("rsi_meanrev", {"oversold": 10, "overbought": 90}, bars)
    assert rsi.levels == {"oversold": 10.0, "overbought": 90.0}
    with pytest.raises(ParamError, match="oversold"):
        indicator_series("rsi_meanrev", {"oversold": 80}, bars)
    with pytest.raises(UnknownStrategyError):
        indicator_series("no_such_strategy", {}, bars)


def test_indicators_over_fewer_bars_than_the_warm_up_are_all_nan():
    short = make_bars(10)
    (rsi,) = indicator_series("rsi_meanrev", {}, short)
    assert rsi.values.shape == (10,) and np.isnan(rsi.values).all()

"""The rule expression language: parsing, types, canonical text, evaluation, errors, limits."""
from __future__ import annotations

import gc
import pickle
import weakref

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import indicators, rules
from core.errors import RuleError
from core.strategies import ABOVE, crossings

nan = np.nan
PARAMS = {"period": "int", "level": "float", "n": "int"}


def bars_of(close, high=None, low=None, volume=None) -> rules.Bars:
    close = np.asarray(close, dtype=float)
    high = close + 1 if high is None else np.asarray(high, dtype=float)
    low = close - 1 if low is None else np.asarray(low, dtype=float)
    return rules.Bars(close.copy(), high, low, close, volume)


def value(text, close, params=None, **bars):
    """The value of ``text`` (a signal, or a series) over bars built from ``close``."""
    return rules.evaluate(_parse_any(text), bars_of(close, **bars), params or {}, {})


def _parse_any(text):
    """Parse a signal, or a series wrapped as a signal's operand (to read series values)."""
    try:
        return rules.parse(text, PARAMS, "entry")
    except RuleError:
        return rules.parse(f"{text} > 0", PARAMS, "entry").args[0]


# --- evaluation, hand-computed ------------------------------------------------------------------

def test_crossings_follow_the_builtin_convention_including_touching():
    close = [3, 2, 1, 2, 3, 2]
    # crosses_below 2 at t: close[t-1] >= 2 and close[t] < 2 -> only bar 2
    np.testing.assert_array_equal(value("close crosses_below 2", close),
                                  [0, 0, 1, 0, 0, 0])
    # crosses_above 2 at t: close[t-1] <= 2 and close[t] > 2 -> only bar 4
    np.testing.assert_array_equal(value("close crosses_above 2", close),
                                  [0, 0, 0, 0, 1, 0])
    # a series against a series, and a number on the left
    np.testing.assert_array_equal(value("close crosses_above shift(close, 1)", close),
                                  [0, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(value("2 crosses_above close", close), [0, 0, 1, 0, 0, 0])


def test_comparisons_with_nan_are_false_and_division_by_zero_is_nan():
    close = [1.0, 2.0, 3.0, 4.0]
    np.testing.assert_array_equal(value("sma(close, 3) > 0", close), [0, 0, 1, 1])
    np.testing.assert_array_equal(value("not (sma(close, 3) > 0)", close), [1, 1, 0, 0])
    ratio = value("close / (close - 2)", close)
    np.testing.assert_array_equal(ratio, [-1.0, nan, 3.0, 2.0])
    np.testing.assert_array_equal(value("close / 0", close), [nan] * 4)
    np.testing.assert_array_equal(value("close / (close - 2) > -5", close), [1, 0, 1, 1])
    assert not value("sma(close, 3) crosses_above 0", close).any()  # NaN never crosses


def test_precedence_and_unary_minus():
    close = [2.0, 3.0]
    np.testing.assert_array_equal(value("close + close * 2", close), [6.0, 9.0])
    np.testing.assert_array_equal(value("(close + close) * 2", close), [8.0, 12.0])
    np.testing.assert_array_equal(value("-close - -1", close), [-1.0, -2.0])
    np.testing.assert_array_equal(value("close - 1 - 1", close), [0.0, 1.0])  # left-assoc
    np.testing.assert_array_equal(value("close / 2 / 2", close), [0.5, 0.75])
    # not binds looser than comparisons, and binds tighter than or
    np.testing.assert_array_equal(value("not close > 2 or close > 2.5", close), [1, 1])
    np.testing.assert_array_equal(value("close > 1 and close > 2.5 or close < 0", close),
                                  [0, 1])


def test_params_and_functions_match_the_indicators():
    rng = np.random.default_rng(3)
    close = 100 * np.exp(rng.normal(0, 0.02, 120).cumsum())
    high, low = close * 1.01, close * 0.98
    bars = dict(high=high, low=low)
    params = {"period": 9, "level": 1.5, "n": 4}
    cases = {
        "sma(close, period)": indicators.sma(close, 9),
        "ema(close, period)": indicators.ema(close, 9),
        "rsi(close, period)": indicators.rsi(close, 9),
        "roc(close, n)": indicators.roc(close, 4),
        "highest(high, n)": indicators.highest(high, 4),
        "lowest(low, n)": indicators.lowest(low, 4),
        "shift(close, n)": indicators.shift(close, 4),
        "atr(period)": indicators.atr(high, low, close, 9),
        "bb_upper(close, period, level)": indicators.bollinger(close, 9, 1.5)[1],
        "bb_mid(close, period)": indicators.sma(close, 9),
        "bb_lower(close, period, level)": indicators.bollinger(close, 9, 1.5)[2],
        "donchian_high(n)": indicators.donchian(high, low, 4)[0],
        "donchian_low(n)": indicators.donchian(high, low, 4)[1],
        "macd(close, n, period)": indicators.macd(close, 4, 9),
        "macd_signal(close, n, period, 3)": indicators.macd_signal(close, 4, 9, 3),
    }
    for text, expected in cases.items():
        got = value(text, close, params, **bars)
        np.testing.assert_array_equal(got, expected, err_msg=text)
        node = _parse_any(text)
        first = rules.first_valid(node, params)
        assert np.isnan(got[:first]).all() and not np.isnan(got[first:]).any(), text


def test_new_indicators_on_hand_computed_values():
    np.testing.assert_array_equal(value("roc(close, 2)", [1, 2, 4, 8]), [nan, nan, 300, 300])
    np.testing.assert_array_equal(value("highest(close, 2)", [1, 3, 2, 5]), [nan, 3, 3, 5])
    np.testing.assert_array_equal(value("lowest(close, 2)", [1, 3, 2, 5]), [nan, 1, 2, 2])
    np.testing.assert_array_equal(value("shift(close, 1)", [1, 3, 2, 5]), [nan, 1, 3, 2])
    # EMA(2): alpha 2/3, seed mean(1, 2) = 1.5 at bar 1, then 1.5 + 2/3 x (3 - 1.5) = 2.5;
    # EMA(1) is the close itself, so the line is 2 - 1.5 = 0.5, then 3 - 2.5 = 0.5
    np.testing.assert_allclose(value("macd(close, 1, 2)", [1, 2, 3]), [nan, 0.5, 0.5])
    # the signal line EMA(2) of (0.5, 0.5) is seeded with their mean at bar 2
    np.testing.assert_allclose(value("macd_signal(close, 1, 2, 2)", [1, 2, 3]), [nan, nan, 0.5])
    np.testing.assert_array_equal(value("roc(close, 1)", [0, 1, 2]), [nan, nan, 100])


def test_an_indicator_of_an_indicator_starts_where_its_input_starts():
    close = 100 + np.sin(np.arange(60) / 3) * 5
    got = value("ema(rsi(close, 5), 3)", close)
    rsi = indicators.rsi(close, 5)
    expected = np.full(60, nan)
    expected[5:] = indicators.ema(rsi[5:], 3)
    np.testing.assert_array_equal(got, expected)
    assert rules.first_valid(_parse_any("ema(rsi(close, 5), 3)"), {}) == 5 + 3 - 1
    assert np.isnan(got[:7]).all() and not np.isnan(got[7:]).any()


def test_volume_is_a_series_when_the_bars_carry_it():
    close = [1.0, 2.0, 3.0]
    np.testing.assert_array_equal(value("volume > 15", close, volume=np.array([10, 20, 30.0])),
                                  [0, 1, 1])
    with pytest.raises(RuleError, match="no volume data"):
        value("volume > 15", close)
    series, _, _ = rules.engine_rule(rules.parse("volume > 15", PARAMS), {})
    arrays = [np.array(close) for _ in range(4)]
    np.testing.assert_array_equal(
        indicators.compute_series(series, *arrays, np.array([10, 20, 30.0])), [0, 1, 1])


# --- canonical text and params ---------------------------------------------------------------

def test_canonical_text_ignores_spacing_parentheses_and_number_spelling():
    a = rules.parse("rsi(close,period) crosses_below 30.0 and close>sma(close , 200)", PARAMS)
    b = rules.parse("((rsi( close, period ) crosses_below 30)) and (close > sma(close, 2e2))",
                    PARAMS)
    assert a.text == b.text == ("((rsi(close, period) crosses_below 30) and "
                                "(close > sma(close, 200)))")
    assert a == b and hash(a) == hash(b)
    assert a.params == ("period",)
    assert rules.parse("close > -(-3)", PARAMS).text == "(close > 3)"
    assert rules.parse("-close < -3.50", PARAMS).text == "((-close) < -3.5)"


def test_types_of_params_decide_what_they_may_do():
    with pytest.raises(RuleError, match=r'a period must be a whole number.*kind = "int"'):
        rules.parse("sma(close, level) > 0", PARAMS)
    assert rules.parse("sma(close, period * 2 + n) > 0", PARAMS).type == rules.SIGNAL
    with pytest.raises(RuleError, match="a period must be a whole number"):
        rules.parse("sma(close, period / 2) > 0", PARAMS)
    cond = rules.parse("period < n", PARAMS, "require[0]", rules.CONDITION)
    assert rules.scalar(cond, {"period": 3, "n": 4}) is True


@given(st.integers(1, 50), st.integers(1, 50))
def test_call_problems_name_a_period_below_one(period, n):
    node = rules.parse("sma(close, period - n) > 0", PARAMS)
    problem = rules.call_problem(rules.function_calls(node), {"period": period, "n": n})
    if period - n >= 1:
        assert problem is None
    else:
        assert f"is {period - n:g} here" in problem


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("rsi(close, perod) < 30", r"entry, column 12: unknown name 'perod'.*Did you mean 'period'"),
    ("smaa(close, 5) > 1", r"column 1: unknown function 'smaa'. Did you mean 'sma'"),
    ("close = 3", r"column 7: unexpected character '='; compare with <"),
    ("close > 1 && close < 3", r"column 11: unexpected character '&'; write and"),
    ("close[1] > 3", r"column 6: unexpected character '\['; use shift"),
    ("1 < close < 3", r"comparisons cannot be chained"),
    ("rsi(close) < 30", r"rsi takes 2 argument\(s\), got 1; write rsi\(x, n\)"),
    ("rsi(14, 3) < 30", r"x must be a series"),
    ("close + (close > 1) > 0", r"\+ needs numbers or series"),
    ("close", r"close is a series, not a signal.*close > 0"),
    ("period > 3", r"compares params only"),
    ("close > 1 and", r"column 14: expected a number, a name or '\(', found the end"),
    ("(close > 1", r"expected '\)' to close the parenthesis opened at column 1"),
    ("close > 1 close < 2", r"unexpected 'close' after a complete expression"),
    ("close crosses_above 1 crosses_below 2", "cannot be chained"),
    ("1 crosses_above 2", "needs a series on one side"),
    ("sma > 3", r"unknown name 'sma'|sma\("),
    ("and close > 1", "needs an operand on each side"),
    ("not close", "not needs true/false"),
    ("close > 1 and close", "and needs true/false on both sides"),
    ("", "non-empty expression"),
    ("__import__('os').system('x') > 0", r"unexpected character \"'\"|unknown function"),
    ("open.__class__ > 1", r"unexpected character '\.'|column 5"),
])
def test_errors_name_the_position_and_the_fix(text, message):
    with pytest.raises(RuleError, match=message):
        rules.parse(text, PARAMS, "entry")


def test_size_and_nesting_are_bounded():
    with pytest.raises(RuleError, match="characters long; the limit is 1000"):
        rules.parse("close > " + "1 + " * 300 + "1", PARAMS)
    with pytest.raises(RuleError, match="more than 200 terms"):
        rules.parse(" or ".join(["close>1"] * 80), PARAMS)
    with pytest.raises(RuleError, match="nests deeper than 30 levels"):
        rules.parse("(" * 40 + "close > 1" + ")" * 40, PARAMS)
    with pytest.raises(RuleError, match="nests deeper"):
        rules.parse("close > " + "-" * 40 + "1", PARAMS)
    assert rules.parse("(" * 20 + "close > 1" + ")" * 20, PARAMS).text == "(close > 1)"


# --- the engine form ------------------------------------------------------------------------

ENGINE_FORMS = st.sampled_from([
    "rsi(close, period) crosses_below level and close > sma(close, n)",
    "rsi(close, period) crosses_below level or close crosses_above highest(shift(high, 1), n)",
    "close > sma(close, n) and rsi(close, period) < level",
    "close < sma(close, n) or rsi(close, period) > level",
    "not (close > ema(close, n)) and roc(close, period) > level - 50",
    "close crosses_above bb_upper(close, n, 1.5)",
])


@given(ENGINE_FORMS, st.integers(0, 10_000), st.integers(2, 20), st.integers(2, 30),
       st.floats(20, 80))
def test_the_engine_form_fires_where_the_rule_becomes_true(text, seed, period, n, level):
    """series - other crossing above the level == the bars where the rule becomes true."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(rng.normal(0, 0.03, 150).cumsum())
    high, low = close * 1.01, close * 0.99
    params = {"period": period, "n": n, "level": level}
    node = rules.parse(text, PARAMS)
    series, other, cut = rules.engine_rule(node, params)
    arrays = (close, high, low, close)
    x = indicators.compute_series(series, *arrays)
    v = x if other is None else x - indicators.compute_series(other, *arrays)
    signal = rules.evaluate(node, rules.Bars(*arrays), params, {}).astype(float)
    np.testing.assert_array_equal(crossings(v, cut, ABOVE), crossings(signal, 0.5, ABOVE))
    keys = [series] + ([other] if other is not None else [])
    assert max(indicators.first_valid(k) for k in keys) == rules.first_valid(node, params)


def test_sub_expressions_are_computed_once_per_bars(monkeypatch):
    calls = []
    real = indicators.rsi
    monkeypatch.setattr(indicators, "rsi", lambda x, p: calls.append(p) or real(x, p))
    node = rules.parse("rsi(close, period) crosses_below level and close > sma(close, n)",
                       PARAMS)
    close = 100 + np.cos(np.arange(80) / 4)
    arrays = (close.copy(), close + 1, close - 1, close)
    for period in (5, 7):
        for level in (30.0, 40.0, 50.0):
            for n in (10, 20):
                series, other, _ = rules.engine_rule(node, {"period": period, "level": level,
                                                            "n": n})
                indicators.compute_series(series, *arrays)
                indicators.compute_series(other, *arrays)
    assert sorted(calls) == [5, 7]
    calls.clear()
    other_bars = tuple(a.copy() for a in arrays)  # new arrays: a new memo
    indicators.compute_series(series, *other_bars)
    assert calls == [7]


def test_the_shared_memo_lets_the_bars_go():
    node = rules.parse("close > sma(close, n) and close crosses_above shift(close, n)", PARAMS)
    close = 100 + np.sin(np.arange(50))
    arrays = [close.copy() for _ in range(4)]
    series, other, _ = rules.engine_rule(node, {"n": 3})
    indicators.compute_series(series, *arrays)
    indicators.compute_series(other, *arrays)
    alive = weakref.ref(arrays[3])
    del arrays
    gc.collect()
    assert alive() is None


def test_bound_rules_are_keys_and_survive_pickling():
    node = rules.parse("rsi(close, period) < level", PARAMS)
    a = rules.BoundRule(node, {"period": 5, "level": 30.0, "n": 3})
    b = rules.BoundRule(node, {"level": 30.0, "period": 5})
    assert a == b and hash(a) == hash(b)  # only the params the rule uses count
    assert a != rules.BoundRule(node, {"period": 5, "level": 30.0}, sign=-1)
    copy = pickle.loads(pickle.dumps(a))
    assert copy == a and copy.node.text == node.text and copy.first_valid() == 5


# --- robustness --------------------------------------------------------------------------------

ATOMS = st.sampled_from(["close", "open", "high", "low", "period", "level", "3", "2.5",
                         "sma(close, n)", "rsi(close, period)", "ema(high - low, 3)",
                         "shift(close, n)", "atr(n)", "bb_lower(close, n, level)"])
SERIES_TEXT = st.recursive(
    ATOMS, lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/"]), inner).map(
            lambda t: f"({t[0]} {t[1]} {t[2]})"),
        inner.map(lambda x: f"-{x}"),
        inner.map(lambda x: f"highest({x}, n)")),
    max_leaves=6)
SIGNAL_TEXT = st.recursive(
    st.tuples(SERIES_TEXT, st.sampled_from(["<", "<=", ">", ">=", "crosses_above",
                                            "crosses_below"]), SERIES_TEXT).map(
        lambda t: f"{t[0]} {t[1]} {t[2]}"),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(
            lambda t: f"({t[0]}) {t[1]} ({t[2]})"),
        inner.map(lambda x: f"not ({x})")),
    max_leaves=4)


@given(SIGNAL_TEXT)
def test_canonical_text_parses_back_to_itself(text):
    try:
        node = rules.parse(text, PARAMS)
    except RuleError as exc:  # e.g. two numbers compared, or a size limit
        assert "column" in str(exc) or "entry" in str(exc) or "rule" in str(exc)
        return
    again = rules.parse(node.text, PARAMS)
    assert again.text == node.text and again.type == node.type
    close = 100 + np.sin(np.arange(40) / 3) * 5
    result = rules.evaluate(node, bars_of(close), {"period": 3, "level": 1.5, "n": 4}, {})
    assert result.dtype == bool and result.shape == (40,)


@given(st.text(max_size=80))
def test_any_text_parses_or_raises_a_rule_error(text):
    try:
        rules.parse(text, PARAMS)
    except RuleError:
        pass


def test_a_signal_joined_with_a_condition_on_params_is_a_rule_error():
    """Found by the round-trip property test: this raised StopIteration instead."""
    with pytest.raises(RuleError, match="joins a signal with a condition on params"):
        rules.parse("(close < close) and (period < period)", PARAMS)

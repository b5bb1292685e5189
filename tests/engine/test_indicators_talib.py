"""Indicators against TA-Lib (a test-only oracle): equal after warm-up where conventions agree.

Where they differ, the test pins the difference:
- Donchian channels use the bars *before* t: TA-Lib's MAX/MIN of the window ending at t-1.
- MACD: TA-Lib seeds the fast EMA with the SMA of the ``fast`` values ending at bar slow-1
  (so that both EMAs start together) and outputs nothing before the signal line exists; here
  the fast EMA is the plain EMA(fast) seeded at bar fast-1 (so ``macd(x, f, s)`` equals
  ``ema(x, f) - ema(x, s)``) and the line starts at bar slow-1. The seeds' difference decays
  by ``1 - 2 / (fast + 1)`` per bar, so the lines agree to 1e-9 once it has decayed.
- ROC: TA-Lib gives 0 where the earlier value is 0; here it is NaN (division by zero).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import indicators

talib = pytest.importorskip("talib")


def series(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(rng.normal(0, 0.02, n).cumsum())
    high = close * np.exp(np.abs(rng.normal(0, 0.01, n)))
    low = close * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    return high, low, close


def same(mine: np.ndarray, theirs: np.ndarray, from_bar: int | None = None) -> None:
    """Equal NaN warm-up (or compared from ``from_bar``), then equal to 1e-9 relative."""
    if from_bar is None:
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs))
        from_bar = int(np.argmax(~np.isnan(theirs)))
    np.testing.assert_allclose(mine[from_bar:], theirs[from_bar:], rtol=1e-9, atol=1e-9)


@given(st.integers(0, 10_000), st.integers(2, 60))
def test_moving_averages_rsi_roc_and_extremes_match_talib(seed, period):
    high, low, close = series(seed)
    same(indicators.sma(close, period), talib.SMA(close, period))
    same(indicators.ema(close, period), talib.EMA(close, period))
    same(indicators.rsi(close, period), talib.RSI(close, period))
    same(indicators.roc(close, period), talib.ROC(close, period))
    same(indicators.highest(high, period), talib.MAX(high, period))
    same(indicators.lowest(low, period), talib.MIN(low, period))
    same(indicators.atr(high, low, close, period), talib.ATR(high, low, close, period))


@given(st.integers(0, 10_000), st.integers(2, 60), st.floats(0.5, 3.5))
def test_bollinger_bands_match_talib_population_std(seed, period, k):
    _, _, close = series(seed)
    upper, middle, lower = talib.BBANDS(close, period, k, k, 0)
    mine_middle, mine_upper, mine_lower = indicators.bollinger(close, period, k)
    same(mine_middle, middle)
    same(mine_upper, upper)
    same(mine_lower, lower)


@given(st.integers(0, 10_000), st.integers(2, 60))  # TA-Lib's MAX needs a period >= 2
def test_donchian_is_talib_max_min_of_the_bars_before(seed, period):
    high, low, _ = series(seed)
    upper, lower = indicators.donchian(high, low, period)
    expected_upper = np.concatenate([[np.nan], talib.MAX(high, period)[:-1]])
    expected_lower = np.concatenate([[np.nan], talib.MIN(low, period)[:-1]])
    same(upper, expected_upper)
    same(lower, expected_lower)


def _decayed(period: int) -> int:
    """Bars after which an EMA(period) seed difference has shrunk below 1e-12."""
    return math.ceil(math.log(1e-12) / math.log(1 - 2 / (period + 1)))


@given(st.integers(0, 10_000), st.integers(2, 15), st.integers(16, 40), st.integers(2, 15))
def test_macd_matches_talib_once_the_seed_difference_has_decayed(seed, fast, slow, signal):
    _, _, close = series(seed, 900)
    line, signal_line, _ = talib.MACD(close, fast, slow, signal)
    mine_line = indicators.macd(close, fast, slow)
    mine_signal = indicators.macd_signal(close, fast, slow, signal)
    np.testing.assert_array_equal(mine_line, indicators.ema(close, fast)
                                  - indicators.ema(close, slow))
    assert np.isnan(mine_line[:slow - 1]).all() and not np.isnan(mine_line[slow - 1:]).any()
    first_signal = slow + signal - 2
    assert np.isnan(mine_signal[:first_signal]).all()
    assert not np.isnan(mine_signal[first_signal:]).any()
    assert int(np.argmax(~np.isnan(signal_line))) == first_signal  # TA-Lib starts there too
    settled = slow + _decayed(fast) + _decayed(signal)
    same(mine_line, line, settled)
    same(mine_signal, signal_line, settled)


def test_roc_of_a_zero_is_nan_where_talib_gives_zero():
    x = np.array([0.0, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(indicators.roc(x, 1), [np.nan, np.nan, 100.0, 50.0])
    assert talib.ROC(x, 1)[1] == 0.0

"""Indicator conventions on hand-computed values, and agreement with the reference."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import indicators

from . import reference

nan = np.nan


def test_sma_is_the_plain_rolling_mean():
    np.testing.assert_allclose(indicators.sma([1, 2, 3, 4], 2), [nan, 1.5, 2.5, 3.5])


def test_ema_is_seeded_with_the_first_sma():
    # alpha = 2 / (3 + 1) = 0.5; seed mean(1, 2, 3) = 2 at bar 2; then 3, 4
    np.testing.assert_allclose(indicators.ema([1, 2, 3, 4, 5], 3), [nan, nan, 2, 3, 4])


def test_rsi_wilder_with_talib_seeding():
    # changes +1, +1, -1, +2. Bar 2: avg gain 1, avg loss 0 -> 100.
    # Bar 3: gain (1*1 + 0)/2 = 0.5, loss (0*1 + 1)/2 = 0.5 -> 50.
    # Bar 4: gain (0.5*1 + 2)/2 = 1.25, loss (0.5*1 + 0)/2 = 0.25 -> 100*1.25/1.5.
    got = indicators.rsi([10, 11, 12, 11, 13], 2)
    np.testing.assert_allclose(got, [nan, nan, 100, 50, 100 * 1.25 / 1.5])


def test_rsi_is_50_when_prices_do_not_move():
    np.testing.assert_allclose(indicators.rsi([5.0] * 5, 3), [nan, nan, nan, 50, 50])


def test_bollinger_uses_population_std():
    middle, upper, lower = indicators.bollinger([1, 3, 5], 2, 1.5)
    np.testing.assert_allclose(middle, [nan, 2, 4])
    np.testing.assert_allclose(upper, [nan, 3.5, 5.5])  # std of (1, 3) is 1
    np.testing.assert_allclose(lower, [nan, 0.5, 2.5])


def test_donchian_uses_the_bars_before_t():
    upper, lower = indicators.donchian([1, 5, 3, 2], [4, 2, 3, 1], 2)
    np.testing.assert_allclose(upper, [nan, nan, 5, 5])
    np.testing.assert_allclose(lower, [nan, nan, 2, 2])


def test_atr_wilder_seeded_with_mean_true_range():
    high, low, close = [101, 102, 106, 108], [99, 98, 97, 106], [100, 101, 104, 107]
    # TR1 = 4, TR2 = 9 -> ATR[2] = 6.5; TR3 = max(2, 4, 2) = 4 -> ATR[3] = 5.25
    np.testing.assert_allclose(indicators.atr(high, low, close, 2), [nan, nan, 6.5, 5.25])


def test_first_valid_matches_the_nan_prefix():
    rng = np.random.default_rng(1)
    close = 100 + rng.normal(0, 1, 50).cumsum()
    high, low = close + 1, close - 1
    for key in [("sma", 7), ("ema", 7), ("rsi", 7), ("bb_lower", 7, 2.0), ("bb_upper", 7, 2.0),
                ("dc_high", 7), ("dc_low", 7), ("atr", 7), ("close",)]:
        series = indicators.compute_series(key, close, high, low, close)
        first = indicators.first_valid(key)
        assert np.isnan(series[:first]).all() and not np.isnan(series[first:]).any(), key


def test_unknown_series_is_rejected():
    with pytest.raises(KeyError, match="macd"):
        indicators.compute_series(("macd", 3), [1.0], [1.0], [1.0], [1.0])


@given(st.integers(0, 1000), st.integers(1, 25))
def test_indicators_match_reference(seed, period):
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(rng.normal(0, 0.02, 80).cumsum())
    high, low = close * 1.01, close * 0.99
    c, h, lo = close.tolist(), high.tolist(), low.tolist()
    pairs = [
        (indicators.sma(close, period), reference.sma(c, period)),
        (indicators.ema(close, period), reference.ema(c, period)),
        (indicators.bollinger(close, period, 2.0)[2], reference.bollinger_band(c, period, -2.0)),
        (indicators.bollinger(close, period, 2.0)[1], reference.bollinger_band(c, period, 2.0)),
        (indicators.donchian(high, low, period)[0], reference.prior_max(h, period)),
        (indicators.donchian(high, low, period)[1], reference.prior_min(lo, period)),
        (indicators.atr(high, low, close, period), reference.atr(h, lo, c, period)),
    ]
    if period >= 2:
        pairs.append((indicators.rsi(close, period), reference.rsi(c, period)))
    for fast, slow in pairs:
        np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-9)

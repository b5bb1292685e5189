"""The demo universe: pinned, deterministic, realistic enough, always consistent OHLC."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.data.demo import (
    DEMO_SEED,
    DemoProvider,
    demo_symbols,
    generate_demo_universe,
    universe_checksum,
)
from core.data.validate import validate_bars
from core.errors import DataValidationError

# Computed once from the generator on values rounded to cents; identical on every machine.
PINNED_CHECKSUM = "f9c58c00f5ba2fdf"


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return generate_demo_universe(60, 12, DEMO_SEED)


def test_checksum_is_pinned(universe):
    assert universe_checksum(universe) == PINNED_CHECKSUM


def test_first_and_last_bar_of_demo01_are_pinned(universe):
    bars = universe["DEMO01"]
    assert bars.index[0] == pd.Timestamp("2014-05-30")
    assert bars.index[-1] == pd.Timestamp("2025-12-31")
    assert bars.iloc[0].tolist() == [72.27, 72.35, 71.33, 71.44, 446233.0]
    assert bars.iloc[-1].tolist() == [91.54, 91.96, 91.51, 91.95, 383275.0]


def test_universe_shape_and_names(universe):
    assert list(universe) == [f"DEMO{i:02d}" for i in range(1, 61)]
    for bars in universe.values():
        span_years = (bars.index[-1] - bars.index[0]).days / 365.25
        assert span_years >= 10
        assert validate_bars(bars, "x") is bars  # already clean: the fast path holds
        assert (bars.index.day_of_week < 5).all()


def test_prices_are_in_cents_and_volume_whole(universe):
    values = np.concatenate([b.to_numpy() for b in universe.values()])
    np.testing.assert_array_equal(np.round(values[:, :4], 2), values[:, :4])
    np.testing.assert_array_equal(np.round(values[:, 4]), values[:, 4])


def test_volatility_clusters(universe):
    """Squared returns are positively autocorrelated (GARCH), unlike i.i.d. noise."""
    correlations = []
    for bars in universe.values():
        r = np.diff(np.log(bars["close"].to_numpy()))
        sq = (r - r.mean()) ** 2
        correlations.append(np.corrcoef(sq[:-1], sq[1:])[0, 1])
    assert np.median(correlations) > 0.05


def test_gaps_and_missing_days_occur(universe):
    bars = universe["DEMO01"]
    business_days = pd.bdate_range(bars.index[0], bars.index[-1])
    assert 0 < len(business_days) - len(bars) < 0.01 * len(business_days)
    gaps = np.abs(np.log(bars["open"].to_numpy()[1:] / bars["close"].to_numpy()[:-1]))
    assert (gaps > 0.03).any()  # overnight jumps exist...
    assert np.median(gaps) < 0.01  # ...but are the exception


def test_regimes_give_trending_and_mean_reverting_years(universe):
    """Yearly lag-1 autocorrelation of weekly returns spans both signs across the universe."""
    autocorrelations = []
    for bars in universe.values():
        weekly = np.log(bars["close"].resample("W").last().dropna()).diff().dropna().to_numpy()
        autocorrelations.append(np.corrcoef(weekly[:-1], weekly[1:])[0, 1])
    assert min(autocorrelations) < 0 < max(autocorrelations)
    yearly = [np.log(b["close"].iloc[-1] / b["close"].iloc[0]) for b in universe.values()]
    assert min(yearly) < -0.2 and max(yearly) > 0.2  # both long down- and up-trends


def test_generation_is_deterministic_and_seeded():
    a = generate_demo_universe(3, 2, seed=7)
    b = generate_demo_universe(3, 2, seed=7)
    c = generate_demo_universe(3, 2, seed=8)
    assert universe_checksum(a) == universe_checksum(b) != universe_checksum(c)


@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 12), years=st.integers(1, 3))
def test_ohlc_is_always_consistent(seed, count, years):
    universe = generate_demo_universe(count, years, seed)
    assert list(universe) == demo_symbols(count)
    for symbol, bars in universe.items():
        o, h, lo, c, v = (bars[k].to_numpy() for k in ("open", "high", "low", "close", "volume"))
        assert (lo > 0).all()
        assert (lo <= np.minimum(o, c)).all() and (np.maximum(o, c) <= h).all()
        assert (v >= 0).all()
        assert bars.index.is_monotonic_increasing and bars.index.is_unique
        validate_bars(bars, symbol)


def test_symbol_names_widen_past_99():
    assert demo_symbols(3) == ["DEMO01", "DEMO02", "DEMO03"]
    assert demo_symbols(120)[0] == "DEMO001" and demo_symbols(120)[-1] == "DEMO120"


@pytest.mark.parametrize(("count", "years"), [(0, 12), (60, 0), (1000, 1)])
def test_bad_universe_sizes_are_refused(count, years):
    with pytest.raises(DataValidationError):
        generate_demo_universe(count, years)


def test_provider_lists_and_loads():
    provider = DemoProvider(5, 2)
    assert provider.symbols() == ["DEMO01", "DEMO02", "DEMO03", "DEMO04", "DEMO05"]
    bars = provider.load_bars("DEMO03", "2025-06-02", "2025-06-30")
    assert bars.index[0] >= pd.Timestamp("2025-06-02")
    assert bars.index[-1] <= pd.Timestamp("2025-06-30")
    assert bars.attrs["symbol"] == "DEMO03" and len(bars.attrs["fingerprint"]) == 16

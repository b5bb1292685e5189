"""The bar's own clock: Sharpe, Sortino and CAGR of weekly, monthly and hourly bars against
hand-computed factors, the override, calendars and irregular bars (docs/engine.md,
Annualisation)."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core.engine import run_backtest, run_many
from core.errors import FrequencyError, ParamError, ValidationError
from core.frequency import annualisation_text, detect_frequency, frequency_label

from .conftest import make_bars

STRATEGY, PARAMS = "ma_crossover", {"fast": 2, "slow": 5}


def ohlc_walk(index: pd.DatetimeIndex, seed: int, vol: float = 0.01) -> pd.DataFrame:
    """Consistent OHLC bars along a seeded random walk on ``index``."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, vol, len(index))))
    open_ = np.concatenate([[100.0], close[:-1]])
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.002,
                         "low": np.minimum(open_, close) * 0.998, "close": close,
                         "volume": 1e5}, index=index)


def resampled(daily: pd.DataFrame, rule: str) -> pd.DataFrame:
    return daily.resample(rule).agg({"open": "first", "high": "max", "low": "min",
                                     "close": "last", "volume": "sum"}).dropna()


# Five years of business days, 2015-01-05 (Mon) .. 2019-12-27 (Fri).
DAILY = ohlc_walk(pd.bdate_range("2015-01-05", "2019-12-27", unit="ns"), seed=7)
# Its weeks, dated by their Friday: 2015-01-09 .. 2019-12-27, 260 bars 7 days apart.
WEEKLY = resampled(DAILY, "W-FRI")
# Its months, dated by the month's last day: 2015-01-31 .. 2019-12-31, 60 bars.
MONTHLY = resampled(DAILY, "ME")


def fx_hours(first_monday: str, weeks: int) -> pd.DatetimeIndex:
    """Hourly bars 24 hours a day, Monday 00:00 to Friday 23:00 (UTC), for ``weeks`` weeks."""
    hours = pd.date_range(first_monday, periods=weeks * 7 * 24, freq="h", tz="UTC", unit="ns")
    return hours[hours.day_of_week < 5]


# 104 weeks of 120 hourly bars: Mon 2021-01-04 00:00 .. Fri 2022-12-30 23:00.
HOURLY = ohlc_walk(fx_hours("2021-01-04", 104), seed=11, vol=0.001)


def expected_ratios(result, factor: float) -> tuple[float, float, float]:
    """Sharpe, Sortino and CAGR from first principles: the equity's per-bar returns, the
    given bars-per-year factor and the calendar span in years of 365.25 days."""
    equity = result.equity.to_numpy()
    r = equity[1:] / equity[:-1] - 1
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(factor)
    sortino = r.mean() / math.sqrt(np.mean(np.minimum(r, 0) ** 2)) * math.sqrt(factor)
    years = (result.equity.index[-1] - result.equity.index[0]).total_seconds() / 86400 / 365.25
    cagr = (equity[-1] / equity[0]) ** (1 / years) - 1
    return sharpe, sortino, cagr


def assert_annualised(result, factor: float) -> None:
    assert result.metrics["num_trades"] > 3
    sharpe, sortino, cagr = expected_ratios(result, factor)
    assert result.metrics["sharpe_ratio"] == pytest.approx(sharpe, rel=1e-9)
    assert result.metrics["sortino_ratio"] == pytest.approx(sortino, rel=1e-9)
    assert result.metrics["cagr"] == pytest.approx(cagr, rel=1e-9)


# --- golden cases ---------------------------------------------------------------------------

def test_weekly_bars_are_annualised_by_the_weeks_in_a_year():
    assert len(WEEKLY) == 260 and WEEKLY.index[0] == pd.Timestamp("2015-01-09")
    # 259 intervals of 7 days over 1813 days: 259 / (1813 / 365.25) = 365.25 / 7 = 52.18
    assert (WEEKLY.index[-1] - WEEKLY.index[0]).days == 1813
    factor = 365.25 / 7
    result = run_backtest(WEEKLY, STRATEGY, PARAMS)
    assert result.periods_per_year == pytest.approx(factor, rel=1e-12)
    assert result.bar_seconds == 7 * 86400
    assert_annualised(result, factor)
    assert annualisation_text(result.bar_seconds, result.periods_per_year) == \
        "weekly bars, annualised ×52.2"
    clock = detect_frequency(WEEKLY.index)
    assert (clock.label, clock.calendar) == ("weekly", "exchange")


def test_monthly_bars_are_annualised_by_the_months_in_a_year():
    assert len(MONTHLY) == 60
    # 59 month ends from 2015-01-31 to 2019-12-31, 1795 days: 59 / (1795 / 365.25) = 12.005
    assert (MONTHLY.index[-1] - MONTHLY.index[0]).days == 1795
    factor = 59 / (1795 / 365.25)
    result = run_backtest(MONTHLY, STRATEGY, PARAMS)
    assert result.periods_per_year == pytest.approx(factor, rel=1e-12)
    assert frequency_label(result.bar_seconds) == "monthly"
    assert_annualised(result, factor)
    assert annualisation_text(result.bar_seconds, result.periods_per_year) == \
        "monthly bars, annualised ×12"


def test_hourly_24_5_bars_are_annualised_by_the_hours_observed_in_a_year():
    assert len(HOURLY) == 104 * 120
    # 12,479 intervals over 725 days 23 hours (Mon 2021-01-04 00:00 .. Fri 2022-12-30 23:00)
    span_days = 725 + 23 / 24
    assert (HOURLY.index[-1] - HOURLY.index[0]) == pd.Timedelta(days=725, hours=23)
    factor = 12_479 / (span_days / 365.25)  # 6,278.5
    result = run_backtest(HOURLY, STRATEGY, PARAMS)
    assert result.periods_per_year == pytest.approx(factor, rel=1e-12)
    assert result.bar_seconds == 3600
    assert_annualised(result, factor)
    assert annualisation_text(result.bar_seconds, result.periods_per_year) == \
        "hourly bars, annualised ×6,278.5"
    # intraday bars keep their time of day in the trade log
    assert (result.trades["entry_time"].dt.hour != 0).any()


def test_the_daily_series_itself_is_annualised_by_its_weekdays():
    # 1,299 intervals over 1,817 days: 261.1 weekdays a year (no holidays in bdate_range)
    assert len(DAILY) == 1300 and (DAILY.index[-1] - DAILY.index[0]).days == 1817
    factor = 1299 / (1817 / 365.25)
    result = run_backtest(DAILY, STRATEGY, PARAMS)
    assert result.periods_per_year == pytest.approx(factor, rel=1e-12)
    assert_annualised(result, factor)


def test_batches_use_each_symbols_own_clock():
    batch = run_many({"W": WEEKLY, "H": HOURLY, "D": make_bars(120)}, STRATEGY, PARAMS)
    table = batch.table.set_index("symbol")
    assert table.loc["W", "periods_per_year"] == pytest.approx(365.25 / 7, rel=1e-12)
    assert table.loc["H", "bar_seconds"] == 3600
    assert table.loc["D", "periods_per_year"] == 252  # under a year of weekdays: nominal
    for symbol, bars in (("W", WEEKLY), ("H", HOURLY)):
        single = run_backtest(bars, STRATEGY, PARAMS, symbol=symbol)
        for name in ("sharpe_ratio", "sortino_ratio", "cagr"):
            assert table.loc[symbol, name] == pytest.approx(single.metrics[name], rel=1e-9)


# --- short series, calendars, gaps ----------------------------------------------------------

def test_a_series_under_a_year_takes_the_nominal_factor_of_its_frequency():
    cases = [
        (pd.bdate_range("2024-01-01", periods=200), "daily", 252, "exchange"),
        (pd.date_range("2024-01-01", periods=200, freq="D"), "daily", 365, "24/7"),
        (pd.date_range("2024-01-05", periods=40, freq="W-FRI"), "weekly", 52, "exchange"),
        (pd.date_range("2024-01-31", periods=10, freq="ME"), "monthly", 12, "24/7"),
        (pd.date_range("2020-03-31", periods=3, freq="QE"), "quarterly", 4, "exchange"),
        # 8 weeks of FX hours: 24 bars a (UTC) weekday x 252 exchange days
        (fx_hours("2024-01-01", 8), "hourly", 24 * 252, "exchange"),
        # an exchange session of 7 hourly bars (09:30 .. 15:30) for 60 weekdays
        (pd.DatetimeIndex([day + pd.Timedelta(minutes=570 + 60 * k)
                           for day in pd.bdate_range("2024-01-01", periods=60)
                           for k in range(7)]), "hourly", 7 * 252, "exchange"),
        (pd.date_range("2024-01-01", periods=2000, freq="15min"), "15-minute", 96 * 365, "24/7"),
        (pd.date_range("2024-01-01", periods=500, freq="4h"), "4-hourly", 6 * 365, "24/7"),
    ]
    for index, label, factor, calendar in cases:
        clock = detect_frequency(index)
        assert (clock.label, clock.periods_per_year, clock.calendar) == (label, factor, calendar)


def test_crypto_daily_bars_every_day_give_about_365():
    index = pd.date_range("2021-01-01", "2023-12-31", freq="D", unit="ns")  # 1,095 days
    clock = detect_frequency(index)
    assert clock.calendar == "24/7" and clock.label == "daily"
    assert clock.periods_per_year == pytest.approx(1094 / (1094 / 365.25))  # 365.25
    result = run_backtest(ohlc_walk(index, seed=3, vol=0.03), STRATEGY, PARAMS)
    assert_annualised(result, 365.25)


def test_holidays_and_weekends_in_daily_bars_are_not_irregular():
    days = pd.bdate_range("2019-01-01", "2020-12-31")
    holidays = pd.DatetimeIndex(["2019-01-01", "2019-05-27", "2019-07-04", "2019-11-28",
                                 "2019-12-25", "2020-01-01", "2020-04-10", "2020-11-26",
                                 "2020-12-25"])
    index = days.difference(holidays)
    clock = detect_frequency(index)
    assert clock.label == "daily" and clock.calendar == "exchange"
    span = (index[-1] - index[0]).days
    assert clock.periods_per_year == pytest.approx((len(index) - 1) / (span / 365.25))
    # a Friday, the following Monday and Tuesday: a weekend is no gap even in three bars
    assert detect_frequency(pd.DatetimeIndex(["2024-01-05", "2024-01-08",
                                              "2024-01-09"])).label == "daily"


# --- irregular bars and the override --------------------------------------------------------

def irregular_bars() -> pd.DataFrame:
    rng = np.random.default_rng(5)
    seconds = np.sort(rng.choice(np.arange(0, 700 * 86400, 60), 300, replace=False))
    return ohlc_walk(pd.DatetimeIndex(pd.Timestamp("2022-01-03").value + seconds * 10**9), 2)


def test_irregular_bars_raise_a_frequency_error_naming_the_fix():
    with pytest.raises(FrequencyError, match=r"^ODD: The bars have no regular frequency: "
                       r"\d+ of 300 bars .* pass periods_per_year=N .* to annualise "
                       r"explicitly\.$"):
        run_backtest(irregular_bars(), STRATEGY, PARAMS, symbol="ODD")
    assert issubclass(FrequencyError, ValidationError)
    # a series that turns from daily to weekly bars halfway: no frequency covers most bars
    mixed = pd.bdate_range("2015-01-01", "2016-12-30").append(
        pd.date_range("2017-01-06", "2019-12-27", freq="W-FRI"))
    with pytest.raises(FrequencyError, match="MIX: .* no regular frequency"):
        run_many({"OK": WEEKLY, "MIX": ohlc_walk(mixed, 4)}, STRATEGY, PARAMS)


def test_the_override_annualises_explicitly_and_is_recorded_in_settings():
    bars = irregular_bars()
    result = run_backtest(bars, STRATEGY, PARAMS, periods_per_year=300)
    assert result.periods_per_year == 300.0
    assert result.settings == {"whole_shares": False, "stop_on_entry_bar": True,
                               "periods_per_year": 300.0}
    assert_annualised(result, 300)
    assert detect_frequency(bars.index, 300).label == "irregular"
    # on regular bars it replaces the detected factor; a default run records nothing
    weekly = run_backtest(WEEKLY, STRATEGY, PARAMS, periods_per_year=52)
    assert_annualised(weekly, 52)
    assert annualisation_text(weekly.bar_seconds, weekly.periods_per_year) == \
        "weekly bars, annualised ×52"
    assert run_backtest(WEEKLY, STRATEGY, PARAMS).settings == {"whole_shares": False,
                                                               "stop_on_entry_bar": True}
    batch = run_many({"A": bars}, STRATEGY, PARAMS, periods_per_year=300)
    assert batch.table["periods_per_year"].iloc[0] == 300.0
    assert json.loads(batch.table["settings_json"].iloc[0])["periods_per_year"] == 300
    assert batch.table["sharpe_ratio"].iloc[0] == pytest.approx(result.metrics["sharpe_ratio"])


@pytest.mark.parametrize("bad", [0, -52, math.nan, math.inf, "252", True])
def test_a_bad_override_is_a_param_error(bad):
    with pytest.raises(ParamError, match=r"periods_per_year=.* must be a positive number of "
                                         r"bars per year \(e\.g\. 252"):
        run_backtest(WEEKLY, STRATEGY, PARAMS, periods_per_year=bad)
    with pytest.raises(ParamError, match="periods_per_year="):
        run_many({"W": WEEKLY}, STRATEGY, PARAMS, periods_per_year=bad)


def test_a_single_bar_has_no_clock_and_still_runs():
    result = run_backtest(make_bars(1), STRATEGY, PARAMS)
    assert math.isnan(result.periods_per_year) and math.isnan(result.bar_seconds)
    assert result.metrics["num_trades"] == 0


# --- labels and the Details text ------------------------------------------------------------

@pytest.mark.parametrize("seconds, label", [
    (60, "1-minute"), (900, "15-minute"), (3600, "hourly"), (4 * 3600, "4-hourly"),
    (30, "30-second"), (86400, "daily"), (23 * 3600, "daily"), (7 * 86400, "weekly"),
    (28 * 86400, "monthly"), (31 * 86400, "monthly"), (91 * 86400, "quarterly"),
    (365 * 86400, "yearly"), (2 * 86400, "2-day"), (math.nan, "unknown"), (None, "unknown"),
])
def test_frequency_labels(seconds, label):
    assert frequency_label(seconds) == label


@pytest.mark.parametrize("seconds, factor, text", [
    (7 * 86400, 52, "weekly bars, annualised ×52"),
    (86400, 252.0, "daily bars, annualised ×252"),
    (86400, 251.96, "daily bars, annualised ×252"),
    (86400, 260.7785, "daily bars, annualised ×260.8"),
    (3600, 6240, "hourly bars, annualised ×6,240"),
    (math.nan, math.nan, "daily bars assumed, annualised ×252"),
    (None, None, "daily bars assumed, annualised ×252"),
])
def test_annualisation_text(seconds, factor, text):
    assert annualisation_text(seconds, factor) == text


# --- re-runs of a stored backtest use its recorded override ---------------------------------

class OneStored:
    """A store holding one backtest's details (without its equity curve)."""

    def __init__(self, details: dict):
        self.details = details

    def get_detailed_results(self, bid: str) -> dict:
        return dict(self.details)


class BarsOf:
    """A provider serving one series of bars."""

    def __init__(self, bars: pd.DataFrame):
        self.bars = bars

    def load_bars(self, symbol, start=None, end=None) -> pd.DataFrame:
        return self.bars.loc[start:end]


def test_recomputing_a_stored_curve_and_refreshing_reuse_the_recorded_override():
    from core.canonical import canonical_json
    from core.details import load_details
    from core.refresh import _rerun_group
    from core.scope import make_scope

    bars = irregular_bars()  # detection alone would raise: only the override annualises them
    result = run_backtest(bars, STRATEGY, PARAMS, periods_per_year=300, symbol="ODD")
    stored = {"backtest_id": "1", "symbol": "ODD", "strategy": STRATEGY, "params": result.params,
              "exit_rule": result.exit_rule, "costs": result.costs, "settings": result.settings,
              "initial_capital": result.initial_capital, "start": result.start,
              "end": result.end, "data_fingerprint": result.data_fingerprint,
              "engine_version": result.engine_version, **result.metrics, "equity": None}
    details = load_details(OneStored(stored), "1", BarsOf(bars))
    assert details["equity_source"] == "recomputed", details["equity_reason"]
    pd.testing.assert_series_equal(details["equity"], result.equity)
    rows = pd.DataFrame({"symbol": ["ODD"], "strategy": [STRATEGY],
                         "params": [canonical_json(result.params)],
                         "exit_rule": [result.exit_json]})
    scope = make_scope("demo", "full", result.costs, result.initial_capital, result.settings)
    again = _rerun_group(rows, bars, scope).table.iloc[0]
    assert again["periods_per_year"] == 300
    assert again["sharpe_ratio"] == pytest.approx(result.metrics["sharpe_ratio"], rel=1e-9)

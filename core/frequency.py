"""The bars' own clock: how often bars come and how many of them make a year.

Sharpe and Sortino ratios scale a per-bar ratio by the square root of the bars per year, so
that runs on weekly, daily or hourly bars compare. ``detect_frequency`` reads that factor from
the bars themselves instead of assuming daily bars; the rules are in docs/engine.md
(Annualisation).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import FrequencyError, ParamError

DAYS_PER_YEAR = 365.25
#: Days a year with bars, by calendar: exchange trading days, every day of a 24/7 market.
DAYS_WITH_BARS = {"exchange": 252, "24/7": 365}
#: Bars a year of the named frequencies longer than a day (short series fall back to these).
NOMINAL_PER_YEAR = {"weekly": 52, "monthly": 12, "quarterly": 4, "yearly": 1}
#: A series spanning at least this many days is annualised by the bars it actually holds.
OBSERVED_FROM_DAYS = 365
#: A spacing within this fraction of the median spacing is "on the clock".
ON_CLOCK = 0.2
#: Bars are irregular when more than this share of them (and more than OFF_CLOCK_BARS) has
#: no spacing on the clock on either side.
OFF_CLOCK_SHARE = 0.1
OFF_CLOCK_BARS = 2
#: What results stored before bars had a clock were annualised with.
ASSUMED_TEXT = "daily bars assumed, annualised ×252"

_DAY = 86_400.0
_INTRADAY_BELOW = 0.8 * _DAY
#: (label, shortest, longest) median spacing in days of the named frequencies of a day or more.
_NAMED_DAYS = (("daily", 0.8, 1.5), ("weekly", 5.0, 9.0), ("monthly", 26.0, 35.0),
               ("quarterly", 85.0, 95.0), ("yearly", 360.0, 370.0))


@dataclass(frozen=True)
class BarClock:
    """The frequency of a series of bars and its annualisation factor."""

    label: str  # "daily", "weekly", "monthly", "hourly", "15-minute", ..., "irregular"
    bar_seconds: float  # the median spacing between bars (NaN for a single bar)
    periods_per_year: float  # Sharpe and Sortino are scaled by its square root
    calendar: str  # "exchange" (no Saturday-and-Sunday bars) or "24/7"


def detect_frequency(index: pd.DatetimeIndex, periods_per_year: float | None = None) -> BarClock:
    """The clock of ascending, unique bar times; ``periods_per_year`` overrides the factor.

    Raises ``FrequencyError`` when the bars are irregular (mixed frequencies, random gaps)
    and no override is given, and ``ParamError`` for an override that is not a positive number.
    """
    override = check_periods_per_year(periods_per_year)
    stamps = pd.DatetimeIndex(index)
    days = _local_days(stamps)
    calendar = _calendar(days)
    if len(stamps) < 2:
        return BarClock("unknown", math.nan, math.nan if override is None else override, calendar)
    spacing = np.diff(stamps.as_unit("ns").asi8) / 1e9
    bar_seconds = float(np.partition(spacing, (len(spacing) - 1) // 2)[(len(spacing) - 1) // 2])
    off = _bars_off_clock(days, spacing, bar_seconds)
    irregular = off > max(OFF_CLOCK_BARS, OFF_CLOCK_SHARE * len(stamps))
    if override is not None:
        label = "irregular" if irregular else frequency_label(bar_seconds)
        return BarClock(label, bar_seconds, override, calendar)
    if irregular:
        raise FrequencyError(_irregular_message(off, len(stamps), spacing, bar_seconds))
    return BarClock(frequency_label(bar_seconds), bar_seconds,
                    _bars_per_year(stamps, days, bar_seconds, calendar), calendar)


def check_periods_per_year(value: float | None) -> float | None:
    """None (read the factor from the bars) or the override as a float; else ParamError."""
    if value is None:
        return None
    if (isinstance(value, bool) or not isinstance(value, (int, float, np.number))
            or not (math.isfinite(value) and value > 0)):
        raise ParamError(
            f"periods_per_year={value!r} must be a positive number of bars per year (e.g. 252 "
            "for exchange daily bars, 52 for weekly); leave it out to read it from the bars."
        )
    return float(value)


def frequency_label(bar_seconds: float | None) -> str:
    """The name of a bar spacing: "15-minute", "hourly", "4-hourly", "daily", "weekly",
    "monthly", "quarterly", "yearly", else "N-day"; "unknown" when there is none."""
    if bar_seconds is None or not math.isfinite(bar_seconds) or bar_seconds <= 0:
        return "unknown"
    if bar_seconds < _INTRADAY_BELOW:
        return _intraday_label(round(bar_seconds))
    days = bar_seconds / _DAY
    for label, shortest, longest in _NAMED_DAYS:
        if shortest <= days <= longest:
            return label
    return f"{round(days)}-day"


def annualisation_text(bar_seconds: float | None, periods_per_year: float | None) -> str:
    """E.g. "weekly bars, annualised ×52"; a result without a factor (stored before bars had
    a clock) was annualised as daily bars, which the text says."""
    if periods_per_year is None or not math.isfinite(periods_per_year):
        return ASSUMED_TEXT
    factor = float(periods_per_year)
    whole = round(factor)
    shown = f"{whole:,}" if abs(factor - whole) <= 0.05 else f"{factor:,.1f}"
    return f"{frequency_label(bar_seconds)} bars, annualised ×{shown}"


def _intraday_label(seconds: int) -> str:
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hourly" if hours == 1 else f"{hours}-hourly"
    if seconds % 60 == 0:
        return f"{seconds // 60}-minute"
    return f"{seconds}-second"


def _local_days(stamps: pd.DatetimeIndex) -> np.ndarray:
    """Day numbers since 1970-01-01 of the bars' dates in their own time zone."""
    wall = stamps.tz_localize(None) if stamps.tz is not None else stamps
    return wall.as_unit("ns").asi8 // (86_400 * 10**9)


def _calendar(days: np.ndarray) -> str:
    """"24/7" when bars fall on Saturdays and on Sundays; an exchange week, an FX week opening
    on Sunday evening or a Sunday-to-Thursday market is "exchange"."""
    weekdays = set(((days + 3) % 7).tolist())  # 1970-01-01 was a Thursday (Monday = 0)
    return "24/7" if {5, 6} <= weekdays else "exchange"


def _bars_off_clock(days: np.ndarray, spacing: np.ndarray, bar_seconds: float) -> int:
    """Bars with no spacing on the clock on either side.

    A spacing is on the clock within ``ON_CLOCK`` of the median; for daily bars a step to the
    next weekday is too (a weekend). Session breaks of intraday bars leave every bar of a
    session with a neighbour on the clock, so only bars that fit no clock count.
    """
    on = np.abs(spacing / bar_seconds - 1.0) <= ON_CLOCK
    if frequency_label(bar_seconds) == "daily":
        dates = days.astype("datetime64[D]")
        on |= np.busday_offset(dates[:-1], 1, roll="forward") == dates[1:]
    bar_on = np.zeros(len(days), dtype=bool)
    bar_on[:-1] |= on
    bar_on[1:] |= on
    return int(np.count_nonzero(~bar_on))


def _bars_per_year(stamps: pd.DatetimeIndex, days: np.ndarray, bar_seconds: float,
                   calendar: str) -> float:
    """Bar intervals per year of the span, or the nominal factor for a span under a year."""
    span_days = (stamps[-1] - stamps[0]).total_seconds() / _DAY
    if span_days >= OBSERVED_FROM_DAYS:
        return (len(stamps) - 1) / (span_days / DAYS_PER_YEAR)
    label = frequency_label(bar_seconds)
    if label in NOMINAL_PER_YEAR:
        return float(NOMINAL_PER_YEAR[label])
    if label == "daily":
        return float(DAYS_WITH_BARS[calendar])
    if bar_seconds < _INTRADAY_BELOW:
        bars_per_day = float(np.median(np.unique(days, return_counts=True)[1]))
        return bars_per_day * DAYS_WITH_BARS[calendar]
    return DAYS_PER_YEAR * _DAY / bar_seconds


def _irregular_message(off: int, n: int, spacing: np.ndarray, bar_seconds: float) -> str:
    return (
        f"The bars have no regular frequency: {off} of {n} bars are more than {ON_CLOCK:.0%} "
        f"away from the median spacing ({_duration(bar_seconds)}) on both sides (spacings run "
        f"from {_duration(spacing.min())} to {_duration(spacing.max())}), so bars per year "
        "cannot be read from them. Resample them to one frequency, or pass periods_per_year=N "
        "(bars per year, e.g. 252 for exchange daily bars, 52 for weekly) to annualise "
        "explicitly."
    )


def _duration(seconds: float) -> str:
    for unit, size in (("day", _DAY), ("hour", 3600.0), ("minute", 60.0)):
        if seconds >= size:
            value = seconds / size
            return f"{value:.3g} {unit}{'' if value == 1 else 's'}"
    return f"{seconds:.3g} seconds"

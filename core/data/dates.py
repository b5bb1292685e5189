"""The dates of one price file, read one way for the whole file.

``02/01/2020`` is 2 January in Europe and 1 February in the US. Reading each row on its own
(as a per-value parser does) mixes both within one file, so numeric dates with two leading
fields are decided once per file: a first field above 12 somewhere means day-first, a second
field above 12 means month-first, and a file with neither (or both) is refused with a message
naming the ``date_format`` setting (docs/configuration.md).
"""
from __future__ import annotations

import re

import pandas as pd

from core.config import DATE_FORMATS
from core.errors import DataValidationError

#: ``dd/mm/yyyy``, ``mm-dd-yy``, ``dd.mm.yyyy`` ... with an optional time after a space or T.
_NUMERIC = re.compile(r"^(\d{1,2})([/.\-])(\d{1,2})\2(\d{4}|\d{2})((?:[ T].*)?)$")
#: Two-digit years below this are 20xx, the others 19xx (the C library's ``%y`` rule).
_CENTURY_PIVOT = 69
_SETTING_HINT = ('Set date_format = "dayfirst" or "monthfirst" (or a pattern like '
                 '"%d/%m/%Y") in config.toml or HINDSIGHT_DATE_FORMAT.')


def parse_dates(texts: pd.Series, date_format: str = "auto", where: str = "") -> pd.Series:
    """Datetimes for date strings (NaT where a value is no date), one reading for all rows.

    ``date_format``: ``auto`` (ISO; numeric day/month order detected per file), ``dayfirst``,
    ``monthfirst`` or a ``strftime`` pattern. ``where`` starts error messages (symbol and file).
    Raises ``DataValidationError`` when the day/month order cannot be told or is contradictory.
    """
    texts = pd.Series(texts, dtype=object).astype(str).str.strip()
    if date_format not in DATE_FORMATS:
        return pd.to_datetime(texts, format=date_format, errors="coerce")
    parsed = pd.to_datetime(texts, format="ISO8601", errors="coerce")
    if parsed.notna().all():
        return parsed
    parts = texts.str.extract(_NUMERIC)
    numeric = parts[0].notna() & parsed.isna()
    if numeric.any():
        first_is_day = _day_first(parts[numeric], texts[numeric], date_format, where)
        rewritten = _year_first(parts[numeric], first_is_day)
        parsed = parsed.astype("datetime64[us]")
        parsed[numeric] = _read(rewritten).astype("datetime64[us]")
    rest = parsed.isna() & ~numeric
    if rest.any():  # e.g. "Jan 2, 2020": the month is a word, no order to decide
        parsed[rest] = _read(texts[rest]).astype(parsed.dtype)
    return parsed


def _read(texts: pd.Series) -> pd.Series:
    """Year-first or worded dates: ISO first, anything else value by value."""
    parsed = pd.to_datetime(texts, format="ISO8601", errors="coerce")
    missing = parsed.isna()
    if missing.any():
        parsed = parsed.astype("datetime64[us]")
        parsed[missing] = pd.to_datetime(texts[missing], format="mixed",
                                         errors="coerce").astype("datetime64[us]")
    return parsed


def _day_first(parts: pd.DataFrame, texts: pd.Series, date_format: str, where: str) -> bool:
    """Whether the first field of these numeric dates is the day (setting, else the values)."""
    if date_format != "auto":
        return date_format == "dayfirst"
    first, second = parts[0].astype(int), parts[2].astype(int)
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first and month_first:
        raise DataValidationError(
            f"{where} has dates in both day-first and month-first order "
            f"({texts[first > 12].iloc[0]!r} and {texts[second > 12].iloc[0]!r}). Write every "
            f"date the same way (YYYY-MM-DD is safest). {_SETTING_HINT}"
        )
    if not (day_first or month_first):
        raise DataValidationError(
            f"{where} has dates like {texts.iloc[0]!r} that read as day-first or month-first "
            f"(no field above 12 tells which). {_SETTING_HINT}"
        )
    return day_first


def _year_first(parts: pd.DataFrame, first_is_day: bool) -> pd.Series:
    """``dd/mm/yyyy hh:mm`` (or ``mm/dd/yy``) rewritten as ``yyyy-mm-dd hh:mm``."""
    day, month = (parts[0], parts[2]) if first_is_day else (parts[2], parts[0])
    year = parts[3]
    short = year.str.len() == 2
    if short.any():
        two = year[short].astype(int)
        year = year.where(~short, (two + 2000).where(two < _CENTURY_PIVOT, two + 1900).astype(str))
    return year + "-" + month.str.zfill(2) + "-" + day.str.zfill(2) + parts[4].fillna("")

"""Check and normalise a bars DataFrame before anything computes on it or stores it.

``validate_bars`` runs on every backtest, so clean input takes a fast path: one vectorised pass
over the values and the original frame comes back untouched. Anything else is repaired where
that is safe (sorting, missing volume, tz-aware or non-float columns) or rejected with a
``DataValidationError`` that names the symbol, the rule broken and the first offending dates.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from core.canonical import stamp_fingerprint
from core.errors import DataValidationError

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
#: Whole days a bar's timestamp can fall on (pandas' nanosecond timestamps).
DATE_RANGE = "1677-09-22 to 2262-04-11"
_COLUMN_LIST = list(BAR_COLUMNS)
_FLOAT_DTYPES = [np.dtype(np.float64)] * len(BAR_COLUMNS)
_SHOWN_ROWS = 5  # how many bad dates an error message lists


def validate_bars(df: pd.DataFrame, symbol: str = "?") -> pd.DataFrame:
    """Return ``df`` as ascending, unique, float64 ``open high low close volume`` bars.

    Clean input (monotonic unique tz-naive datetime64[ns] index, exactly the five float64
    columns, consistent values) is returned as is; otherwise clean input on another time unit
    gets a nanosecond index. Anything else comes back as a corrected copy (unsorted -> sorted
    with a warning; missing/NaN volume -> 0.0) or raises ``DataValidationError``.
    ``df.attrs`` is kept (a fingerprint in it is recomputed when the bars changed).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(
            f"{symbol}: bars must be a pandas DataFrame, got {type(df).__name__}."
        )
    if _is_clean(df):
        return df if df.index.unit == "ns" else _with_ns_index(df)
    return _normalise(df, symbol)


def _with_ns_index(df: pd.DataFrame) -> pd.DataFrame:
    """The same bars on a datetime64[ns] index (pandas 3 defaults to microseconds).

    The fingerprint does not depend on the unit, so a stamped one stays valid.
    """
    out = df.copy(deep=False)
    out.index = df.index.as_unit("ns")
    return out


def _is_clean(df: pd.DataFrame) -> bool:
    """True when the frame already satisfies every rule (the per-backtest fast path)."""
    index = df.index
    if (
        not isinstance(index, pd.DatetimeIndex)
        or index.tz is not None
        or len(index) == 0
        or df.columns.tolist() != _COLUMN_LIST
        or df.dtypes.tolist() != _FLOAT_DTYPES
        or not index.is_monotonic_increasing
        or not index.is_unique
    ):
        return False
    return _values_are_clean(df.to_numpy(copy=False))


def _values_are_clean(values: np.ndarray) -> bool:
    """Finite positive prices, low <= min(open, close), max(open, close) <= high, volume >= 0.

    Reductions propagate NaN and NaN compares False, so any NaN fails; ``low > 0`` with the
    ordering implies every price is positive; a finite high bounds the other prices.
    """
    o, h, lo, c, v = (values[:, i] for i in range(5))
    return bool(
        lo.min() > 0
        and (np.minimum(o, c) - lo).min() >= 0
        and (h - np.maximum(o, c)).min() >= 0
        and h.max() < np.inf
        and v.min() >= 0
        and v.max() < np.inf
    )


def _normalise(df: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """The slow path: coerce shape and types, then diagnose values rule by rule."""
    if len(df.index) == 0:
        raise DataValidationError(
            f"{symbol}: no bars (the data is empty). Check the file or the date range."
        )
    out = _select_columns(df, symbol)
    out.index = _datetime_index(df.index, symbol)
    _check_duplicates(out.index, symbol)
    if not out.index.is_monotonic_increasing:
        warnings.warn(f"{symbol}: bars were not in date order; sorted them.", stacklevel=3)
        out = out.sort_index(kind="stable")
    _check_values(out, symbol)
    out.attrs = dict(df.attrs)
    if "fingerprint" in out.attrs:
        stamp_fingerprint(out)
    return out


def _select_columns(df: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """Pick the OHLCV columns (names matched case-insensitively) as a new float64 frame."""
    by_name = {str(c).strip().lower(): c for c in df.columns}
    missing = [c for c in PRICE_COLUMNS if c not in by_name]
    if missing:
        found = ", ".join(map(str, df.columns)) or "none"
        raise DataValidationError(
            f"{symbol}: bars need columns open, high, low, close (volume optional); "
            f"found {found}; missing {', '.join(missing)}. Rename the columns in the source."
        )
    data = {}
    for name in BAR_COLUMNS:
        if name not in by_name:
            data[name] = np.zeros(len(df), dtype=np.float64)
            continue
        column = df[by_name[name]]
        try:
            data[name] = pd.to_numeric(column, errors="raise").to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
            raise DataValidationError(
                f"{symbol}: column '{name}' has non-numeric values at "
                f"{_rows(df.index, bad.to_numpy())}. Fix those cells in the source."
            ) from None
    out = pd.DataFrame(data, index=df.index)
    out["volume"] = out["volume"].fillna(0.0)
    return out


def _datetime_index(index: pd.Index, symbol: str) -> pd.DatetimeIndex:
    """Index as tz-naive datetime64[ns]; tz-aware stamps keep their local wall-clock time."""
    if not isinstance(index, pd.DatetimeIndex):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "could not infer format"
                index = pd.DatetimeIndex(pd.to_datetime(index))
        except (TypeError, ValueError) as exc:
            raise DataValidationError(
                f"{symbol}: the index must hold dates ({exc}). Use a date column as the index."
            ) from None
    if index.hasnans:
        raise DataValidationError(
            f"{symbol}: {int(index.isna().sum())} bar(s) have no date. Fill or drop them."
        )
    if index.tz is not None:
        index = index.tz_localize(None)
    return index.as_unit("ns")


def _check_duplicates(index: pd.DatetimeIndex, symbol: str) -> None:
    if index.is_unique:
        return
    dup = index.duplicated(keep=False)
    raise DataValidationError(
        f"{symbol}: duplicate timestamps at {_rows(index, dup)}. Keep one bar per date."
    )


def _check_values(bars: pd.DataFrame, symbol: str) -> None:
    """Raise for the first broken value rule, naming the first bad dates."""
    o, h, lo, c, v = (bars[name].to_numpy() for name in BAR_COLUMNS)
    prices = np.column_stack([o, h, lo, c])
    index = bars.index
    rules = (
        (~np.isfinite(prices).all(axis=1), "NaN or infinite prices", "Fill or drop those rows"),
        ((prices <= 0).any(axis=1), "non-positive prices", "Prices must be > 0"),
        (h < lo, "high below low", "Check the high/low columns"),
        ((o < lo) | (o > h) | (c < lo) | (c > h),
         "open or close outside [low, high]", "Check the OHLC columns"),
        (~np.isfinite(v) | (v < 0), "negative or infinite volume", "Volume must be >= 0"),
    )
    for bad, what, fix in rules:
        if bad.any():
            raise DataValidationError(
                f"{symbol}: {int(bad.sum())} bar(s) with {what}, first at "
                f"{_rows(index, bad)}. {fix}."
            )


def _rows(index: pd.Index, mask: np.ndarray) -> str:
    """The first flagged index labels as ISO dates, e.g. ``2020-01-03, 2020-01-06 (+4 more)``."""
    positions = np.flatnonzero(mask)
    shown = [_label(index[p]) for p in positions[:_SHOWN_ROWS]]
    more = len(positions) - len(shown)
    return ", ".join(shown) + (f" (+{more} more)" if more > 0 else "")


def _label(value: object) -> str:
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d") if value == value.normalize() else value.isoformat()
    return str(value)

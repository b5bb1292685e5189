"""The user's own files: one CSV or Parquet file per symbol in a folder (``AAPL.csv``).

Column names are matched loosely (any case; spaces, underscores, dashes and dots ignored):
a date column (``Date``, ``Datetime``, ``timestamp``, ``time``, ``index`` or the Parquet index),
``Open High Low Close``, optional ``Volume`` and optional ``Adj Close``.

Adjusted prices: when an adjusted close column exists, open/high/low/close are all multiplied by
``adj_close / close`` on each bar, so returns include dividends and splits and the bars stay
consistent (low <= open, close <= high); volume is left as is. Without it the prices are used as
they are. Timestamps with a UTC offset keep their local wall-clock time. Numeric dates such as
``02/01/2020`` are read day-first or month-first for the whole file (``core/data/dates.py``).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.dates import parse_dates
from core.data.provider import Provider, slice_bars
from core.data.symbols import validate_symbol
from core.data.validate import DATE_RANGE, PRICE_COLUMNS, validate_bars
from core.errors import DataUnavailableError, DataValidationError
from core.scope import source_id

SUFFIXES = (".parquet", ".pq", ".csv")  # preference order when a symbol has several files
_DATE_NAMES = ("date", "datetime", "timestamp", "time", "index", "day", "unnamed0")
_ALIASES = {
    "open": "open", "high": "high", "low": "low", "close": "close",
    "adjclose": "adj_close", "adjustedclose": "adj_close", "closeadj": "adj_close",
    "volume": "volume", "vol": "volume",
}
_OFFSET = re.compile(r"(?:[+-]\d{2}:?\d{2}|Z)$")


def _key(name: object) -> str:
    return re.sub(r"[\s_\-.:]", "", str(name).lower())


def read_ohlcv_csv(path: str | os.PathLike, symbol: str | None = None,
                  date_format: str = "auto") -> pd.DataFrame:
    """Validated bars from any OHLCV CSV with a date column (symbol defaults to the file stem)."""
    path = Path(path)
    return slice_bars(read_bars_file(path, symbol or path.stem, date_format), symbol or path.stem)


def read_bars_file(path: Path, symbol: str, date_format: str = "auto") -> pd.DataFrame:
    """A CSV or Parquet file -> validated bars (columns matched loosely, adjusted if possible).

    ``date_format`` is the setting of that name: ``auto``, ``dayfirst``, ``monthfirst`` or a
    ``strftime`` pattern (see ``core.data.dates.parse_dates``).
    """
    if not path.is_file():
        raise DataValidationError(f"{symbol}: file {path} does not exist.")
    try:
        raw = pd.read_parquet(path) if path.suffix.lower() in (".parquet", ".pq") \
            else _read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataValidationError(f"{symbol}: file {path} is empty. Add bars or remove it.") from None
    except (OSError, ValueError) as exc:
        raise DataValidationError(f"{symbol}: cannot read {path}: {exc}.") from None
    return validate_bars(_standardise(raw, symbol, path, date_format), symbol)


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV; also understands the 3-line header that ``yfinance`` writes (Price/Ticker/Date)."""
    frame = pd.read_csv(path)
    if len(frame.columns) and _key(frame.columns[0]) == "price" and len(frame) \
            and _key(frame.iloc[0, 0]) == "ticker":
        labels = frame.iloc[:, 0].astype(str).map(_key)
        frame = frame[~labels.isin(["ticker", "date"])].rename(columns={frame.columns[0]: "date"})
    return frame


def _standardise(raw: pd.DataFrame, symbol: str, path: Path,
                 date_format: str = "auto") -> pd.DataFrame:
    """Find the date and OHLCV columns, index by date, apply the adjusted-close factor."""
    if not isinstance(raw.index, pd.RangeIndex):  # e.g. Parquet written with a date index
        raw = raw.reset_index()
    by_key = {}
    for column in raw.columns:
        by_key.setdefault(_key(column), column)
    date_column = next((by_key[k] for k in _DATE_NAMES if k in by_key), None)
    fields = {_ALIASES[k]: column for k, column in by_key.items() if k in _ALIASES}
    missing = [c for c in PRICE_COLUMNS if c not in fields]
    if date_column is None or missing:
        needed = (["a date column (Date/Datetime/timestamp)"] if date_column is None else []) \
            + missing
        found = ", ".join(map(str, raw.columns)) or "none"
        raise DataValidationError(
            f"{symbol}: {path.name} has columns {found}; missing {', '.join(needed)}. Needed: "
            "Date, Open, High, Low, Close (Volume and Adj Close optional, any case)."
        )
    if raw.empty:
        raise DataValidationError(f"{symbol}: {path.name} has a header but no bars.")
    index = _parse_dates(raw[date_column], symbol, path, date_format)
    bars = pd.DataFrame(
        {name: _numbers(raw[fields[name]], name, index, symbol) for name in PRICE_COLUMNS},
        index=index,
    )
    bars["volume"] = (_numbers(raw[fields["volume"]], "volume", index, symbol)
                      if "volume" in fields else 0.0)
    if "adj_close" in fields:
        factor = _numbers(raw[fields["adj_close"]], "adj close", index, symbol) / bars["close"]
        for name in PRICE_COLUMNS:
            bars[name] = bars[name] * factor
    bars.index.name = "date"
    return bars


def _parse_dates(column: pd.Series, symbol: str, path: Path,
                 date_format: str = "auto") -> pd.DatetimeIndex:
    """Dates from a column; a trailing UTC offset is dropped so local wall-clock time is kept."""
    if pd.api.types.is_datetime64_any_dtype(column):
        parsed = column.dt.tz_localize(None) if column.dt.tz is not None else column
    else:
        column = column.astype(str).str.strip().str.replace(_OFFSET, "", regex=True)
        parsed = parse_dates(column, date_format, f"{symbol}: {path.name}")
    bad = parsed.isna().to_numpy()
    if bad.any():
        rows = ", ".join(repr(v) for v in column[bad].head(5))
        how = "Use YYYY-MM-DD." if date_format == "auto" else \
            f"They were read with date_format = {date_format!r}; fix them or the setting."
        raise DataValidationError(
            f"{symbol}: {path.name} has {int(bad.sum())} value(s) in the date column that are not "
            f"dates, first: {rows}. {how}"
        )
    outside = ((parsed < pd.Timestamp.min) | (parsed > pd.Timestamp.max)).to_numpy()
    if outside.any():
        rows = ", ".join(repr(str(v)) for v in column[outside].head(5))
        raise DataValidationError(
            f"{symbol}: {path.name} has {int(outside.sum())} date(s) outside "
            f"{DATE_RANGE}, first: {rows}. Fix or remove those rows."
        )
    return pd.DatetimeIndex(parsed).as_unit("ns")


def _numbers(column: pd.Series, name: str, index: pd.DatetimeIndex, symbol: str) -> np.ndarray:
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & column.notna().to_numpy()
    if bad.any():
        dates = ", ".join(d.strftime("%Y-%m-%d") for d in index[bad][:5])
        raise DataValidationError(
            f"{symbol}: column '{name}' has non-numeric values on {dates}. Fix those cells."
        )
    return values


class FolderProvider(Provider):
    """Bars from ``folder/<SYMBOL>.csv`` or ``.parquet`` files."""

    name = "folder"
    label = "your files"

    def __init__(self, folder: str | os.PathLike, date_format: str = "auto"):
        self.folder = Path(folder)
        self.date_format = date_format
        self.cache_key = f"folder:{self.folder.absolute()}"

    @property
    def source_id(self) -> str:
        return source_id("folder", str(self.folder))

    def files(self) -> dict[str, Path]:
        """Symbol -> file; Parquet wins over CSV; names that are not valid symbols are skipped."""
        if not self.folder.is_dir():
            raise DataUnavailableError(
                f"Data folder '{self.folder}' does not exist. Create it with one CSV or Parquet "
                "file per symbol (AAPL.csv), or set data_source = \"demo\"."
            )
        found: dict[str, Path] = {}
        for entry in sorted(self.folder.iterdir(), key=lambda p: SUFFIXES.index(p.suffix.lower())
                            if p.suffix.lower() in SUFFIXES else len(SUFFIXES)):
            if entry.suffix.lower() not in SUFFIXES or not entry.is_file():
                continue
            try:
                found.setdefault(validate_symbol(entry.stem), entry)
            except DataValidationError:
                continue
        return found

    def symbols(self) -> list[str]:
        return sorted(self.files())

    def fetch(self, symbol: str) -> pd.DataFrame:
        return read_bars_file(self.files()[symbol], symbol, self.date_format)

    def signatures(self, symbols: list[str]) -> dict[str, list]:
        """Per symbol: file name, mtime, size and date_format; any change re-reads the file."""
        files = self.files()
        out = {}
        for symbol in symbols:
            stat = files[symbol].stat()
            out[symbol] = [files[symbol].name, stat.st_mtime_ns, stat.st_size, self.date_format]
        return out

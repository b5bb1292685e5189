"""The provider interface shared by the demo, folder and Yahoo sources and the cached wrapper.

A provider knows how to fetch the *full history* of one symbol (``fetch``); everything else —
symbol checks, validation, date slicing, the fingerprint — is done here once, identically for
every source.
"""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable

import pandas as pd

from core.canonical import fingerprint_of, stamp_fingerprint
from core.data.symbols import validate_symbol
from core.data.validate import DATE_RANGE, validate_bars
from core.errors import DataValidationError, HindsightError, UnknownSymbolError, did_you_mean
from core.scope import stamp_scope


class Provider(ABC):
    """Base class: subclasses set ``name`` and implement ``symbols()`` and ``fetch(symbol)``."""

    name: str = ""
    #: What the app shows next to the data (e.g. "synthetic demo data").
    label: str = ""
    #: Identifies this source's data in the price cache (e.g. one folder vs another).
    cache_key: str = ""

    @property
    def source_id(self) -> str:
        """The source part of a stored backtest's scope (``core.scope.source_id``)."""
        return self.name

    @abstractmethod
    def symbols(self) -> list[str]:
        """Every symbol this source can load, sorted."""

    @abstractmethod
    def fetch(self, symbol: str) -> pd.DataFrame:
        """The full history of a known, already validated symbol, as raw bars."""

    def signatures(self, symbols: list[str]) -> dict[str, object]:
        """Per symbol, a value that changes when the source data changes (None: never checked).

        The price cache re-reads a symbol whose stored signature differs.
        """
        return dict.fromkeys(symbols)

    def load_bars(self, symbol: str, start=None, end=None) -> pd.DataFrame:
        """Validated bars of ``symbol`` between ``start`` and ``end`` (inclusive, optional).

        The frame carries ``attrs["symbol"]`` and ``attrs["fingerprint"]`` (of the returned bars).
        """
        symbol = self.check_symbol(symbol)
        return slice_bars(validate_bars(self.fetch(symbol), symbol), symbol, start, end,
                          self.source_id)

    def load_many(self, symbols: Iterable[str], start=None, end=None) -> dict[str, pd.DataFrame]:
        """``load_bars`` for several symbols, keyed by symbol in the order given."""
        return {symbol: self.load_bars(symbol, start, end) for symbol in symbols}

    def load_available(self, symbols: Iterable[str], start=None, end=None
                       ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """``load_many`` that skips what cannot be loaded: (bars, error message per skipped symbol).

        An unknown symbol, a malformed file or a range without bars is reported instead of
        stopping the other symbols.
        """
        bars, skipped = {}, {}
        for symbol in dict.fromkeys(symbols):
            try:
                bars[symbol] = self.load_bars(symbol, start, end)
            except HindsightError as exc:
                skipped[symbol] = str(exc)
        return bars, skipped

    def check_symbol(self, symbol: str, known: Iterable[str] | None = None) -> str:
        """Validate the name and make sure this source has it (did-you-mean otherwise)."""
        symbol = validate_symbol(symbol)
        known = set(self.symbols() if known is None else known)
        if symbol not in known:
            raise UnknownSymbolError(
                f"Unknown symbol '{symbol}' for the {self.name} data source."
                + _suggest(symbol, known)
            )
        return symbol

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.cache_key or self.name}>"


def _suggest(symbol: str, known: set[str]) -> str:
    """Did-you-mean, case-insensitive first ('aapl' -> 'AAPL'), then by spelling."""
    def loose(name: str) -> str:  # case and zero padding ignored: demo1 ~ DEMO01
        return re.sub(r"0+(\d)", r"\1", name.lower())

    same_letters = sorted(name for name in known if loose(name) == loose(symbol))
    if same_letters:
        return f" Did you mean '{same_letters[0]}'?"
    hint = did_you_mean(symbol, known)
    if hint.startswith(" Did you mean") or len(known) <= 20:
        return hint
    return f" The source has {len(known)} symbols, e.g. {', '.join(sorted(known)[:5])}."


def _timestamp(value, label: str, symbol: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise DataValidationError(
            f"{symbol}: {label} date {value!r} is not a date. Use YYYY-MM-DD."
        ) from None
    if pd.isna(stamp):
        return None
    stamp = stamp.tz_localize(None) if stamp.tzinfo is not None else stamp
    if pd.Timestamp.min <= stamp <= pd.Timestamp.max:
        return stamp
    if (label == "start") == (stamp < pd.Timestamp.min):  # before all data / after all data
        return None  # e.g. end 9999-12-31: no bound on that side
    raise DataValidationError(
        f"{symbol}: {label} date {value!r} is outside the dates bars can have "
        f"({DATE_RANGE}). Use a date in that range."
    )


def slice_bars(bars: pd.DataFrame, symbol: str, start=None, end=None, source: str = ""
               ) -> pd.DataFrame:
    """Bars within [start, end] with symbol, fingerprint, source and window attrs (the scope
    a backtest on them is stored under); no bars is an error."""
    lo, hi = _timestamp(start, "start", symbol), _timestamp(end, "end", symbol)
    if lo is not None and hi is not None and lo > hi:
        raise DataValidationError(
            f"{symbol}: start {lo.date()} is after end {hi.date()}. Swap the dates."
        )
    out = bars
    if lo is not None or hi is not None:
        index = bars.index
        first = 0 if lo is None else index.searchsorted(lo, side="left")
        last = len(index) if hi is None else index.searchsorted(hi, side="right")
        out = bars.iloc[first:last]
    if out.empty:
        have = f"{bars.index[0].date()} to {bars.index[-1].date()}"
        raise DataValidationError(
            f"{symbol}: no bars between {lo.date() if lo is not None else 'the start'} and "
            f"{hi.date() if hi is not None else 'the end'}; the data covers {have}. "
            "Widen the date range."
        )
    fingerprint = fingerprint_of(bars) if out is bars else None  # whole histories come stamped
    out = out.copy(deep=False)
    out.attrs = {**bars.attrs, "symbol": symbol}
    return stamp_scope(stamp_fingerprint(out, fingerprint), source, lo, hi)

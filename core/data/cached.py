"""A data source behind the Zarr price cache, and ``get_provider(settings)``.

Bars are stored once per symbol. A symbol is fetched from its source only when it is not cached,
when its file changed (folder), or when the cached copy is older than ``max_age`` (Yahoo). New
bars are appended; a history that changed in the past (a rewritten file, a new dividend
adjustment) is replaced. Everything is validated before it is written, so bad data never lands
in the cache.
"""
from __future__ import annotations

import re
import threading
import warnings
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd

from core.config import Settings, load_settings
from core.data.provider import Provider, slice_bars
from core.data.validate import BAR_COLUMNS, validate_bars
from core.errors import DataUnavailableError, HindsightError
from core.data.prices import PriceCache


class CachedProvider(Provider):
    """``source`` read through ``cache``; same interface as any provider."""

    def __init__(self, source: Provider, cache: PriceCache,
                 max_age: timedelta = timedelta(hours=12)):
        self.source, self.cache, self.max_age = source, cache, max_age
        self.name, self.cache_key = source.name, source.cache_key
        self.label = source.label or source.name
        self._sync_lock = threading.Lock()

    def symbols(self) -> list[str]:
        names = set(self.source.symbols())
        if self.name == "yahoo":  # any ticker can be downloaded: the cached ones count too
            names.update(self.cache.symbols(self.cache_key))
        return sorted(names)

    @property
    def source_id(self) -> str:
        return self.source.source_id

    def check_symbol(self, symbol: str, known=None) -> str:
        return self.source.check_symbol(symbol, known)

    def fetch(self, symbol: str) -> pd.DataFrame:
        return self.histories([symbol])[symbol]

    def load_bars(self, symbol: str, start=None, end=None) -> pd.DataFrame:
        symbol = self.check_symbol(symbol)
        return slice_bars(self.histories([symbol])[symbol], symbol, start, end,
                          self.source_id)

    def load_many(self, symbols, start=None, end=None) -> dict[str, pd.DataFrame]:
        symbols = list(dict.fromkeys(symbols))
        known = self.symbols()
        checked = [self.check_symbol(symbol, known) for symbol in symbols]
        histories = self.histories(checked)
        return {symbol: slice_bars(histories[symbol], symbol, start, end, self.source_id) for symbol in checked}

    def load_available(self, symbols, start=None, end=None
                       ) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
        """``load_many`` that skips what cannot be loaded: (bars, error message per skipped symbol).

        A symbol whose file is malformed is skipped even when an older copy is cached: the
        file is what the user sees, so it is reported rather than silently replaced.
        """
        known = self.symbols()
        checked, skipped = [], {}
        for symbol in dict.fromkeys(symbols):
            try:
                checked.append(self.check_symbol(symbol, known))
            except HindsightError as exc:
                skipped[symbol] = str(exc)
        histories = self.histories(checked, failures=skipped)
        bars = {}
        for symbol in checked:
            if symbol in skipped:
                continue
            try:
                bars[symbol] = slice_bars(histories[symbol], symbol, start, end, self.source_id)
            except HindsightError as exc:
                skipped[symbol] = str(exc)
        return bars, skipped

    def refresh(self, symbols=None) -> dict[str, int]:
        """Bring symbols (default: all) up to date now; new rows per symbol.

        Yahoo is asked even when its copy is younger than ``max_age``. Symbols the source does
        not have, or whose new data is bad or unreachable, are left out of the result with a
        warning naming them, so one bad file never stops a nightly refresh.
        """
        known = self.symbols()
        checked = []
        for symbol in (known if symbols is None else list(dict.fromkeys(symbols))):
            try:
                checked.append(self.check_symbol(symbol, known))
            except HindsightError as exc:
                warnings.warn(f"Not refreshed: {exc}", stacklevel=2)
        before = {s: (self.cache.info(self.cache_key, s) or {}).get("rows", 0) for s in checked}
        failures: dict[str, str] = {}
        self._sync(checked, self.cache.load_many(self.cache_key, checked), force=True,
                   failures=failures)
        for symbol, message in failures.items():
            warnings.warn(f"Not refreshed: {message}", stacklevel=2)
        return {s: self.cache.info(self.cache_key, s)["rows"] - before[s]
                for s in checked if s not in failures}

    def histories(self, symbols: list[str], failures: dict[str, str] | None = None
                  ) -> dict[str, pd.DataFrame]:
        """Full cached histories, fetching what is missing or stale first.

        With ``failures`` given, a symbol that cannot be fetched is recorded there (symbol ->
        message) and left out instead of raising.
        """
        cached = self.cache.load_many(self.cache_key, symbols)
        updated = self._sync(symbols, cached, failures=failures)
        if updated:
            cached.update(self.cache.load_many(self.cache_key, updated))
        return {symbol: cached[symbol] for symbol in symbols
                if symbol in cached and symbol not in (failures or {})}

    def _sync(self, symbols: list[str], cached: dict, force: bool = False,
              failures: dict[str, str] | None = None) -> list[str]:
        """Fetch and store the missing or stale symbols; return those that were considered.

        With ``failures`` given, a symbol whose fetch fails is recorded there instead of raising.
        One thread at a time fetches; a thread that waited sees what the other one stored.
        """
        if not self._stale(symbols, cached, force)[0]:
            return []
        with self._sync_lock:
            cached.update(self.cache.load_many(self.cache_key, symbols))
            stale, signatures = self._stale(symbols, cached, force)
            if stale:
                self._update(stale, cached, signatures, failures)
            return stale

    def _stale(self, symbols: list[str], cached: dict, force: bool) -> tuple[list[str], dict]:
        """Symbols to fetch (missing or stale) and every symbol's current source signature."""
        signatures = self.source.signatures(symbols)
        stale = [s for s in symbols if s not in cached or self._is_stale(s, signatures[s], force)]
        return stale, signatures

    def _update(self, stale: list[str], cached: dict, signatures: dict,
                failures: dict[str, str] | None) -> None:
        """Fetch ``stale``; append new bars where the old ones still hold, else replace."""
        if hasattr(self.source, "fetch_all"):  # generated as a whole: store it as a whole
            self.cache.put(self.cache_key, self.source.fetch_all(),
                           meta={"label": self.label, "source": self.cache_key})
            return
        replace, append = {}, {}
        for symbol in stale:
            old = cached.get(symbol)
            try:
                fresh, is_tail = self._fetch_fresh(symbol, old)
            except DataUnavailableError as exc:
                if old is None and failures is None:
                    raise
                if old is None:
                    failures[symbol] = str(exc)
                else:
                    warnings.warn(f"{exc} Using the cached bars of {symbol}.", stacklevel=4)
                continue
            except HindsightError as exc:
                if failures is None:
                    raise
                failures[symbol] = str(exc)
                continue
            if is_tail or (old is not None and _extends(old, fresh, same_start=True)):
                append[symbol] = fresh
            else:
                replace[symbol] = fresh
        if replace:
            self.cache.put(self.cache_key, replace, {s: signatures[s] for s in replace})
        if append:
            self.cache.append(self.cache_key, append, {s: signatures[s] for s in append})

    def _is_stale(self, symbol: str, signature: object, force: bool) -> bool:
        """Folder: the file changed. Yahoo: checked longer than ``max_age`` ago (or forced)."""
        info = self.cache.info(self.cache_key, symbol)
        if signature is not None:
            return info["signature"] != signature
        if self.name != "yahoo":
            return False
        checked = datetime.fromisoformat(info["checked"])
        return force or datetime.now(timezone.utc) - checked > self.max_age

    def _fetch_fresh(self, symbol: str, old: pd.DataFrame | None) -> tuple[pd.DataFrame, bool]:
        """Validated bars and whether they are only a tail that extends ``old``.

        Sources that can (Yahoo) are asked for the bars since the last cached one; when those
        disagree with the cache on the shared day, the full history is fetched instead.
        """
        if old is not None and hasattr(self.source, "fetch_since"):
            tail = self.source.fetch_since(symbol, old.index[-1])
            if len(tail) == 0:
                return old.iloc[-1:], True
            tail = validate_bars(tail, symbol)
            if _extends(old, tail, same_start=False):
                return tail, True
        return validate_bars(self.source.fetch(symbol), symbol), False


def _extends(old: pd.DataFrame, new: pd.DataFrame, same_start: bool) -> bool:
    """True when ``new`` agrees with ``old`` on every date they share, so appending suffices.

    They must overlap (``new`` holds no date inside old's range that old lacks, and vice versa);
    with ``same_start`` (a full history) both must also begin on the same date. Prices must match
    to 1e-9 relative: an adjusted history rescaled by a new dividend fails, as it should.
    """
    if new.index[0] > old.index[-1] or (same_start and new.index[0] != old.index[0]):
        return False
    shared = new.index[new.index <= old.index[-1]]
    in_old = old.index[old.index >= new.index[0]]
    if len(shared) != len(in_old) or not shared.equals(in_old):
        return False
    a = old.loc[shared, list(BAR_COLUMNS)].to_numpy()
    b = new.loc[shared, list(BAR_COLUMNS)].to_numpy()
    return bool(np.allclose(a, b, rtol=1e-9, atol=0.0))


def make_source(settings: Settings) -> Provider:
    """The uncached provider chosen by ``settings.data_source``."""
    if settings.data_source == "folder":
        from core.data.folder import FolderProvider

        return FolderProvider(settings.data_folder, settings.date_format)
    if settings.data_source == "yahoo":
        from core.data.yahoo import DEFAULT_WATCHLIST, YahooProvider

        # "AAPL, MSFT" (env or TOML string) or a TOML list, which Settings keeps as its text
        watchlist = [s for s in re.split(r"[\s,;\[\]'\"]+", settings.watchlist) if s]
        return YahooProvider(watchlist or DEFAULT_WATCHLIST)
    from core.data.demo import DemoProvider

    return DemoProvider(settings.demo_symbols, settings.demo_years)


def get_provider(settings: Settings | None = None) -> CachedProvider:
    """The configured data source wrapped in the price cache (one instance per settings)."""
    return _provider_for(settings if settings is not None else load_settings())


@lru_cache(maxsize=16)
def _provider_for(settings: Settings) -> CachedProvider:
    return CachedProvider(make_source(settings), PriceCache.at(settings.price_cache))

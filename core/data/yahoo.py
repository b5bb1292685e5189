"""Yahoo Finance through ``yfinance``: used only when chosen, and never allowed to hang a page.

Before any download a TCP connection to Yahoo is tried in a background thread with a hard
deadline (4 s by default, so a page hears back within 5 s); offline, a firewall or a DNS that never answers all end in a
``DataUnavailableError`` that suggests the demo or folder source. The outcome is remembered for
a short while so that loading many symbols offline fails once, not once per symbol.
Prices are adjusted (``auto_adjust=True``): OHLC include splits and dividends, as the folder
provider does with an ``Adj Close`` column.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable

import pandas as pd

from core.data.provider import Provider, _suggest
from core.data.symbols import validate_symbol
from core.errors import DataUnavailableError, UnknownSymbolError

YAHOO_HOST = "query1.finance.yahoo.com"
DEFAULT_WATCHLIST = (
    "AAPL", "MSFT", "AMZN", "GOOGL", "META", "NVDA", "JPM", "JNJ", "XOM", "PG",
    "KO", "WMT", "HD", "DIS", "INTC", "CSCO", "PFE", "BA", "CAT", "SPY", "QQQ", "IWM",
)
OFFLINE_ADVICE = (
    "Work offline with the built-in demo data (data_source = \"demo\") or your own files "
    "(data_source = \"folder\"), e.g. HINDSIGHT_DATA_SOURCE=demo."
)


def _with_deadline(task: Callable[[], object], seconds: float, what: str) -> object:
    """Run ``task`` in a daemon thread; give up after ``seconds`` (the thread is abandoned)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["value"] = task()
        except BaseException as exc:  # handed to the caller below
            outcome["error"] = exc

    worker = threading.Thread(target=run, name=f"yahoo-{what}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise DataUnavailableError(
            f"Yahoo Finance did not answer within {seconds:g} s ({what}). {OFFLINE_ADVICE}"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def normalise_history(frame: pd.DataFrame) -> pd.DataFrame:
    """yfinance ``history()`` output -> lower-case OHLCV with a tz-naive daily index."""
    if isinstance(frame.columns, pd.MultiIndex):  # yf.download style (field, ticker)
        frame = frame.droplevel(-1, axis=1)
    columns = {c: str(c).strip().lower() for c in frame.columns}
    out = frame.rename(columns=columns)[[c for c in ("open", "high", "low", "close", "volume")
                                         if c in columns.values()]]
    index = pd.DatetimeIndex(out.index)
    if index.tz is not None:
        index = index.tz_localize(None)  # keep the exchange's local date
    out.index = index.normalize().as_unit("ns")
    out.index.name = "date"
    return out.astype("float64")


class YahooProvider(Provider):
    """Daily adjusted bars from Yahoo Finance; ``symbols()`` is the configured watchlist."""

    name = "yahoo"
    label = "Yahoo Finance"
    cache_key = "yahoo"
    probe_memory_seconds = 30.0

    def __init__(self, watchlist: Iterable[str] = DEFAULT_WATCHLIST, host: str = YAHOO_HOST,
                 port: int = 443, timeout: float = 4.0, download_timeout: float = 30.0):
        self.watchlist = sorted({validate_symbol(s) for s in watchlist})
        self.host, self.port = host, int(port)
        self.timeout, self.download_timeout = float(timeout), float(download_timeout)
        self._probe: tuple[float, DataUnavailableError | None] | None = None

    def symbols(self) -> list[str]:
        return list(self.watchlist)

    def check_symbol(self, symbol: str, known: Iterable[str] | None = None) -> str:
        """Any well-formed ticker may be asked for; Yahoo itself says whether it exists."""
        return validate_symbol(symbol)

    def fetch(self, symbol: str) -> pd.DataFrame:
        return self.fetch_since(symbol, None)

    def fetch_since(self, symbol: str, start: pd.Timestamp | None) -> pd.DataFrame:
        """Bars from ``start`` (inclusive; None = full history). Empty when nothing is newer."""
        self.ensure_online()
        history = _with_deadline(lambda: self._download(symbol, start),
                                 self.download_timeout, f"downloading {symbol}")
        if history is None or len(history) == 0:
            if start is None:
                raise UnknownSymbolError(
                    f"Yahoo Finance has no daily bars for '{symbol}'. Check the ticker (e.g. "
                    f"'BRK-B', '^GSPC')." + _suggest(symbol, set(self.watchlist))
                )
            return pd.DataFrame(columns=["open", "high", "low", "close", "volume"],
                                index=pd.DatetimeIndex([], name="date"), dtype="float64")
        return normalise_history(history)

    def _download(self, symbol: str, start: pd.Timestamp | None) -> pd.DataFrame:
        import yfinance

        ticker = yfinance.Ticker(symbol)
        try:
            if start is None:
                return ticker.history(period="max", auto_adjust=True, actions=False,
                                      timeout=self.timeout, raise_errors=True)
            return ticker.history(start=pd.Timestamp(start).strftime("%Y-%m-%d"),
                                  auto_adjust=True, actions=False, timeout=self.timeout,
                                  raise_errors=True)
        except Exception as exc:
            if any(word in type(exc).__name__ for word in ("Missing", "Delisted", "Ticker")):
                return None
            raise DataUnavailableError(
                f"Yahoo Finance download of '{symbol}' failed: {str(exc).rstrip('. ')}. "
                f"{OFFLINE_ADVICE}"
            ) from None

    def ensure_online(self) -> None:
        """Raise DataUnavailableError (within ``timeout`` s) when Yahoo cannot be reached."""
        now = time.monotonic()
        if self._probe is None or now - self._probe[0] > self.probe_memory_seconds:
            self._probe = (now, self._try_connect())
        if self._probe[1] is not None:
            raise self._probe[1]

    def _try_connect(self) -> DataUnavailableError | None:
        def connect() -> None:
            with socket.create_connection((self.host, self.port), timeout=self.timeout):
                return

        try:
            _with_deadline(connect, self.timeout, f"connecting to {self.host}")
        except DataUnavailableError as exc:
            return exc
        except OSError as exc:
            return DataUnavailableError(
                f"Yahoo Finance is unreachable ({self.host}:{self.port}: "
                f"{exc.strerror or exc}). {OFFLINE_ADVICE}"
            )
        return None

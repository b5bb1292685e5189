"""Yahoo provider without any real network: fast offline failure and the update logic."""
from __future__ import annotations

import socket
import threading
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from core.data.cached import CachedProvider
from core.data.yahoo import YahooProvider, _with_deadline, normalise_history
from core.errors import DataUnavailableError, UnknownSymbolError
from core.data.prices import PriceCache


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens here once the socket is closed


def test_closed_port_fails_fast_with_advice():
    provider = YahooProvider(host="127.0.0.1", port=_closed_port(), timeout=5.0)
    started = time.monotonic()
    with pytest.raises(DataUnavailableError) as info:
        provider.load_bars("AAPL")
    assert time.monotonic() - started < 5.0
    message = str(info.value)
    assert "unreachable" in message and "demo" in message and "folder" in message
    started = time.monotonic()
    with pytest.raises(DataUnavailableError):
        provider.load_bars("MSFT")  # the failed probe is remembered: no second wait
    assert time.monotonic() - started < 0.5


@pytest.fixture
def silent_server():
    """A local server that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def serve():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_a_silent_socket_hits_the_deadline(silent_server):
    def wait_for_reply():
        with socket.create_connection(silent_server) as conn:
            return conn.recv(1)

    started = time.monotonic()
    with pytest.raises(DataUnavailableError, match=r"did not answer within 0.5 s.*demo"):
        _with_deadline(wait_for_reply, 0.5, "waiting")
    assert time.monotonic() - started < 2.0


def test_deadline_passes_results_and_errors_through():
    assert _with_deadline(lambda: 42, 1.0, "x") == 42
    with pytest.raises(ZeroDivisionError):
        _with_deadline(lambda: 1 / 0, 1.0, "x")


def _yahoo_frame(dates, closes, scale=1.0):
    """The shape yfinance's history() returns: capitalised columns, tz-aware index."""
    index = pd.DatetimeIndex(pd.to_datetime(dates)).tz_localize("America/New_York")
    close = np.asarray(closes, dtype=float) * scale
    return pd.DataFrame({"Open": close, "High": close + 1, "Low": close - 1, "Close": close,
                         "Volume": np.arange(len(close), dtype=np.int64) + 1,
                         "Dividends": 0.0}, index=index.rename("Date"))


def test_normalise_history():
    out = normalise_history(_yahoo_frame(["2024-01-02", "2024-01-03"], [10, 11]))
    assert list(out.columns) == ["open", "high", "low", "close", "volume"]
    assert list(out.index) == [pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-03")]
    assert (out.dtypes == np.float64).all()
    multi = _yahoo_frame(["2024-01-02"], [10])
    multi.columns = pd.MultiIndex.from_product([multi.columns, ["AAPL"]])
    assert normalise_history(multi)["close"].tolist() == [10.0]


class FakeYahoo(YahooProvider):
    """Yahoo with its server replaced by a dict of frames (no network in tests)."""

    def __init__(self, server: dict[str, pd.DataFrame]):
        super().__init__(watchlist=["AAA"], host="127.0.0.1", port=_closed_port())
        self.server, self.requests = server, []
        self.online = True

    def ensure_online(self) -> None:
        if not self.online:
            raise DataUnavailableError("Yahoo Finance is unreachable (test). Use demo or folder.")

    def _download(self, symbol, start):
        self.requests.append((symbol, start))
        frame = self.server.get(symbol)
        if frame is None:
            return None
        if start is not None:
            frame = frame[frame.index.tz_localize(None) >= pd.Timestamp(start)]
        return frame


DATES = pd.bdate_range("2024-01-01", periods=8).strftime("%Y-%m-%d").tolist()
CLOSES = [10, 11, 12, 13, 14, 15, 16, 17]


def test_new_bars_are_appended_from_the_last_cached_day(tmp_path):
    fake = FakeYahoo({"AAA": _yahoo_frame(DATES[:5], CLOSES[:5])})
    provider = CachedProvider(fake, PriceCache(tmp_path / "p.zarr"))
    assert provider.load_bars("AAA")["close"].tolist() == [10, 11, 12, 13, 14]
    fake.server["AAA"] = _yahoo_frame(DATES, CLOSES)
    assert provider.refresh(["AAA"]) == {"AAA": 3}
    assert fake.requests[-1] == ("AAA", pd.Timestamp(DATES[4]))  # only the tail was asked for
    entry = provider.cache.manifest()["sources"]["yahoo"]["symbols"]["AAA"]
    assert [p[2] - p[1] for p in entry["pieces"]] == [5, 3]
    assert provider.load_bars("AAA")["close"].tolist() == CLOSES


def test_a_new_dividend_adjustment_replaces_the_history(tmp_path):
    fake = FakeYahoo({"AAA": _yahoo_frame(DATES[:5], CLOSES[:5])})
    provider = CachedProvider(fake, PriceCache(tmp_path / "p.zarr"))
    provider.load_bars("AAA")
    fake.server["AAA"] = _yahoo_frame(DATES, CLOSES, scale=0.5)  # every past price rescaled
    assert provider.refresh(["AAA"]) == {"AAA": 3}
    entry = provider.cache.manifest()["sources"]["yahoo"]["symbols"]["AAA"]
    assert len(entry["pieces"]) == 1
    assert provider.load_bars("AAA")["close"].tolist() == [c * 0.5 for c in CLOSES]


def test_offline_with_a_cached_copy_warns_and_uses_it(tmp_path):
    fake = FakeYahoo({"AAA": _yahoo_frame(DATES[:5], CLOSES[:5])})
    provider = CachedProvider(fake, PriceCache(tmp_path / "p.zarr"))
    provider.load_bars("AAA")
    fake.online = False
    with pytest.warns(UserWarning, match="Using the cached bars of AAA"):
        provider.refresh(["AAA"])
    assert provider.load_bars("AAA")["close"].tolist() == CLOSES[:5]  # fresh: no new request
    with pytest.raises(DataUnavailableError, match="demo or folder"):
        provider.load_bars("BBB")  # nothing cached: the failure is the answer


def test_stale_copies_are_checked_and_fresh_ones_are_not(tmp_path):
    fake = FakeYahoo({"AAA": _yahoo_frame(DATES[:5], CLOSES[:5])})
    provider = CachedProvider(fake, PriceCache(tmp_path / "p.zarr"))
    provider.load_bars("AAA")
    count = len(fake.requests)
    provider.load_bars("AAA")
    assert len(fake.requests) == count
    provider.max_age = pd.Timedelta(0).to_pytimedelta()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        provider.load_bars("AAA")
    assert len(fake.requests) == count + 1


def test_unknown_ticker_and_any_cached_ticker_is_listed(tmp_path):
    fake = FakeYahoo({"ZZZ": _yahoo_frame(DATES[:3], CLOSES[:3])})
    provider = CachedProvider(fake, PriceCache(tmp_path / "p.zarr"))
    with pytest.raises(UnknownSymbolError, match="no daily bars for 'NOPE'"):
        provider.load_bars("NOPE")
    assert provider.cache.symbols("yahoo") == []
    provider.load_bars("ZZZ")
    assert provider.symbols() == ["AAA", "ZZZ"]

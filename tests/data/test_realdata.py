"""The committed real-format folder (tests/fixtures/realdata): every layout loads, the bad file
is reported and skipped while every other symbol works (scan, sweep); staleness by calendar."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.data.cached import CachedProvider
from core.data.folder import FolderProvider
from core.data.prices import PriceCache
from core.errors import DataValidationError, ValidationError
from core.scanner import SIGNAL_COLUMNS, is_stale, scan, trades_every_day
from core.sweep import run_sweep

REALDATA = Path(__file__).resolve().parents[1] / "fixtures" / "realdata"
GOOD = ["BTCUSD", "EURUSD", "GOOG", "SAP.DE"]
FAST = {"period": 2, "oversold": 45, "overbought": 55}  # fires on every file within 20 bars


@pytest.fixture
def realdata(tmp_path) -> CachedProvider:
    return CachedProvider(FolderProvider(REALDATA), PriceCache(tmp_path / "prices.zarr"))


def test_every_layout_loads(realdata):
    assert realdata.symbols() == ["BROKEN", *GOOD]
    goog = realdata.load_bars("GOOG")  # unnamed date index column, daily
    assert (goog.index[0], goog.index[-1], len(goog)) == (
        pd.Timestamp("2004-08-19"), pd.Timestamp("2013-12-31"), 2444)
    fx = realdata.load_bars("EURUSD")  # hourly, 24/5, 5 decimals
    assert fx.index[1] - fx.index[0] == pd.Timedelta(hours=1)
    assert (fx.index.day_of_week < 5).all()
    raw = pd.read_csv(REALDATA / "EURUSD.csv")
    np.testing.assert_array_equal(fx["close"].to_numpy(), raw["Close"].to_numpy())
    assert fx["close"].iloc[0] == 1.06611
    btc = realdata.load_bars("BTCUSD")  # monthly
    assert len(btc) == 132 and (btc.index.day == 1).all()
    sap = realdata.load_bars("SAP.DE")  # day-first: 02/01/2020 is 2 January
    assert sap.index[0] == pd.Timestamp("2020-01-02")
    assert sap.index.is_monotonic_increasing and sap.index[-1] == pd.Timestamp("2021-06-30")


def test_the_malformed_file_is_named(realdata):
    with pytest.raises(DataValidationError, match="BROKEN.csv"):
        realdata.load_bars("BROKEN")


def test_load_available_skips_only_the_bad_file(realdata):
    bars, skipped = realdata.load_available(realdata.symbols())
    assert sorted(bars) == GOOD
    assert list(skipped) == ["BROKEN"] and "BROKEN.csv" in skipped["BROKEN"]
    bars, skipped = realdata.load_available(["GOOG", "NOPE"], start="2010-01-01")
    assert list(bars) == ["GOOG"] and "Unknown symbol 'NOPE'" in skipped["NOPE"]


def test_scan_reports_the_bad_file_and_scans_the_rest(realdata):
    result = scan(realdata, "rsi_meanrev", FAST, lookback=20, now="2026-12-07")
    assert list(result.columns) == list(SIGNAL_COLUMNS)
    [skipped] = result.attrs["skipped"]
    assert skipped["symbol"] == "BROKEN" and "BROKEN.csv" in skipped["error"]
    assert set(result["symbol"]) == set(GOOD)
    assert (result["bars_since_signal"] == result["bars_ago"]).all()
    assert result["bars_since_signal"].dtype == np.int64
    assert (result["last_bar"] == result["last_date"]).all()
    assert result["data_stale"].dtype == bool and result["data_stale"].all()  # files end by 2024


def test_intraday_signals_keep_their_time(realdata):
    result = scan(realdata, "rsi_meanrev", FAST, lookback=20, symbols=["EURUSD"])
    stamp = result["signal_date"].iloc[0]
    assert stamp == pd.Timestamp("2023-04-28 22:00")
    bars = realdata.load_bars("EURUSD")
    assert stamp in bars.index and stamp == bars.index[-1 - int(result["bars_ago"].iloc[0])]
    assert result["last_bar"].iloc[0] == pd.Timestamp("2023-04-28 23:00")


def test_a_scan_where_nothing_loads_says_why(realdata):
    with pytest.raises(ValidationError, match="No symbol could be scanned: BROKEN"):
        scan(realdata, "rsi_meanrev", symbols=["BROKEN"])


def test_sweep_skips_the_bad_file_when_asked(realdata):
    report = run_sweep("rsi_meanrev", {"period": [10, 14]}, realdata.symbols(), None, None,
                       realdata, skip_bad_data=True)
    assert report.symbols == GOOD and report.n_symbols == 4
    assert report.n_cells == report.n_computed == 8
    assert [s["symbol"] for s in report.summary()["skipped"]] == ["BROKEN"]
    with pytest.raises(DataValidationError, match="BROKEN.csv"):  # named symbols: no skipping
        run_sweep("rsi_meanrev", {"period": [10]}, ["GOOG", "BROKEN"], None, None, realdata)


@pytest.mark.parametrize("now,stale", [
    ("2026-12-05", False), ("2026-12-07 09:00", False), ("2026-12-09", False),
    ("2026-12-10", True),  # Monday, Tuesday and Wednesday missed: more than 1 + 2 sessions
])
def test_weekday_data_ending_on_a_friday(now, stale):
    index = pd.bdate_range(end="2026-12-04", periods=300)
    assert not trades_every_day(index)
    assert is_stale(index, now) is stale


@pytest.mark.parametrize("now,stale", [("2026-12-08", False), ("2026-12-10", True)])
def test_every_day_data_counts_weekends(now, stale):
    index = pd.date_range(end="2026-12-06", periods=400)  # ends on a Sunday
    assert trades_every_day(index)
    assert is_stale(index, now) is stale


@pytest.mark.parametrize("now,stale", [("2025-01-01", False), ("2025-01-05", True)])
def test_monthly_data_allows_one_bar_interval(now, stale):
    assert is_stale(pd.date_range("2014-01-01", "2024-12-01", freq="MS"), now) is stale


def test_hourly_data_is_judged_by_its_last_day():
    index = pd.date_range("2026-11-02", "2026-12-04 23:00", freq="h")
    index = index[index.day_of_week < 5]
    assert not is_stale(index, "2026-12-07 10:00") and is_stale(index, "2026-12-10")

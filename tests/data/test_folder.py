"""Folder provider on real CSV/Parquet files: loose column matching, adjusted prices, bad files."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.canonical import bars_fingerprint
from core.data.folder import FolderProvider, read_ohlcv_csv
from core.errors import DataUnavailableError, DataValidationError, UnknownSymbolError

ROWS = """2024-01-02,10.0,11.0,9.5,10.5,1000
2024-01-03,10.5,12.0,10.0,11.5,2000
2024-01-04,11.5,11.8,10.9,11.0,1500
"""
EXPECTED_CLOSE = [10.5, 11.5, 11.0]


@pytest.mark.parametrize(
    "header",
    [
        "Date,Open,High,Low,Close,Volume",
        "date,open,high,low,close,volume",
        "timestamp,OPEN,HIGH,LOW,CLOSE,VOL",
        " Datetime , Open , High , Low , Close , Volume ",
        "index,open,high,low,close,volume",
        "Unnamed: 0,Open,High,Low,Close,Volume",
        "TIME,Open,High,Low,Close,volume",
    ],
)
def test_csv_header_variants(folder, header):
    (folder / "AAPL.csv").write_text(header + "\n" + ROWS)
    bars = FolderProvider(folder).load_bars("AAPL")
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert bars["close"].tolist() == EXPECTED_CLOSE
    assert bars["volume"].tolist() == [1000.0, 2000.0, 1500.0]
    assert list(bars.index) == list(pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]))


def test_volume_is_optional(folder):
    rows = "\n".join(",".join(line.split(",")[:5]) for line in ROWS.strip().splitlines())
    (folder / "NOVOL.csv").write_text("Date,Open,High,Low,Close\n" + rows + "\n")
    assert FolderProvider(folder).load_bars("NOVOL")["volume"].tolist() == [0.0, 0.0, 0.0]


@pytest.mark.parametrize("adj_name", ["Adj Close", "adj_close", "AdjClose", "Adjusted Close"])
def test_adjusted_close_scales_every_price(folder, adj_name):
    (folder / "DIV.csv").write_text(
        f"Date,Open,High,Low,Close,{adj_name},Volume\n"
        "2024-01-02,10.0,11.0,9.0,10.0,5.0,100\n"
        "2024-01-03,20.0,22.0,19.0,21.0,21.0,200\n"
    )
    bars = FolderProvider(folder).load_bars("DIV")
    # factor adj/close: 0.5 on day one, 1.0 on day two; volume untouched
    assert bars.iloc[0].tolist() == [5.0, 5.5, 4.5, 5.0, 100.0]
    assert bars.iloc[1].tolist() == [20.0, 22.0, 19.0, 21.0, 200.0]


def test_timestamps_with_utc_offsets_keep_local_dates(folder):
    (folder / "TZ.csv").write_text(
        "Datetime,Open,High,Low,Close,Volume\n"
        "2024-03-08 00:00:00-05:00,10,11,9,10,1\n"
        "2024-03-11 00:00:00-04:00,10,11,9,10.5,1\n"
    )
    bars = FolderProvider(folder).load_bars("TZ")
    assert list(bars.index) == [pd.Timestamp("2024-03-08"), pd.Timestamp("2024-03-11")]


def test_yfinance_three_line_header(folder):
    (folder / "YF.csv").write_text(
        "Price,Close,High,Low,Open,Volume\n"
        "Ticker,YF,YF,YF,YF,YF\n"
        "Date,,,,,\n"
        "2024-01-02,10.5,11.0,9.5,10.0,1000\n"
        "2024-01-03,11.5,12.0,10.0,10.5,2000\n"
    )
    bars = FolderProvider(folder).load_bars("YF")
    assert bars["close"].tolist() == [10.5, 11.5]
    assert bars["open"].tolist() == [10.0, 10.5]


def test_parquet_with_a_date_index_and_with_a_date_column(folder, make_bars):
    frame = make_bars(5).rename(columns=str.title)
    frame.to_parquet(folder / "PQI.parquet")
    frame.reset_index().rename(columns={"date": "Date"}).to_parquet(folder / "PQC.parquet")
    provider = FolderProvider(folder)
    for symbol in ("PQI", "PQC"):
        bars = provider.load_bars(symbol)
        assert bars["close"].tolist() == make_bars(5)["close"].tolist()
        assert bars.attrs["fingerprint"] == bars_fingerprint(make_bars(5))


def test_parquet_wins_over_csv_and_odd_names_are_skipped(folder, make_bars):
    make_bars(3, first_close=50.0).to_parquet(folder / "BOTH.parquet")
    make_bars(3).to_csv(folder / "BOTH.csv")
    (folder / "not a symbol.csv").write_text("x")
    (folder / "notes.txt").write_text("x")
    provider = FolderProvider(folder)
    assert provider.symbols() == ["BOTH"]
    assert provider.load_bars("BOTH")["close"].iloc[0] == 50.0


def test_a_one_bar_series_loads(folder):
    (folder / "ONE.csv").write_text("Date,Open,High,Low,Close\n2024-01-02,10,11,9,10.5\n")
    bars = FolderProvider(folder).load_bars("ONE")
    assert len(bars) == 1 and bars["close"].iloc[0] == 10.5


def test_read_ohlcv_csv_reads_any_file(tmp_path):
    path = tmp_path / "some export (1).csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n" + ROWS)
    bars = read_ohlcv_csv(path, symbol="EXPORT")
    assert bars["close"].tolist() == EXPECTED_CLOSE
    assert bars.attrs["symbol"] == "EXPORT"
    assert bars.attrs["fingerprint"] == bars_fingerprint(bars)


def test_unsorted_file_is_sorted_with_a_warning(folder):
    lines = ROWS.strip().splitlines()
    (folder / "UNS.csv").write_text("Date,Open,High,Low,Close,Volume\n"
                                    + "\n".join(reversed(lines)) + "\n")
    with pytest.warns(UserWarning, match="UNS.*sorted"):
        bars = FolderProvider(folder).load_bars("UNS")
    assert bars["close"].tolist() == EXPECTED_CLOSE


def test_missing_folder_says_how_to_fix_it(tmp_path):
    with pytest.raises(DataUnavailableError, match="does not exist.*demo"):
        FolderProvider(tmp_path / "nowhere").symbols()


def test_unknown_file_symbol_suggests_a_close_one(folder):
    (folder / "MSFT.csv").write_text("Date,Open,High,Low,Close\n2024-01-02,10,11,9,10.5\n")
    with pytest.raises(UnknownSymbolError, match="'MSFTT'.*Did you mean 'MSFT'"):
        FolderProvider(folder).load_bars("MSFTT")
    with pytest.raises(UnknownSymbolError, match="Did you mean 'MSFT'"):
        FolderProvider(folder).load_bars("msft")


def test_path_characters_never_reach_the_file_system(folder, tmp_path):
    (tmp_path / "secret.csv").write_text("Date,Open,High,Low,Close\n2024-01-02,10,11,9,10.5\n")
    for name in ("../secret", "a/b", "..", "/etc/passwd"):
        with pytest.raises(DataValidationError, match="not allowed"):
            FolderProvider(folder).load_bars(name)


# ------------------------------------------------------- bad files through the cached provider

HEADER = "Date,Open,High,Low,Close,Volume\n"
BAD_FILES = {
    "NAN": (HEADER + "2024-01-02,10,11,9,10.5,1\n2024-01-03,10,11,9,,1\n", "NaN", "2024-01-03"),
    "NEG": (HEADER + "2024-01-02,10,11,9,10.5,1\n2024-01-03,-1,11,-2,10,1\n", "non-positive",
            "2024-01-03"),
    "ZERO": (HEADER + "2024-01-02,0,0,0,0,1\n", "non-positive", "2024-01-02"),
    "HILO": (HEADER + "2024-01-02,10,11,9,10.5,1\n2024-01-03,10,9,11,10,1\n", "high below low",
             "2024-01-03"),
    "DUPS": (HEADER + "2024-01-02,10,11,9,10.5,1\n2024-01-02,10,11,9,10.5,1\n", "duplicate",
             "2024-01-02"),
    "TEXT": (HEADER + "2024-01-02,10,11,9,10.5,1\n2024-01-03,10,11,9,n/a?,1\n", "non-numeric",
             "2024-01-03"),
    "DATE": (HEADER + "2024-01-02,10,11,9,10.5,1\nyesterday,10,11,9,10,1\n", "not dates",
             "yesterday"),
    "EMPTY": ("", "empty", "EMPTY.csv"),
    "HEAD": (HEADER, "no bars", "HEAD.csv"),
    "COLS": ("Day,Price,Size\n2024-01-02,10,1\n", "missing", "Price, Size"),
}


@pytest.mark.parametrize("symbol", sorted(BAD_FILES))
def test_bad_files_are_named_and_nothing_is_cached(folder, folder_provider, symbol):
    text, what, where = BAD_FILES[symbol]
    (folder / f"{symbol}.csv").write_text(text)
    with pytest.raises(DataValidationError) as info:
        folder_provider.load_bars(symbol)
    message = str(info.value)
    assert message.startswith(f"{symbol}:")
    assert what in message and where in message
    assert folder_provider.cache.symbols(folder_provider.cache_key) == []
    assert not (folder_provider.cache.path / "manifest.json").exists()


def test_wrong_columns_list_what_is_needed(folder, folder_provider):
    (folder / "COLS.csv").write_text("When,Price,Size\n2024-01-02,10,1\n")
    message = str(pytest.raises(DataValidationError, folder_provider.load_bars, "COLS").value)
    assert "a date column" in message and "open, high, low, close" in message
    assert "Needed: Date, Open, High, Low, Close" in message


# ------------------------------------------------------------ file changes and the cache

def _write(folder, symbol, frame):
    frame.rename(columns=str.title).rename_axis("Date").to_csv(folder / f"{symbol}.csv")


def test_extended_file_appends_only_new_bars(folder, folder_provider, make_bars):
    full = make_bars(12)
    _write(folder, "GROW", full.iloc[:8])
    first = folder_provider.load_bars("GROW")
    _write(folder, "GROW", full)
    second = folder_provider.load_bars("GROW")
    cache, key = folder_provider.cache, folder_provider.cache_key
    entry = cache.manifest()["sources"][key]["symbols"]["GROW"]
    assert [p[2] - p[1] for p in entry["pieces"]] == [8, 4]
    assert entry["rows"] == 12
    pd.testing.assert_frame_equal(second, full, check_freq=False)
    assert first.attrs["fingerprint"] != second.attrs["fingerprint"]
    assert second.attrs["fingerprint"] == bars_fingerprint(full)


def test_rewritten_history_replaces_the_cached_copy(folder, folder_provider, make_bars):
    original = make_bars(6)
    _write(folder, "EDIT", original)
    before = folder_provider.load_bars("EDIT")
    edited = original.copy()
    edited.loc[edited.index[2], ["close", "high"]] = [103.0, 104.0]
    _write(folder, "EDIT", edited)
    after = folder_provider.load_bars("EDIT")
    entry = folder_provider.cache.manifest()["sources"][folder_provider.cache_key][
        "symbols"]["EDIT"]
    assert len(entry["pieces"]) == 1 and entry["rows"] == 6
    assert after["close"].iloc[2] == 103.0
    assert before.attrs["fingerprint"] != after.attrs["fingerprint"]


def test_an_unchanged_file_is_not_read_again(folder, folder_provider, make_bars, monkeypatch):
    _write(folder, "SAME", make_bars(5))
    folder_provider.load_bars("SAME")
    import core.data.folder as folder_module

    def fail(*args, **kwargs):
        raise AssertionError("the file was read although it did not change")

    monkeypatch.setattr(folder_module, "read_bars_file", fail)
    assert len(folder_provider.load_bars("SAME")) == 5


def test_fingerprint_is_of_the_requested_range(folder, folder_provider, make_bars):
    _write(folder, "RNG", make_bars(10))
    part = folder_provider.load_bars("RNG", "2024-01-03", "2024-01-05")
    assert len(part) == 3
    assert part.attrs["fingerprint"] == bars_fingerprint(make_bars(10).iloc[2:5])
    np.testing.assert_array_equal(part["close"], [102.0, 103.0, 104.0])


def test_refresh_skips_bad_and_unknown_symbols_and_updates_the_rest(folder, folder_provider,
                                                                    make_bars):
    _write(folder, "GOOD", make_bars(4))
    _write(folder, "SOUR", make_bars(4))
    folder_provider.load_many(["GOOD", "SOUR"])
    _write(folder, "GOOD", make_bars(6))
    (folder / "SOUR.csv").write_text("Date,Open,High,Low,Close\n2024-01-02,10,11,9,-1\n")
    with pytest.warns(UserWarning) as caught:
        counts = folder_provider.refresh(["GOOD", "SOUR", "GONE", "../x"])
    assert counts == {"GOOD": 2}
    messages = " ".join(str(w.message) for w in caught)
    assert "SOUR: 1 bar(s) with" in messages and "'GONE'" in messages and "'../x'" in messages
    assert folder_provider.cache.info(folder_provider.cache_key, "SOUR")["rows"] == 4


def test_unknown_and_unsafe_symbols_cache_nothing(folder, folder_provider, make_bars):
    _write(folder, "REAL", make_bars(3))
    with pytest.raises(UnknownSymbolError, match="'REEL'.*Did you mean 'REAL'"):
        folder_provider.load_bars("REEL")
    with pytest.raises(DataValidationError, match="'../REAL'.*not allowed"):
        folder_provider.load_many(["REAL", "../REAL"])
    assert not (folder_provider.cache.path / "manifest.json").exists()


"""Day-first or month-first is decided once per file (or by date_format), never per row."""
from __future__ import annotations

import pandas as pd
import pytest

from core.config import load_settings
from core.data.cached import get_provider
from core.data.dates import parse_dates
from core.data.folder import FolderProvider, read_ohlcv_csv
from core.errors import DataValidationError, ValidationError

from tests.data.conftest import make_bars


def _csv(path, dates, bars=None):
    bars = make_bars(len(dates)) if bars is None else bars
    frame = bars.reset_index(drop=True)
    frame.insert(0, "Date", dates)
    frame.to_csv(path, index=False)
    return path


def _parse(values, date_format="auto"):
    return parse_dates(pd.Series(values), date_format, "X: x.csv").tolist()


def test_day_first_file_is_read_day_first_throughout(tmp_path):
    days = pd.bdate_range("2020-01-02", periods=30)  # 02/01/2020 .. 12/02/2020
    path = _csv(tmp_path / "EU.csv", days.strftime("%d/%m/%Y"))
    bars = read_ohlcv_csv(path)
    assert list(bars.index) == list(days)  # 02/01/2020 is 2 January, not 1 February


def test_month_first_file_is_read_month_first_throughout(tmp_path):
    days = pd.bdate_range("2020-01-02", periods=30)
    path = _csv(tmp_path / "US.csv", days.strftime("%m/%d/%Y"))
    assert list(read_ohlcv_csv(path).index) == list(days)


@pytest.mark.parametrize("values,expected", [
    (["02.01.2020", "13.01.2020"], ["2020-01-02", "2020-01-13"]),
    (["02-01-99", "31-12-05"], ["1999-01-02", "2005-12-31"]),
    (["01/13/2020 09:30", "01/02/2020 16:00:00"], ["2020-01-13 09:30", "2020-01-02 16:00"]),
    (["2020-01-02", "13/01/2020"], ["2020-01-02", "2020-01-13"]),
    (["Jan 2, 2020", "2020-01-03"], ["2020-01-02", "2020-01-03"]),
])
def test_separators_two_digit_years_and_times(values, expected):
    assert _parse(values) == [pd.Timestamp(v) for v in expected]


def test_an_ambiguous_file_is_refused_naming_the_setting(tmp_path):
    path = _csv(tmp_path / "AMB.csv", ["02/01/2020", "03/01/2020", "06/01/2020"])
    with pytest.raises(DataValidationError, match="date_format") as info:
        read_ohlcv_csv(path)
    assert "AMB.csv" in str(info.value) and "HINDSIGHT_DATE_FORMAT" in str(info.value)


def test_a_file_mixing_both_orders_is_refused():
    with pytest.raises(DataValidationError, match="both day-first and month-first"):
        _parse(["13/01/2020", "01/14/2020"])


@pytest.mark.parametrize("date_format,first", [
    ("dayfirst", "2020-01-02"), ("monthfirst", "2020-02-01"), ("%d/%m/%Y", "2020-01-02"),
])
def test_the_setting_decides_an_ambiguous_file(tmp_path, date_format, first):
    path = _csv(tmp_path / "AMB.csv", ["02/01/2020", "03/01/2020", "06/01/2020"])
    bars = read_ohlcv_csv(path, date_format=date_format)
    assert bars.index[0] == pd.Timestamp(first)


def test_a_setting_that_contradicts_the_file_names_the_rows(tmp_path):
    path = _csv(tmp_path / "EU.csv", ["12/01/2020", "13/01/2020"])
    with pytest.raises(DataValidationError, match=r"'13/01/2020'.*monthfirst"):
        read_ohlcv_csv(path, date_format="monthfirst")


def test_date_format_setting_from_file_and_environment(tmp_path, monkeypatch):
    assert load_settings(tmp_path / "none.toml").date_format == "auto"
    config = tmp_path / "config.toml"
    config.write_text('date_format = "dayfirst"\n')
    assert load_settings(config).date_format == "dayfirst"
    monkeypatch.setenv("HINDSIGHT_DATE_FORMAT", "%d.%m.%Y")
    assert load_settings(config).date_format == "%d.%m.%Y"
    monkeypatch.setenv("HINDSIGHT_DATE_FORMAT", "european")
    with pytest.raises(ValidationError, match="date_format 'european'"):
        load_settings(config)


def test_the_folder_source_applies_the_setting_and_rereads_when_it_changes(tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    _csv(folder / "AMB.csv", ["02/01/2020", "03/01/2020", "06/01/2020"])
    common = {"data_source": "folder", "data_folder": str(folder),
              "price_cache": str(tmp_path / "prices.zarr")}
    day = get_provider(load_settings(tmp_path / "none.toml", date_format="dayfirst", **common))
    assert day.load_bars("AMB").index[0] == pd.Timestamp("2020-01-02")
    month = get_provider(load_settings(tmp_path / "none.toml", date_format="monthfirst", **common))
    assert month.load_bars("AMB").index[0] == pd.Timestamp("2020-02-01")  # not the cached copy
    with pytest.raises(DataValidationError, match="date_format"):
        get_provider(load_settings(tmp_path / "none.toml", **common)).load_bars("AMB")
    assert FolderProvider(folder).date_format == "auto"

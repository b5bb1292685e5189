"""validate_bars: clean input passes untouched, each kind of bad input is named precisely."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.canonical import bars_fingerprint
from core.data.validate import BAR_COLUMNS, validate_bars
from core.errors import DataValidationError


def test_clean_frame_is_returned_as_is(bars):
    bars.attrs.update(symbol="AAA", fingerprint=bars_fingerprint(bars))
    assert validate_bars(bars, "AAA") is bars


def test_missing_volume_becomes_zero_and_case_is_ignored(bars):
    raw = bars.drop(columns="volume").rename(columns=str.title).astype({"Open": "float32"})
    out = validate_bars(raw, "AAA")
    assert list(out.columns) == list(BAR_COLUMNS)
    assert (out.dtypes == np.float64).all()
    assert (out["volume"] == 0.0).all()
    np.testing.assert_array_equal(out["close"], bars["close"])


def test_integer_columns_are_coerced_to_float64():
    raw = pd.DataFrame({"open": [10, 11], "high": [12, 12], "low": [9, 10], "close": [11, 12],
                        "volume": [5, 6]}, index=pd.to_datetime(["2024-01-02", "2024-01-03"]))
    out = validate_bars(raw, "INT")
    assert (out.dtypes == np.float64).all()
    assert out["close"].tolist() == [11.0, 12.0]


def test_unsorted_index_is_sorted_with_a_warning_and_attrs_kept(bars):
    shuffled = bars.iloc[[3, 0, 2, 1, 4, 5, 6, 7, 8, 9]].copy()
    shuffled.attrs.update(symbol="AAA", fingerprint="stale")
    with pytest.warns(UserWarning, match="AAA.*not in date order"):
        out = validate_bars(shuffled, "AAA")
    assert out.index.is_monotonic_increasing
    pd.testing.assert_frame_equal(out, bars, check_names=False, check_freq=False)
    assert out.attrs["symbol"] == "AAA"
    assert out.attrs["fingerprint"] == bars_fingerprint(bars)  # recomputed for the new order


def test_tz_aware_index_keeps_local_dates(bars):
    aware = bars.tz_localize("America/New_York")
    out = validate_bars(aware, "AAA")
    assert out.index.tz is None
    assert list(out.index) == list(bars.index)


@pytest.mark.parametrize(
    ("column", "row", "value", "what"),
    [
        ("close", 3, np.nan, "NaN"),
        ("open", 4, np.inf, "infinite"),
        ("low", 3, 0.0, "non-positive"),
        ("low", 3, -5.0, "non-positive"),
        ("high", 3, 90.0, "high below low"),
        ("open", 3, 200.0, "outside"),
        ("close", 3, 50.0, "outside"),
        ("volume", 3, -1.0, "volume"),
    ],
)
def test_bad_values_name_symbol_and_first_bad_date(bars, column, row, value, what):
    bars.iloc[row, bars.columns.get_loc(column)] = value
    with pytest.raises(DataValidationError) as info:
        validate_bars(bars, "BAD")
    message = str(info.value)
    assert message.startswith("BAD:")
    assert what in message
    assert bars.index[row].strftime("%Y-%m-%d") in message
    assert "1 bar(s)" in message


def test_many_bad_rows_are_counted_and_the_first_five_listed(make_bars):
    frame = make_bars(20)
    frame.loc[frame.index[2:10], "close"] = np.nan
    message = str(pytest.raises(DataValidationError, validate_bars, frame, "MANY").value)
    assert "8 bar(s)" in message
    assert "2024-01-03" in message and "(+3 more)" in message


def test_duplicate_timestamps_are_rejected_with_their_dates(bars):
    doubled = pd.concat([bars, bars.iloc[[4]]])
    message = str(pytest.raises(DataValidationError, validate_bars, doubled, "DUP").value)
    assert "DUP" in message and "duplicate" in message
    assert bars.index[4].strftime("%Y-%m-%d") in message


def test_empty_frame_is_rejected(bars):
    empty = bars.iloc[:0]
    with pytest.raises(DataValidationError, match="EMPTY: no bars"):
        validate_bars(empty, "EMPTY")


def test_wrong_columns_say_what_was_found_and_what_is_needed():
    frame = pd.DataFrame({"Price": [1.0], "Size": [2.0]},
                         index=pd.to_datetime(["2024-01-02"]))
    message = str(pytest.raises(DataValidationError, validate_bars, frame, "COLS").value)
    assert "COLS" in message and "found Price, Size" in message
    assert "missing open, high, low, close" in message


def test_non_date_index_is_rejected(bars):
    frame = bars.reset_index(drop=True)
    frame.index = ["a"] * len(frame)
    with pytest.raises(DataValidationError, match="IDX: the index must hold dates"):
        validate_bars(frame, "IDX")


def test_not_a_dataframe():
    with pytest.raises(DataValidationError, match="X: bars must be a pandas DataFrame"):
        validate_bars([1, 2, 3], "X")


def test_one_bar_is_valid(make_bars):
    one = make_bars(1)
    assert validate_bars(one, "ONE") is one


def test_importing_validate_does_not_pull_zarr():
    import subprocess
    import sys

    code = ("import sys; from core.data.validate import validate_bars; import core.data; "
            "print('zarr' in sys.modules, 'yfinance' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    assert out.stdout.split() == ["False", "False"]


# ----------------------------------------------- property test against a row-by-row reference

_RULES = (  # (phrase in the message, row check) in the order validate_bars applies them
    ("NaN or infinite", lambda o, h, lo, c, v: not all(math.isfinite(x) for x in (o, h, lo, c))),
    ("non-positive", lambda o, h, lo, c, v: min(o, h, lo, c) <= 0),
    ("high below low", lambda o, h, lo, c, v: h < lo),
    ("outside [low, high]", lambda o, h, lo, c, v: not (lo <= o <= h and lo <= c <= h)),
    ("volume", lambda o, h, lo, c, v: not math.isfinite(v) or v < 0),
)


def _reference(rows):
    """What validate_bars must say, worked out one row at a time in plain Python."""
    dates = [row[0] for row in rows]
    if len(set(dates)) != len(dates):
        first = next(d for d in dates if dates.count(d) > 1)
        return ("duplicate", first)
    rows = sorted(rows, key=lambda row: row[0])
    rows = [(d, o, h, lo, c, 0.0 if math.isnan(v) else v) for d, o, h, lo, c, v in rows]
    for phrase, broken in _RULES:
        bad = [row[0] for row in rows if broken(*row[1:])]
        if bad:
            return (phrase, bad[0])
    return ("ok", rows)


_VALUES = st.sampled_from([1.0, 2.0, 3.0, 5.0, 8.0, 0.0, -1.0, math.nan, math.inf])


@st.composite
def _rows(draw):
    days = pd.bdate_range("2024-01-01", periods=12)
    n = draw(st.integers(1, 8))
    picked = draw(st.lists(st.integers(0, 11), min_size=n, max_size=n))
    rows = []
    for day in picked:
        if draw(st.booleans()):  # a consistent bar
            lo = draw(st.floats(1.0, 50.0))
            h = lo + draw(st.floats(0.0, 5.0))
            o, c = (draw(st.floats(lo, h)) for _ in range(2))
            v = draw(st.sampled_from([0.0, 10.0, math.nan]))
        else:
            o, h, lo, c, v = (draw(_VALUES) for _ in range(5))
        rows.append((days[day], o, h, lo, c, v))
    return rows


@given(rows=_rows())
def test_validate_bars_agrees_with_a_row_by_row_reference(rows):
    frame = pd.DataFrame([r[1:] for r in rows], columns=list(BAR_COLUMNS),
                         index=pd.DatetimeIndex([r[0] for r in rows]))
    verdict, detail = _reference(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if verdict != "ok":
            with pytest.raises(DataValidationError) as info:
                validate_bars(frame, "PROP")
            message = str(info.value)
            assert message.startswith("PROP:") and verdict in message
            assert detail.strftime("%Y-%m-%d") in message
            return
        out = validate_bars(frame, "PROP")
    assert list(out.index) == [row[0] for row in detail]
    np.testing.assert_array_equal(out.to_numpy(), np.array([row[1:] for row in detail]))


def test_other_time_units_become_nanoseconds_so_fingerprints_agree(bars):
    coarse = bars.copy()
    coarse.index = coarse.index.as_unit("s")
    out = validate_bars(coarse, "UNIT")
    assert out.index.unit == "ns"
    assert bars_fingerprint(out) == bars_fingerprint(bars)


def test_pandas_default_microseconds_take_the_cheap_conversion(bars):
    micro = bars.copy()
    micro.index = micro.index.as_unit("us")
    micro.attrs["fingerprint"] = bars_fingerprint(micro)
    out = validate_bars(micro, "US")
    assert out.index.unit == "ns" and micro.index.unit == "us"  # the input is not modified
    assert out.attrs["fingerprint"] == bars_fingerprint(bars)

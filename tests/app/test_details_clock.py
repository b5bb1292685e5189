"""Backtest Details says how its ratios were annualised, and an intraday backtest's period keeps
its time of day (real-format fixture data through AppTest)."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from core.frequency import annualisation_text
from tests.app.conftest import open_test_store
from tests.app.test_details_page import details_page, realdata, texts  # noqa: F401 (fixture)
from views import _details_ui as view


@pytest.mark.parametrize("stored, text", [
    ({"periods_per_year": 52.0, "bar_seconds": 7 * 86400.0}, "weekly bars, annualised ×52"),
    ({"periods_per_year": 6240.0, "bar_seconds": 3600.0}, "hourly bars, annualised ×6,240"),
    ({"periods_per_year": math.nan, "bar_seconds": math.nan},
     "daily bars assumed, annualised ×252"),
    ({}, "daily bars assumed, annualised ×252"),  # stored before results kept their clock
])
def test_annualisation_caption(stored, text):
    assert view.annualisation_caption({"backtest_id": "1", **stored}) == text


def test_details_shows_the_annualisation_under_the_metric_cards(realdata, env):
    bid, result, _ = realdata("BTCUSD", {"period": 3})  # monthly bars, 2014 .. 2024
    assert annualisation_text(result.bar_seconds, result.periods_per_year) == \
        "monthly bars, annualised ×12"
    stored = open_test_store(env).get_detailed_results(bid)
    at = details_page(bid)
    # what the store kept for this row, worded: the detected clock once the store records it
    expected = annualisation_text(stored.get("bar_seconds"), stored.get("periods_per_year"))
    assert expected in [c.value for c in at.caption]


def test_an_intraday_period_keeps_its_time_of_day():
    details = {"backtest_id": "7", "params": {"period": 14}, "exit_rule": [{"type": "signal"}],
               "start": pd.Timestamp("2023-01-02 00:00"), "end": pd.Timestamp("2023-04-28 23:00"),
               "costs": {}}
    assert "2023-01-02 00:00 → 2023-04-28 23:00" in view.details_caption(details)
    daily = {**details, "start": pd.Timestamp("2004-08-19"), "end": pd.Timestamp("2013-12-31")}
    assert "2004-08-19 → 2013-12-31 ·" in view.details_caption(daily)


def test_the_hourly_page_shows_its_period_with_hours(realdata):
    bid, result, bars = realdata("EURUSD", {"period": 14})
    at = details_page(bid)
    assert f"{bars.index[0]:%Y-%m-%d %H:%M} → {bars.index[-1]:%Y-%m-%d %H:%M}" in \
        texts(at.caption)

"""The Manager's Walk-forward mode in a real browser (Debian chromium through Playwright): run
an anchored walk-forward on ten years of daily GOOG bars from the real-format fixture folder,
then see it listed, its efficiency card, its equity chart and its windows table, with no
request leaving 127.0.0.1 and the windows stored in the one store."""
from __future__ import annotations

import pytest

from tests.e2e.test_browser import (charts_drawn, no_exception, outside_requests, settled,
                                    shoot)

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def fill_number(page, label: str, value: int) -> None:
    box = page.get_by_role("spinbutton", name=label, exact=True).first
    box.fill(str(value))
    box.press("Enter")
    settled(page)


def test_walk_forward_mode_runs_and_shows_one(app_url, page, requests_seen, store_path,
                                              tmp_path):
    page.goto(f"{app_url}/manager")
    settled(page)
    page.get_by_text("Walk-forward", exact=True).click()
    page.get_by_role("button", name="Run walk-forward").wait_for()
    settled(page)
    symbol = page.get_by_label("Symbol", exact=True)
    symbol.fill("GOOG")
    symbol.press("Enter")
    settled(page)
    for label, value in (("period from", 10), ("to", 14), ("step", 4), ("In-sample bars", 500),
                         ("Out-of-sample bars", 250)):
        fill_number(page, label, value)
    page.get_by_text("Anchored: the in-sample window starts at the first bar").click()
    settled(page)
    page.get_by_role("button", name="Run walk-forward").click()
    page.get_by_text("Stored walk-forwards").wait_for()
    page.get_by_text("Anchored windows: 500 bars in sample, 250 out of sample").wait_for()
    page.get_by_test_id("stMetricLabel").get_by_text("Walk-forward efficiency").wait_for()
    assert charts_drawn(page, 1) >= 1
    settled(page)
    no_exception(page)
    assert page.get_by_test_id("stDataFrame").count() == 2  # the stored list, the windows
    shoot(page, "walkforward")

    from core.store import BacktestStore
    from core.walkforward import list_walk_forwards

    listed = list_walk_forwards(BacktestStore(str(store_path)))
    assert listed["symbol"].tolist() == ["GOOG"] and listed["scheme"].tolist() == ["anchored"]
    assert not (tmp_path / "walkforward.zarr").exists()
    outside = outside_requests(requests_seen)
    assert not outside, f"requests left 127.0.0.1: {sorted(set(outside))}"

"""End to end in a real browser: Debian chromium driven by Playwright against ``streamlit run``.

The app runs on the real-format fixture folder (tests/fixtures/realdata: a daily stock file with
an unnamed date column, hourly FX with 5 decimals, monthly crypto, a day-first file and a
malformed one). Flow: run three backtests from the Manager, follow the link to the Details page
(cards, every chart drawn, the trade log), open the Scanner, run a small sweep and see its
heatmap, then delete the last of three rows in Browse and check the other rows are untouched
and nothing is left ticked. Every request the browser makes is recorded: the test fails if one
leaves 127.0.0.1.

Screenshots are taken only when HINDSIGHT_SCREENSHOTS names a folder (``make screenshots``
refreshes docs/screenshots/ that way); a plain test run writes none.
"""
from __future__ import annotations

import os
import re
import urllib.parse
from pathlib import Path

import pytest

from tests.e2e.conftest import LOCAL_HOSTS, WAIT_MS

RUNS = ("GOOG", "EURUSD", "BTCUSD")

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def outside_requests(urls: list[str]) -> list[str]:
    """The URLs whose host is not this machine's loopback address (data: URLs excepted)."""
    return [u for u in urls if urllib.parse.urlsplit(u).scheme not in ("data", "blob", "about")
            and urllib.parse.urlsplit(u).hostname not in LOCAL_HOSTS]


def settled(page) -> None:
    """Wait until Streamlit finished the script run: no status widget, the sidebar footer
    (written last by every page) shown, and no element still stale from the previous run."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => !document.querySelector('[data-testid="stStatusWidget"]')
              && (document.querySelector('[data-testid="stSidebar"]')?.textContent || '')
                   .includes('Backtests stored')""", timeout=WAIT_MS)


def no_exception(page) -> None:
    shown = page.get_by_test_id("stException")
    assert shown.count() == 0, shown.first.inner_text()


def charts_drawn(page, at_least: int) -> int:
    """Wait until ``at_least`` charts have drawn (a canvas or svg each); returns how many."""
    page.wait_for_function(
        """(n) => [...document.querySelectorAll('.vega-embed')]
                    .filter(e => e.querySelector('canvas, svg')).length >= n""",
        arg=at_least, timeout=WAIT_MS)
    return page.locator(".vega-embed").count()


def shoot(page, name: str) -> None:
    """Save a screenshot, only when HINDSIGHT_SCREENSHOTS names the folder."""
    folder = os.environ.get("HINDSIGHT_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def run_backtest(page, symbol: str) -> str:
    """Run the default strategy on ``symbol`` from the Manager; returns the stored id."""
    box = page.get_by_label("Symbol", exact=True)
    box.fill(symbol)
    page.get_by_role("button", name="Run backtest").click()
    stored = page.get_by_text(re.compile(rf"{re.escape(symbol)} .* as backtest"))
    stored.wait_for()
    settled(page)
    no_exception(page)
    return re.search(r"as backtest `?([^`\s]+?)`?[ .]", stored.inner_text()).group(1)


def tick_row(page, grid, row: int) -> None:
    """Tick the selection box of ``row`` (0-based) in a selectable Streamlit table."""
    box = grid.bounding_box()
    header = row_height = 35  # Streamlit's default header and row heights
    grid.hover()
    page.mouse.click(box["x"] + 18, box["y"] + header + row_height * row + row_height / 2)
    settled(page)


def test_every_page_on_real_format_data_offline(app_url, page, requests_seen, store_path):
    page.goto(f"{app_url}/manager")
    page.get_by_role("button", name="Run backtest").wait_for()
    settled(page)
    ids = [run_backtest(page, symbol) for symbol in RUNS]
    assert len(set(ids)) == 3
    shoot(page, "manager")

    page.get_by_role("link", name="Open its details").click()  # BTCUSD, monthly
    page.wait_for_url("**/details?id=*")
    settled(page)
    no_exception(page)
    labels = page.get_by_test_id("stMetricLabel").all_inner_texts()
    for title in ("Win rate", "Trades", "Sharpe", "CAGR", "Max drawdown", "Buy and hold"):
        assert any(title in label for label in labels), labels
    assert charts_drawn(page, 3) >= 3

    page.goto(f"{app_url}/details?id={ids[0]}")  # GOOG, ten years of daily bars
    settled(page)
    no_exception(page)
    assert charts_drawn(page, 4) >= 4  # equity over drawdown, price, monthly, histogram
    page.get_by_test_id("stDataFrame").first.locator("canvas").first.wait_for()
    page.get_by_text("Log scale").wait_for()
    shoot(page, "details")
    page.get_by_role("tab", name="Compare").click()  # hidden tabs are drawn once opened
    page.get_by_role("textbox", name="Find backtests by id, symbol or strategy").wait_for()
    no_exception(page)

    page.goto(app_url)  # the Scanner is the default page: the root URL
    settled(page)
    no_exception(page)
    page.get_by_text(re.compile(r"\d+ symbols? from")).first.wait_for()
    shoot(page, "scanner")

    page.goto(f"{app_url}/manager")
    settled(page)
    page.get_by_text("Browse stored").click()
    settled(page)
    grid = page.get_by_test_id("stDataFrame").first
    grid.locator("canvas").first.wait_for()
    tick_row(page, grid, 2)  # the last of three rows (it used to raise IndexError)
    page.get_by_role("button", name="Delete 1 selected…").click()
    settled(page)
    page.get_by_role("button", name="Yes, delete 1").click()
    page.get_by_text("Deleted 1 stored backtest(s).").wait_for()
    settled(page)
    no_exception(page)
    assert page.get_by_role("button", name=re.compile(r"Delete \d+ selected")).count() == 0
    from core.store import BacktestStore

    left = set(BacktestStore(str(store_path)).query(scope="all")["backtest_id"].astype(str))
    assert len(left) == 2 and left < set(ids), left

    page.get_by_text("Run a sweep").click()
    page.get_by_role("spinbutton", name="period from").wait_for()
    settled(page)
    symbols = page.get_by_role("textbox", name="Symbols", exact=True)
    symbols.fill("GOOG, EURUSD, BTCUSD")
    symbols.press("Control+Enter")
    settled(page)
    for label, value in (("to", 20), ("step", 2)):
        field = page.get_by_role("spinbutton", name=label, exact=True).first
        field.fill(str(value))
        field.press("Enter")
        settled(page)
    run = page.get_by_role("button", name="Run sweep of 12 backtests")
    run.click()
    page.get_by_text("Sweep done").wait_for()
    settled(page)
    no_exception(page)
    charts_drawn(page, 1)
    shoot(page, "sweep")

    outside = outside_requests(requests_seen)
    assert requests_seen, "the recorder saw the app's requests"
    assert not outside, f"requests left 127.0.0.1: {sorted(set(outside))}"


def test_outside_requests_are_recognised():
    urls = ["http://127.0.0.1:8501/static/x.js", "ws://127.0.0.1:8501/_stcore/stream",
            "data:image/png;base64,AAAA", "https://fonts.gstatic.com/s/i/history/24px.svg",
            "http://localhost:8501/"]
    assert outside_requests(urls) == ["https://fonts.gstatic.com/s/i/history/24px.svg",
                                      "http://localhost:8501/"]

"""End to end in a real browser: Debian chromium driven by Playwright against ``streamlit run``.

Flow: open the app, run a backtest from the Manager, follow its link to the Details page (metric
cards and a rendered Vega chart), open the Scanner, fill the missing stats and see the stats
columns, then run a small sweep and see its heatmap. A screenshot of each page is saved in a
temporary folder, or under the folder named by HINDSIGHT_SCREENSHOTS (``make screenshots``
refreshes docs/screenshots/ that way).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("HINDSIGHT_SCREENSHOTS") or Path(tempfile.gettempdir(),
                                                              "hindsight-screenshots"))
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run"]
WAIT_MS = 30_000

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll Streamlit's health endpoint until it answers ok (or the server died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            output = server.stdout.read() if server.stdout else ""
            pytest.fail(f"streamlit exited with code {server.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"streamlit did not become healthy at {url} within {timeout:.0f} s")


@pytest.fixture
def app_url(tmp_path):
    """``streamlit run app.py`` on a free port, with the store and price cache under tmp_path."""
    port = free_port()
    env = {**os.environ,
           "HINDSIGHT_STORE": str(tmp_path / "store.zarr"),
           "HINDSIGHT_PRICE_CACHE": str(tmp_path / "prices.zarr"),
           "HINDSIGHT_DATA_SOURCE": "demo",
           "HINDSIGHT_CONFIG": str(tmp_path / "absent.toml")}
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, server)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture
def page():
    """A chromium page; fails (never skips) with a clear message when the browser cannot start."""
    from playwright.sync_api import Error, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser` or "
                    "`apt-get install -y chromium`) to run the browser test.")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium at {CHROMIUM} could not start: {exc}")
        context = browser.new_context(viewport={"width": 1600, "height": 1150})
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        try:
            yield tab
        finally:
            browser.close()


def settle(page) -> None:
    """Wait until Streamlit has finished running the script (no 'Running...' status)."""
    page.wait_for_timeout(300)
    page.wait_for_function(
        "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=WAIT_MS)


def shoot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_run_backtest_follow_link_to_details_and_scan(app_url, page):
    page.goto(f"{app_url}/manager")
    run = page.get_by_role("button", name="Run backtest")
    run.wait_for()
    settle(page)
    run.click()
    page.get_by_text("as backtest").wait_for()
    settle(page)
    shoot(page, "manager")

    page.get_by_role("link", name="Open its details").click()
    page.wait_for_url("**/details?id=*")
    page.get_by_test_id("stMetric").first.wait_for()
    page.locator(".vega-embed canvas, .vega-embed svg").first.wait_for()
    settle(page)
    labels = page.get_by_test_id("stMetricLabel").all_inner_texts()
    for title in ("Win rate", "Trades", "Sharpe", "CAGR", "Max drawdown"):
        assert title in labels
    assert page.locator(".vega-embed").count() >= 4
    shoot(page, "details")

    page.goto(app_url)  # the Scanner is the default page: the root URL
    lookback = page.get_by_label("Signal within the last N bars")
    lookback.wait_for()
    settle(page)
    lookback.fill("20")
    lookback.press("Enter")
    page.get_by_text("within the last 20 bar(s)").wait_for()
    settle(page)
    page.get_by_role("button", name="Backtest these").click()
    page.get_by_role("button", name="Backtest these").wait_for(state="detached")
    settle(page)
    grid = page.get_by_test_id("stDataFrame").first
    for column in ("win rate", "num trades", "sharpe ratio"):  # columns left of the fold
        grid.locator("[role=columnheader]", has_text=column).first.wait_for(state="attached")
    shoot(page, "scanner")

    page.goto(f"{app_url}/manager")
    page.get_by_text("Run a sweep").click()
    page.get_by_label("period from").wait_for()
    settle(page)
    for label, value, nth in (("to", 20, 0), ("step", 2, 0), ("oversold from", 20, 0),
                              ("to", 40, 1), ("step", 5, 1)):
        field = page.get_by_label(label, exact=True).nth(nth)
        field.fill(str(value))
        field.press("Enter")
        settle(page)
    page.get_by_text("60 cells").wait_for()  # periods 14-20 (4) x oversold 20-40 (5) x 3 symbols
    page.get_by_role("button", name="Run sweep of 60 backtests").click()
    page.get_by_text("Sweep done").wait_for()
    page.locator(".vega-embed").first.wait_for()
    settle(page)
    shoot(page, "sweep")

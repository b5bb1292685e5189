"""The browser tests' fixtures: the app as ``make run`` starts it over the real-format fixture
folder with a store under tmp_path, and a Debian chromium page that records every request it
makes."""
from __future__ import annotations

from pathlib import Path

import pytest

from serve import serving

ROOT = Path(__file__).resolve().parents[2]
REALDATA = ROOT / "tests" / "fixtures" / "realdata"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
WAIT_MS = 60_000
LOCAL_HOSTS = {"127.0.0.1"}

@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "store.zarr"


@pytest.fixture
def app_url(tmp_path, store_path):
    """The app as ``make run`` starts it (``serve.serving``) over the fixture folder; store
    under tmp_path."""
    env = {"HINDSIGHT_STORE": str(store_path),
           "HINDSIGHT_PRICE_CACHE": str(tmp_path / "prices.zarr"),
           "HINDSIGHT_DATA_SOURCE": "folder",
           "HINDSIGHT_DATA_FOLDER": str(REALDATA),
           "HINDSIGHT_CONFIG": str(tmp_path / "absent.toml")}
    with serving(env) as (url, _pid):
        yield url


@pytest.fixture
def requests_seen() -> list[str]:
    """Every URL the browser requested (pages, scripts, fonts, images, websockets)."""
    return []


@pytest.fixture
def page(requests_seen):
    """A chromium page recording its requests; fails (never skips) when chromium cannot start."""
    from playwright.sync_api import Error, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (`make browser` or "
                    "`apt-get install -y chromium`) to run the browser test.")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        except Error as exc:
            pytest.fail(f"Chromium at {CHROMIUM} could not start: {exc}")
        context = browser.new_context(viewport={"width": 1600, "height": 1150},
                                      timezone_id="America/New_York")
        context.on("request", lambda request: requests_seen.append(request.url))
        tab = context.new_page()
        tab.on("websocket", lambda ws: requests_seen.append(ws.url))
        tab.set_default_timeout(WAIT_MS)
        try:
            yield tab
        finally:
            browser.close()

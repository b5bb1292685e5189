"""The browser tests' fixtures: ``streamlit run app.py`` over the real-format fixture folder
with a store under tmp_path, and a Debian chromium page that records every request it makes."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REALDATA = ROOT / "tests" / "fixtures" / "realdata"
CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
WAIT_MS = 60_000
LOCAL_HOSTS = {"127.0.0.1"}

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
def store_path(tmp_path) -> Path:
    return tmp_path / "store.zarr"


@pytest.fixture
def app_url(tmp_path, store_path):
    """``python serve.py`` (``streamlit run app.py``, warmed; what ``make run`` starts) on a free
    port over the fixture folder; store under tmp_path."""
    port = free_port()
    env = {**os.environ,
           "HINDSIGHT_STORE": str(store_path),
           "HINDSIGHT_PRICE_CACHE": str(tmp_path / "prices.zarr"),
           "HINDSIGHT_DATA_SOURCE": "folder",
           "HINDSIGHT_DATA_FOLDER": str(REALDATA),
           "HINDSIGHT_CONFIG": str(tmp_path / "absent.toml")}
    server = subprocess.Popen(
        [sys.executable, "serve.py", "--server.port", str(port),
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

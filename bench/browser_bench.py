"""Browser bench: what the user waits for, measured in Debian chromium driven by Playwright.

Starts ``streamlit run app.py`` on a free 127.0.0.1 port with a temporary store, price cache and
settings (``HINDSIGHT_*``), and times from navigation (or the click) until the page is painted:

- Backtest Details of a 10-year daily backtest: the first view after a server start and warm
  views (median), until every chart is drawn and the trade table shows;
- the first backtest after a server start: click on *Run backtest* until the stored result shows;
- the Scanner over a 500-symbol demo universe: first view and warm views until its table shows.

Prints one JSON object; each figure has its target beside it. Not a timed test: figures depend
on the machine and its load. Never downloads a browser: it uses /usr/bin/chromium.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
WAIT_MS = 120_000
WARM_RUNS = 5
SCAN_SYMBOLS = 500
DETAILS_BARS = 2520  # 10 years of business days
TARGETS = {"details_warm_s": 1.5, "details_first_view_s": 3.0, "first_backtest_s": 1.0,
           "scanner_500_s": 2.0}

#: True once every chart of the page is drawn (a canvas or svg in each) and, when asked, a
#: visible table has drawn its grid; also requires Streamlit to have finished the script run
#: (no status widget, and the sidebar footer every page writes last is there).
PAINTED_JS = """([charts, table]) => {
  if (document.querySelector('[data-testid="stStatusWidget"]')) return false;
  const side = document.querySelector('[data-testid="stSidebar"]');
  if (!side || !side.textContent.includes('Backtests stored')) return false;
  const embeds = [...document.querySelectorAll('.vega-embed')];
  if (embeds.length < charts) return false;
  if (!embeds.every(e => e.querySelector('canvas, svg'))) return false;
  if (!table) return true;
  const grids = [...document.querySelectorAll('[data-testid="stDataFrame"]')]
    .filter(g => g.offsetParent !== null);
  return grids.length > 0 && grids.every(g => g.querySelector('canvas'));
}"""


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def app_server(env: dict[str, str]):
    """``streamlit run app.py`` with ``env``; yields (URL, pid) once healthy, stops it after."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--server.address", "127.0.0.1",
         "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server)
        yield url, server.pid
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"streamlit did not become healthy at {url}")


def painted(page, charts: int, table: bool) -> None:
    """Wait until ``charts`` charts are drawn (and a table shows), then one more frame."""
    page.wait_for_function(PAINTED_JS, arg=[charts, table], timeout=WAIT_MS, polling="raf")
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")


def timed_view(page, url: str, charts: int, table: bool) -> float:
    """Seconds from navigating to ``url`` until it is painted."""
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_timeout(50)  # let the new document replace the old one
    painted(page, charts, table)
    return time.perf_counter() - start


def chart_count(page, table: bool = True) -> int:
    """How many charts the current page draws, once the count has stayed put for a second."""
    painted(page, 0, table)
    count, since = -1, time.monotonic()
    while time.monotonic() - since < 1.0:
        drawn = page.locator(".vega-embed canvas, .vega-embed svg").count()
        if drawn != count:
            count, since = drawn, time.monotonic()
        page.wait_for_timeout(100)
    return count


def prepare(tmp: Path) -> tuple[dict[str, str], str]:
    """Environment of a temporary store and price cache, holding one 10-year daily backtest."""
    env = {"HINDSIGHT_STORE": str(tmp / "store.zarr"), "HINDSIGHT_PRICE_CACHE": str(tmp / "prices"),
           "HINDSIGHT_DATA_SOURCE": "demo", "HINDSIGHT_CONFIG": str(tmp / "absent.toml")}
    os.environ.update(env)
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest
    from core.store import BacktestStore

    bars = get_provider(load_settings()).load_bars("DEMO01").iloc[-DETAILS_BARS:]
    result = run_backtest(bars, "rsi_meanrev", {"period": 10, "oversold": 35, "overbought": 65},
                          symbol="DEMO01")
    bid = BacktestStore(env["HINDSIGHT_STORE"]).store_backtest(result)
    return env, str(bid)


def bench_details(browser, env: dict[str, str], bid: str) -> dict:
    """Warm views of a Details page, then its first view after a server restart.

    Also the server's CPU seconds per view (a figure the machine's load does not inflate).
    """
    with app_server(env) as (url, pid):
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        link = f"{url}/details?id={bid}"
        page.goto(link)
        charts = chart_count(page)
        warm, cpu = [], []
        for _ in range(WARM_RUNS):
            before = cpu_seconds(pid)
            warm.append(timed_view(page, link, charts, True))
            cpu.append(cpu_seconds(pid) - before)
        page.close()
    with app_server(env) as (url, pid):
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        before = cpu_seconds(pid)
        first = timed_view(page, f"{url}/details?id={bid}", charts, True)
        first_cpu = cpu_seconds(pid) - before
        page.close()
    return {"details_charts": charts, "details_first_view_s": round(first, 3),
            "details_first_view_server_cpu_s": round(first_cpu, 3),
            "details_warm_s": round(statistics.median(warm), 3),
            "details_warm_runs_s": [round(t, 3) for t in warm],
            "details_warm_server_cpu_s": round(statistics.median(cpu), 3)}


def bench_first_backtest(browser, env: dict[str, str]) -> dict:
    """Click *Run backtest* on a fresh server until the stored result shows."""
    with app_server(env) as (url, _):
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        page.goto(f"{url}/manager")
        run = page.get_by_role("button", name="Run backtest")
        run.wait_for(timeout=WAIT_MS)
        painted(page, 0, False)
        start = time.perf_counter()
        run.click()
        page.get_by_text("as backtest").first.wait_for(timeout=WAIT_MS)
        seconds = time.perf_counter() - start
        page.close()
    return {"first_backtest_s": round(seconds, 3)}


def bench_scanner(browser, env: dict[str, str], tmp: Path) -> dict:
    """The Scanner page over a 500-symbol demo universe: first view, then warm views."""
    config = tmp / "scan.toml"
    config.write_text(f"demo_symbols = {SCAN_SYMBOLS}\ndemo_years = 10\n")
    with app_server({**env, "HINDSIGHT_CONFIG": str(config)}) as (url, _):
        page = browser.new_page(viewport={"width": 1600, "height": 1100})
        first = timed_view(page, url, charts=0, table=True)
        warm = [timed_view(page, url, 0, True) for _ in range(WARM_RUNS)]
        page.close()
    return {"scanner_symbols": SCAN_SYMBOLS, "scanner_first_view_s": round(first, 3),
            "scanner_500_s": round(statistics.median(warm), 3)}


def main() -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: `apt-get install -y chromium` (no browser download).")
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as name, sync_playwright() as p:
        tmp = Path(name)
        env, bid = prepare(tmp)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            figures = {**bench_details(browser, env, bid), **bench_first_backtest(browser, env),
                       **bench_scanner(browser, env, tmp)}
        finally:
            browser.close()
    figures["details_bars"] = DETAILS_BARS
    figures["load_average_1min"] = [load, round(os.getloadavg()[0], 2)]  # before, after
    figures["cpus"] = os.cpu_count()
    figures.update({f"target_{name}": target for name, target in TARGETS.items()})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()

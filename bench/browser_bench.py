"""Browser bench: what the user waits for, measured in Debian chromium driven by Playwright.

Starts the app as ``make run`` does (``python serve.py``: ``streamlit run app.py`` warmed from the
process start) on a free 127.0.0.1 port with a temporary store, price cache and
settings (``HINDSIGHT_*``), and times from navigation (or the click) until the page is painted:

- Backtest Details of a 10-year daily backtest, until every chart is drawn and the trade table
  shows: warm views of its deep link (a full page load), warm views reached inside the app (the
  Manager's *Open its details* link; no reload), the first view after a server restart (same
  address, so the browser has the app's static files cached, as a user's browser does), with
  the seconds from launching the server until it answered and until that view was painted,
  and a first visit (a fresh server and a browser context with an empty cache);
- the first backtest after a server start: click on *Run backtest* until the stored result shows;
- the Scanner over a 500-symbol demo universe: first view and warm views until its table shows.

Prints one JSON object; each figure has its target beside it, with the CPU seconds the server
and chromium spent (which, unlike wall time, hardly grow when other work loads the machine) and
the load average. ``python bench/browser_bench.py details`` (or ``backtest``, ``scanner``) runs
one part. Not a timed test. Never downloads a browser: it uses /usr/bin/chromium.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serve import free_port, serving  # noqa: E402  (the app as `make run` starts it)

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--disable-sync"]
WAIT_MS = 120_000
VIEWPORT = {"width": 1600, "height": 1100}
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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def browser_cpu_seconds() -> float:
    """CPU time used so far by this process's chromium (every descendant but the servers)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text()
                                               .rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    total, mine, grown = 0.0, {os.getpid()}, True
    while grown:
        grown = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grown = True
    for pid in mine - {os.getpid()}:
        try:
            if b"streamlit" in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            total += cpu_seconds(pid)
        except OSError:
            continue
    return total


def painted(page, charts: int, table: bool) -> None:
    """Wait until ``charts`` charts are drawn (and a table shows), then one more frame."""
    page.wait_for_function(PAINTED_JS, arg=[charts, table], timeout=WAIT_MS, polling=50)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(null)))")


def timed_view(page, url: str, charts: int, table: bool) -> float:
    """Seconds from navigating to ``url`` until it is painted."""
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_timeout(50)  # let the new document replace the old one
    painted(page, charts, table)
    return time.perf_counter() - start


def measured_view(page, url: str, charts: int, table: bool, server: int) -> tuple[float, ...]:
    """(wall seconds, server CPU seconds, browser CPU seconds) of one timed view.

    CPU seconds barely grow when other work shares the machine; wall seconds do.
    """
    server_before, browser_before = cpu_seconds(server), browser_cpu_seconds()
    wall = timed_view(page, url, charts, table)
    return wall, cpu_seconds(server) - server_before, browser_cpu_seconds() - browser_before


def medians(views: list[tuple[float, ...]], prefix: str) -> dict:
    """Median wall, server CPU and browser CPU seconds of several views, named by ``prefix``."""
    wall, server, browser = (statistics.median(column) for column in zip(*views))
    return {f"{prefix}_s": round(wall, 3), f"{prefix}_server_cpu_s": round(server, 3),
            f"{prefix}_browser_cpu_s": round(browser, 3),
            f"{prefix}_runs_s": [round(v[0], 3) for v in views]}


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
    """Warm views of a Details page, its first view after a server restart, a first visit."""
    port = free_port()
    with serving(env, port) as (url, pid):
        page = browser.new_page(viewport=VIEWPORT)
        link = f"{url}/details?id={bid}"
        page.goto(link)
        charts = chart_count(page)
        warm = [measured_view(page, link, charts, True, pid) for _ in range(WARM_RUNS)]
        page.close()
        in_app = in_app_views(browser, url, pid, charts)
    launched = time.perf_counter()
    with serving(env, port) as (url, pid):
        ready = time.perf_counter()
        page = browser.new_page(viewport=VIEWPORT)
        first = measured_view(page, link, charts, True, pid)
        painted_after = time.perf_counter() - launched
        page.close()
    with serving(env, port) as (url, pid):
        context = browser.new_context(viewport=VIEWPORT)  # an empty browser cache
        first_visit = measured_view(context.new_page(), link, charts, True, pid)
        context.close()
    return {"details_charts": charts, **medians([first], "details_first_view"),
            "server_ready_after_launch_s": round(ready - launched, 3),
            "details_first_view_painted_after_launch_s": round(painted_after, 3),
            **medians([first_visit], "details_first_visit"),
            **medians(warm, "details_warm"), **medians(in_app, "details_in_app")}


def in_app_views(browser, url: str, pid: int, charts: int) -> list[tuple[float, ...]]:
    """Details reached inside the app: run a backtest in the Manager, click *Open its details*
    (no page reload), and back through the sidebar; each click timed until painted."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(f"{url}/manager")
    page.get_by_label("Symbol", exact=True).fill("DEMO02")
    page.get_by_role("button", name="Run backtest").click()
    page.get_by_text("as backtest").first.wait_for(timeout=WAIT_MS)
    views = []
    for _ in range(WARM_RUNS):
        painted(page, 0, False)
        server, chromium = cpu_seconds(pid), browser_cpu_seconds()
        start = time.perf_counter()
        page.get_by_role("link", name="Open its details").click()
        page.wait_for_url("**/details?id=*")
        page.get_by_text("Trade log").first.wait_for(timeout=WAIT_MS)
        painted(page, charts, True)
        views.append((time.perf_counter() - start, cpu_seconds(pid) - server,
                      browser_cpu_seconds() - chromium))
        page.get_by_role("link", name="Backtest Manager").click()
        page.get_by_text("as backtest").first.wait_for(timeout=WAIT_MS)
    page.close()
    return views


def bench_first_backtest(browser, env: dict[str, str]) -> dict:
    """Click *Run backtest* on a fresh server until the stored result shows."""
    with serving(env) as (url, pid):
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(f"{url}/manager")
        run = page.get_by_role("button", name="Run backtest")
        run.wait_for(timeout=WAIT_MS)
        painted(page, 0, False)
        start, cpu = time.perf_counter(), cpu_seconds(pid)
        run.click()
        page.get_by_text("as backtest").first.wait_for(timeout=WAIT_MS)
        seconds, cpu = time.perf_counter() - start, cpu_seconds(pid) - cpu
        page.close()
    return {"first_backtest_s": round(seconds, 3), "first_backtest_server_cpu_s": round(cpu, 3)}


def bench_scanner(browser, env: dict[str, str], tmp: Path) -> dict:
    """The Scanner page over a 500-symbol demo universe: first view, then warm views."""
    config = tmp / "scan.toml"
    config.write_text(f"demo_symbols = {SCAN_SYMBOLS}\ndemo_years = 10\n")
    with serving({**env, "HINDSIGHT_CONFIG": str(config)}) as (url, pid):
        page = browser.new_page(viewport=VIEWPORT)
        first = measured_view(page, url, 0, True, pid)
        warm = [measured_view(page, url, 0, True, pid) for _ in range(WARM_RUNS)]
        page.close()
    return {"scanner_symbols": SCAN_SYMBOLS, **medians([first], "scanner_first_view"),
            **medians(warm, "scanner_500")}


def main(only: str | None = None) -> None:
    """Run the benches (or ``only`` one of details, backtest, scanner) and print the JSON."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: `apt-get install -y chromium` (no browser download).")
    load = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory() as name, sync_playwright() as p:
        tmp = Path(name)
        env, bid = prepare(tmp)
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            benches = {"details": lambda: bench_details(browser, env, bid),
                       "backtest": lambda: bench_first_backtest(browser, env),
                       "scanner": lambda: bench_scanner(browser, env, tmp)}
            figures = {}
            for name, bench in benches.items():
                if only in (None, name):
                    figures.update(bench())
        finally:
            browser.close()
    figures["details_bars"] = DETAILS_BARS
    figures["load_average_1min"] = [load, round(os.getloadavg()[0], 2)]  # before, after
    figures["cpus"] = os.cpu_count()
    figures.update({f"target_{name}": target for name, target in TARGETS.items()})
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

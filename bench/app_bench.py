"""App benchmarks: the Backtest Details page on 10 years of daily data, the Scanner page on the
demo universe, each a full server-side script run through Streamlit's AppTest (load, compute,
chart specs, Arrow serialisation; browser drawing not included: bench/browser_bench.py times
the pages in chromium, from navigation until painted).

Prints one JSON object; each figure has its target beside it. Stores live in a temp dir.
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

RUNS = 5


def _timed_runs(at, runs: int = RUNS) -> float:
    """Median seconds of ``runs`` reruns of an AppTest after one warm-up run."""
    at.run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - start)
    if at.exception:
        raise RuntimeError(str(at.exception))
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.update(HINDSIGHT_STORE=f"{tmp}/store.zarr", HINDSIGHT_PRICE_CACHE=f"{tmp}/prices",
                          HINDSIGHT_DATA_SOURCE="demo", HINDSIGHT_CONFIG=f"{tmp}/absent.toml")
        from streamlit.testing.v1 import AppTest

        from core.config import load_settings
        from core.data import get_provider
        from core.engine import run_backtest
        from core.store import BacktestStore

        bars = get_provider(load_settings()).load_bars("DEMO01").iloc[-2520:]
        result = run_backtest(bars, "rsi_meanrev", {"period": 10, "oversold": 35,
                                                    "overbought": 65}, symbol="DEMO01")
        bid = BacktestStore(os.environ["HINDSIGHT_STORE"]).store_backtest(result)

        details = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        details.run()
        details.query_params["id"] = bid
        details.switch_page("views/details.py")
        details_s = _timed_runs(details)
        charts = len(details.get("vega_lite_chart"))

        scanner = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        scanner_s = _timed_runs(scanner)
    print(json.dumps({
        "details_bars": len(bars),
        "details_trades": int(len(result.trades)),
        "details_charts": charts,
        "details_page_run_s": round(details_s, 3),
        "target_details_s": 1.0,
        "scanner_page_run_s_60_symbols": round(scanner_s, 3),
    }, indent=2))


if __name__ == "__main__":
    main()

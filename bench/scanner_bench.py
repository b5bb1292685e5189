"""Scanner benchmark: a 500-symbol scan once prices are cached, with and without the stats join.

Prints one JSON object; each figure has its target beside it. The store and price cache live in
a temp dir. The baseline is the same scan computed on the full history (no tail cut).
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from core import scanner  # noqa: E402
from core.data.cached import CachedProvider  # noqa: E402
from core.data.demo import DemoProvider  # noqa: E402
from core.engine import run_many  # noqa: E402
from core.store import BacktestStore  # noqa: E402
from core.data.prices import PriceCache  # noqa: E402

SYMBOLS = 500
YEARS = 10
PARAMS = {"period": 14, "oversold": 35, "overbought": 65}


def _median_seconds(task, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        task()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        provider = CachedProvider(DemoProvider(SYMBOLS, YEARS), PriceCache.at(f"{tmp}/prices"))
        symbols = provider.symbols()
        provider.load_many(symbols)  # fill the price cache
        bars = provider.load_many(symbols)
        store = BacktestStore(f"{tmp}/store.zarr")
        store.store_many(run_many(bars, "rsi_meanrev", [PARAMS]))

        load = _median_seconds(lambda: provider.load_many(symbols), runs=3)
        scan_s = _median_seconds(lambda: scanner.scan(bars, "rsi_meanrev", PARAMS, lookback=5))
        found = scanner.scan(bars, "rsi_meanrev", PARAMS, lookback=5)
        join_s = _median_seconds(lambda: scanner.add_backtest_stats(found, store))
        full_tail = scanner.MIN_TAIL
        scanner.MIN_TAIL = 10**9  # baseline: compute every signal on the full history
        full_s = _median_seconds(lambda: scanner.scan(bars, "rsi_meanrev", PARAMS, lookback=5),
                                 runs=3)
        scanner.MIN_TAIL = full_tail
        joined = scanner.add_backtest_stats(found, store)
    print(json.dumps({
        "symbols": SYMBOLS,
        "bars_per_symbol": int(np.median([len(b) for b in bars.values()])),
        "signals_found": int(len(found)),
        "stats_joined": int(joined["backtest_id"].notna().sum()),
        "load_many_cached_s": round(load, 3),
        "scan_s": round(scan_s, 3),
        "stats_join_s": round(join_s, 3),
        "scan_plus_join_s": round(scan_s + join_s, 3),
        "target_scan_plus_join_s": 2.0,
        "baseline_full_history_scan_s": round(full_s, 3),
    }, indent=2))


if __name__ == "__main__":
    main()

"""Data benchmarks: demo generation, one-symbol and 500-symbol loads from the Zarr price cache.

Prints one JSON object; each figure has its target beside it. Caches are built in a temp dir.
Figures are medians of repeated runs; on a busy machine they scale with the load average.
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.cached import CachedProvider  # noqa: E402
from core.data.demo import DemoProvider, generate_demo_universe  # noqa: E402
from core.data.validate import validate_bars  # noqa: E402
from core.data.prices import PriceCache  # noqa: E402


def _seconds(task) -> float:
    start = time.perf_counter()
    task()
    return time.perf_counter() - start


def demo_generation_seconds() -> float:
    return statistics.median(_seconds(lambda: generate_demo_universe(60, 12)) for _ in range(3))


def validate_clean_microseconds() -> float:
    """validate_bars on 2,520 clean rows (10 years): the per-backtest fast path."""
    bars = generate_demo_universe(1, 10)["DEMO01"].iloc[:2520]
    runs = 2000
    best = min(_seconds(lambda: [validate_bars(bars, "DEMO01") for _ in range(runs)])
               for _ in range(5))
    return best / runs * 1e6


def one_symbol_figures(root: Path) -> dict:
    provider = CachedProvider(DemoProvider(60, 12), PriceCache(root / "demo.zarr"))
    provider.load_bars("DEMO01")  # generates the universe once into the cache
    cold = []
    # a fresh cache object each time: manifest read + Zarr array open + read
    for symbol in provider.symbols()[1:21]:
        fresh = CachedProvider(DemoProvider(60, 12), PriceCache(root / "demo.zarr"))
        cold.append(_seconds(lambda: fresh.load_bars(symbol)) * 1e3)
    warm_zarr = [_seconds(lambda: provider.load_bars(s)) * 1e3 for s in provider.symbols()[21:]]
    memory = [_seconds(lambda: provider.load_bars("DEMO02")) * 1e3 for _ in range(50)]
    bars = provider.load_bars("DEMO02")
    return {
        "one_symbol_rows": len(bars),
        "one_symbol_load_ms_p50": round(statistics.median(warm_zarr), 3),
        "one_symbol_load_ms_p50_cold_open": round(statistics.median(cold), 3),
        "one_symbol_load_ms_p50_in_memory": round(statistics.median(memory), 3),
        "one_symbol_target_ms": 5.0,
    }


def many_symbol_figures(root: Path, count: int = 500, years: int = 10) -> dict:
    path = root / "many.zarr"
    build = _seconds(lambda: CachedProvider(DemoProvider(count, years), PriceCache(path))
                     .load_bars("DEMO001"))
    cold = []
    for _ in range(3):  # a freshly opened cache each time: every bar is read from Zarr
        provider = CachedProvider(DemoProvider(count, years), PriceCache(path))
        symbols = provider.symbols()
        cold.append(_seconds(lambda: provider.load_many(symbols)))
    warm = statistics.median(_seconds(lambda: provider.load_many(symbols)) for _ in range(3))
    return {
        "many_symbols": count,
        "many_years": years,
        "many_cache_build_s": round(build, 3),
        "many_load_s": round(statistics.median(cold), 3),
        "many_load_s_in_memory": round(warm, 3),
        "many_target_s": 1.0,
    }


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        result = {
            "demo_generation_s": round(demo_generation_seconds(), 3),
            "demo_generation_target_s": 3.0,
            "validate_clean_2520_rows_us": round(validate_clean_microseconds(), 1),
            "validate_clean_target_us": 100.0,
            **one_symbol_figures(root),
            **many_symbol_figures(root),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

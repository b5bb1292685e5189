"""Rule strategy benchmark: prints one JSON object with the targets of issue 18.

Workload: a sweep of the ``rsi_trend`` rule strategy (strategies/rsi_trend.toml: RSI dip while
the close is above its SMA) over 10 symbols x 2,520 synthetic daily bars x 900 cells (period
5..14 x oversold 20..38 step 2 x trend 40..200 step 20) with a 5 % stop, through
``core.engine.run_many`` exactly as a sweep runs it; the built-in ``rsi_meanrev`` grid of
bench/engine_bench.py (936 cells) on the same bars in the same run is the baseline. Also:
loading 50 strategy files into a fresh folder scan, a rule strategy's single backtest, and the
built-in grid run short (it may cost no more than the long one, within NOISE: each side runs
on the bars and on their mirror image, where a short meets the long run's signals, so both
sides do the same total work).

Usage: ``.venv/bin/python bench/rules_bench.py``
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine_bench import GRID as BUILTIN_GRID  # noqa: E402
from engine_bench import STOP, frames, make_arrays  # noqa: E402

RULE_GRID = {"period": list(range(5, 15)), "oversold": list(range(20, 39, 2)),
             "trend": list(range(40, 201, 20))}
TARGETS = {"rule_backtests_per_s": 20_000, "builtin_backtests_per_s": 50_000,
           "load_50_files_s": 0.2, "short_vs_long_seconds": 1.0}
#: Run-to-run noise allowed when comparing the short and the long grid measured back to back.
NOISE = 0.05
REPEATS = 3


def throughput(data: dict, strategy: str, grid: dict) -> dict:
    """Best-of-``REPEATS`` wall-clock backtests/s of one ``run_many`` call, plus CPU seconds."""
    from core.engine import run_many

    run_many(data, strategy, grid, [STOP])  # warm-up (kernels loaded, caches built)
    best, cpu_at_best, rows = float("inf"), 0.0, 0
    for _ in range(REPEATS):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        rows = len(run_many(data, strategy, grid, [STOP]).table)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall < best:
            best, cpu_at_best = wall, cpu
    return {"backtests": rows, "seconds": round(best, 4), "backtests_per_s": round(rows / best),
            "cpu_seconds": round(cpu_at_best, 4)}


def mirrored(data: dict) -> dict:
    """Each symbol's bars reflected (price -> 2M - price, high and low swapped): every up move
    becomes a down move of the same size, so a short run on them meets the long run's signals
    (RSI becomes 100 - RSI) and about as many trades — the same work on the same shape."""
    out = {}
    for symbol, bars in data.items():
        top = 2.0 * float(bars["high"].max())
        flipped = bars.copy()
        flipped["open"], flipped["close"] = top - bars["open"], top - bars["close"]
        flipped["high"], flipped["low"] = top - bars["low"], top - bars["high"]
        out[symbol] = flipped
    return out


def long_and_short_seconds(data: dict, grid: dict, rounds: int = 9) -> dict:
    """Best wall-clock seconds of the built-in grid run long and run short, each on the bars
    and on their mirror image: the long run on one meets the short run on the other's signals
    and trades, so both sides do the same total work. Measured in alternation, one numba
    thread (two threads sharing the grid add more noise than the difference asked), with the
    strategy's signal exit (a percentage stop sits at other distances on mirrored prices)."""
    import numba

    from core.engine import run_many

    short_grid = {**grid, "direction": ["short"]}
    flipped = mirrored(data)
    runs = {"long": (data, grid), "long_mirrored": (flipped, grid),
            "short": (data, short_grid), "short_mirrored": (flipped, short_grid)}
    best = dict.fromkeys(runs, float("inf"))
    trades = {}
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    for _ in range(rounds):
        for name, (bars, cells) in runs.items():
            t0 = time.perf_counter()
            table = run_many(bars, "rsi_meanrev", cells, [None]).table
            best[name] = min(best[name], time.perf_counter() - t0)
            trades[name] = int(table["num_trades"].sum())
    numba.set_num_threads(threads)
    return {name: {"seconds": round(best[name], 4), "trades": trades[name]} for name in runs}


def load_fifty(template: Path) -> dict:
    """Seconds to scan a folder of 50 strategy files (cold: a folder never scanned before)."""
    from core.rule_files import scan_folder

    text = template.read_text()
    with tempfile.TemporaryDirectory(prefix="hindsight-rules-") as folder:
        for i in range(50):
            Path(folder, f"rule_{i:02d}.toml").write_text(
                text.replace('name = "rsi_trend"', f'name = "rule_{i:02d}"'))
        t0 = time.perf_counter()
        scan = scan_folder(folder)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        scan_folder(folder)
        warm = time.perf_counter() - t0
    return {"files": 50, "loaded": len(scan.strategies), "problems": len(scan.problems),
            "cold_s": round(cold, 4), "unchanged_rescan_s": round(warm, 5)}


def single_backtest_ms(bars, repeats: int = 200) -> float:
    from core.engine import run_backtest

    for _ in range(10):
        run_backtest(bars, "rsi_trend", None, STOP)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_backtest(bars, "rsi_trend", None, STOP)
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 3)


def main() -> None:
    folder = tempfile.mkdtemp(prefix="hindsight-strategies-")
    template = ROOT / "strategies" / "rsi_trend.toml"
    shutil.copy(template, folder)
    os.environ["HINDSIGHT_STRATEGIES"] = folder
    try:
        data = frames(make_arrays())
        rule = throughput(data, "rsi_trend", RULE_GRID)
        builtin = throughput(data, "rsi_meanrev", BUILTIN_GRID)
        short = throughput(data, "rsi_meanrev", {**BUILTIN_GRID, "direction": ["short"]})
        sides = long_and_short_seconds(data, BUILTIN_GRID)
        ratio = ((sides["short"]["seconds"] + sides["short_mirrored"]["seconds"])
                 / (sides["long"]["seconds"] + sides["long_mirrored"]["seconds"]))
        loading = load_fifty(template)
        single = single_backtest_ms(next(iter(data.values())))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    print(json.dumps({
        "workload": {"symbols": 10, "bars": 2520, "exit_rule": STOP,
                     "rule_grid": RULE_GRID, "builtin_grid": BUILTIN_GRID},
        "rule_rsi_trend_with_5pct_stop": rule,
        "builtin_rsi_meanrev_with_5pct_stop": builtin,
        "rule_vs_builtin_speed": round(rule["backtests_per_s"] / builtin["backtests_per_s"], 3),
        "builtin_short_rsi_meanrev_with_5pct_stop": short,
        "short_vs_long_seconds": round(ratio, 3),
        "long_and_short_alternated": sides,
        "load_50_strategy_files": loading,
        "rule_single_backtest_ms_p50": single,
        "targets": TARGETS,
        "meets_targets": {
            "rule_backtests_per_s": rule["backtests_per_s"] >= TARGETS["rule_backtests_per_s"],
            "builtin_backtests_per_s":
                builtin["backtests_per_s"] >= TARGETS["builtin_backtests_per_s"],
            "load_50_files_s": loading["cold_s"] <= TARGETS["load_50_files_s"],
            "short_vs_long_seconds": ratio <= 1 + NOISE,
        },
        "cpu_count": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }, indent=2))


if __name__ == "__main__":
    main()

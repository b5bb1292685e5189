"""Sweep benchmark: a 1,000-cell RSI grid on 10 symbols x 2,520 bars (10,000 backtests).

Every cell is computed with full metrics and trades and stored in a fresh Zarr store, end to
end through ``core.sweep.run_sweep``. Prints one JSON object:

- ``warmup_s``: JIT load and first-call costs, paid once per process (reported apart);
- ``local``: end-to-end backtests/s in this process (numba uses every core) and on a local
  process pool, with the compute / store split;
- ``compute_only`` and ``store_only``: the two halves measured alone, to show which one bounds
  the end-to-end rate;
- ``baseline_naive``: the same cells done one by one (``run_backtest`` + ``store_backtest``)
  for a sample, extrapolated to the sweep, measured in this run;
- ``dask``: the same sweep on a 1-worker and a 2-worker ``LocalCluster`` (one thread and one
  numba thread each, so the speed-up is that of adding a worker process):
  the compute speed-up (workers only, nothing stored) and the end-to-end one (stored by the one
  writer in this process), and a cell-for-cell comparison of the stored result with the local one.

Run: ``.venv/bin/python bench/sweep_bench.py`` (one to two minutes on 2 cores).
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.data.demo import DemoProvider  # noqa: E402
from core.data.provider import Provider  # noqa: E402

N_SYMBOLS, N_BARS = 10, 2_520
GRID = {"period": {"start": 5, "stop": 14},  # 10 x 10 x 10 = 1,000 cells
        "oversold": {"start": 16, "stop": 34, "step": 2},
        "overbought": {"start": 62, "stop": 80, "step": 2}}
EXIT_RULES = [{"type": "stop_loss", "pct": 0.05}]
NAIVE_SAMPLE = 50
TARGET = 25_000


class BenchProvider(Provider):
    """The last 2,520 bars of 10 deterministic demo symbols."""

    name = "bench"
    cache_key = "bench"

    def __init__(self):
        self.demo = DemoProvider(count=N_SYMBOLS, years=11)

    def symbols(self) -> list[str]:
        return self.demo.symbols()

    def fetch(self, symbol: str) -> pd.DataFrame:
        return self.demo.fetch(symbol).iloc[-N_BARS:]


def _fresh_store(root: Path, name: str):
    from core.store import open_store

    return open_store(str(root / f"{name}.zarr"), "a")


def _sweep(provider, store, **kwargs):
    from core.sweep import run_sweep

    t0 = time.perf_counter()
    report = run_sweep("rsi_meanrev", GRID, provider.symbols(), EXIT_RULES, store, provider,
                       force=True, **kwargs)
    elapsed = time.perf_counter() - t0
    assert report.n_computed == 10_000, report.summary()
    return {"backend": report.backend, "elapsed_s": round(elapsed, 3),
            "compute_s": round(report.compute_s, 3), "store_s": round(report.store_s, 3),
            "backtests_per_s": round(report.n_computed / elapsed)}


def _best(runs: list[dict]) -> dict:
    return min(runs, key=lambda r: r["elapsed_s"])


def _cells(store) -> pd.DataFrame:
    frame = store.query().drop(columns=["backtest_id", "created_at"])
    for column in ("symbol", "params_hash", "exit_hash"):
        frame[column] = frame[column].astype(str)
    return frame.set_index(["symbol", "params_hash", "exit_hash"]).sort_index()


def _same_cells(a, b) -> bool:
    try:
        pd.testing.assert_frame_equal(_cells(a), _cells(b), check_categorical=False)
    except AssertionError:
        return False
    return True


def warm_up(provider, root: Path) -> float:
    """JIT load / compile and first calls of the engine and the store, timed."""
    from core.sweep import run_sweep

    t0 = time.perf_counter()
    run_sweep("rsi_meanrev", {"period": [5, 6]}, provider.symbols()[:2], EXIT_RULES,
              _fresh_store(root, "warm"), provider, force=True)
    return time.perf_counter() - t0


def local_runs(provider, root: Path, repeats: int = 3) -> dict:
    from core.sweep import shutdown_pools

    inline = [_sweep(provider, _fresh_store(root, f"inline{i}"), workers=1) for i in range(repeats)]
    _sweep(provider, None, workers=2, **{"batch_size": 5_000})  # start the pool (warm-up)
    pool = [_sweep(provider, _fresh_store(root, f"pool{i}"), workers=2, batch_size=5_000)
            for i in range(repeats)]
    shutdown_pools()
    return {"inline": _best(inline), "pool_2_processes": _best(pool)}


def compute_only(provider, repeats: int = 3) -> dict:
    runs = [_sweep(provider, None, workers=1) for _ in range(repeats)]
    return _best(runs)


def store_only(provider, root: Path) -> dict:
    """``store_many`` of the whole 10,000-row batch (with its trades), timed alone."""
    from core.engine import run_many
    from core.sweep import expand_grid

    batch = run_many(provider.load_many(provider.symbols()), "rsi_meanrev",
                     expand_grid("rsi_meanrev", GRID), EXIT_RULES, with_trades=True)
    times = []
    for i in range(3):
        store = _fresh_store(root, f"storeonly{i}")
        t0 = time.perf_counter()
        store.store_many(batch)
        times.append(time.perf_counter() - t0)
    best = min(times)
    return {"rows": len(batch), "trades": len(batch.trades), "elapsed_s": round(best, 3),
            "rows_per_s": round(len(batch) / best)}


def naive_baseline(provider, root: Path) -> dict:
    """One ``run_backtest`` + ``store_backtest`` per cell, for a sample of cells."""
    from core.engine import run_backtest
    from core.sweep import expand_grid

    store = _fresh_store(root, "naive")
    grid = expand_grid("rsi_meanrev", GRID)
    bars = provider.load_many(provider.symbols())
    rng = np.random.default_rng(0)
    picks = [(provider.symbols()[rng.integers(N_SYMBOLS)], grid[rng.integers(len(grid))])
             for _ in range(NAIVE_SAMPLE)]
    t0 = time.perf_counter()
    for symbol, params in picks:
        store.store_backtest(run_backtest(bars[symbol], "rsi_meanrev", params, EXIT_RULES[0],
                                          symbol=symbol))
    per = (time.perf_counter() - t0) / NAIVE_SAMPLE
    return {"sample": NAIVE_SAMPLE, "per_backtest_ms": round(per * 1e3, 3),
            "backtests_per_s": round(1 / per), "extrapolated_10000_s": round(per * 10_000, 1)}


def dask_runs(provider, root: Path, reference) -> dict:
    from distributed import Client, LocalCluster

    out = {}
    for workers in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            started = time.perf_counter() - t0
            one_core = {"scheduler": client, "threads_per_task": 1}  # one core per worker
            _sweep(provider, None, **one_core)  # warm the workers (imports, JIT load)
            compute = _best([_sweep(provider, None, **one_core) for _ in range(2)])
            store = _fresh_store(root, f"dask{workers}")
            run = _sweep(provider, store, **one_core)
            run["compute_only_elapsed_s"] = compute["elapsed_s"]
            run["compute_only_backtests_per_s"] = compute["backtests_per_s"]
            run["cluster_start_s"] = round(started, 2)
            run["identical_to_local"] = _same_cells(store, reference)
            out[f"workers_{workers}"] = run
    one, two = out["workers_1"], out["workers_2"]
    out["speedup_2_vs_1_workers_compute"] = round(one["compute_only_elapsed_s"]
                                                  / two["compute_only_elapsed_s"], 2)
    out["speedup_2_vs_1_workers_end_to_end"] = round(one["elapsed_s"] / two["elapsed_s"], 2)
    return out


def main() -> None:
    import logging

    logging.getLogger("distributed").setLevel(logging.ERROR)
    provider = BenchProvider()
    with tempfile.TemporaryDirectory(prefix="sweep_bench_") as tmp:
        root = Path(tmp)
        warm = warm_up(provider, root)
        local = local_runs(provider, root)
        compute = compute_only(provider)
        stored = store_only(provider, root)
        naive = naive_baseline(provider, root)
        best = max(local.values(), key=lambda r: r["backtests_per_s"])
        dask = dask_runs(provider, root, _fresh_reference(provider, root))
    result = {
        "workload": {"strategy": "rsi_meanrev", "cells": 1_000, "symbols": N_SYMBOLS,
                     "bars": N_BARS, "backtests": 10_000, "exit_rule": EXIT_RULES[0],
                     "stored": "full metrics + trades per cell; equity recomputed on demand"},
        "cpu_count": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "warmup_s": round(warm, 3),
        "local": local,
        "compute_only": compute,
        "store_only": stored,
        "baseline_naive": naive,
        "end_to_end_backtests_per_s": best["backtests_per_s"],
        "speedup_vs_naive": round(best["backtests_per_s"] / naive["backtests_per_s"], 1),
        "target_backtests_per_s": TARGET,
        "meets_target": best["backtests_per_s"] >= TARGET,
        "dask_local_cluster": dask,
    }
    print(json.dumps(result, indent=2))


def _fresh_reference(provider, root: Path):
    store = _fresh_store(root, "reference")
    _sweep(provider, store, workers=1)
    return store


if __name__ == "__main__":
    main()

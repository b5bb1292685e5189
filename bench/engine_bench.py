"""Engine benchmark: prints one JSON object.

Workload (the issue's): RSI mean reversion, 936-cell grid (period 5..30 x oversold 20..40 step 4
x overbought 60..80 step 4) on 10 symbols x 2,520 synthetic daily bars = 9,360 backtests, every
metric, with a 5 % stop-loss exit, with the signal exit only, and with trade logs (what sweeps
store); the same grid short (``direction="short"``, 5 % stop) alternating with the long one, so
both see the same load. Bars carry their fingerprint in ``attrs`` as data providers deliver
them. Also measured: numba compile time with an empty cache, a fresh process's first backtest
(imports included, disk cache warm), one ``run_backtest`` (p50) long and short, peak RSS of the
whole grid in a clean process, and - when a peers venv with vectorbt exists (env
``PEERS_PYTHON``, default /tmp/peers-venv/bin/python) - vectorbt on the same grid in the same
run.

Usage: ``.venv/bin/python bench/engine_bench.py [--quick]``
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
N_SYMBOLS, N_BARS = 10, 2520
GRID = {"period": list(range(5, 31)), "oversold": list(range(20, 41, 4)),
        "overbought": list(range(60, 81, 4))}
SHORT_GRID = {**GRID, "direction": ["short"]}
STOP = {"type": "stop_loss", "pct": 0.05}
REPORTED_BASELINES = {
    "source": "issue 2, measured on this 2-core machine, same workload",
    "vectorbt_backtests_per_s": 769, "vectorbt_with_5pct_stop_backtests_per_s": 733,
    "vectorbt_peak_memory_gb": 5.7, "vectorbt_jit_compile_s": [9, 29],
    "backtesting_py_backtests_per_s": 30, "backtesting_py_single_backtest_ms": [33, 48],
    "previous_dash_system_backtests_per_s": 23.8,
}


def make_arrays(n_symbols: int = N_SYMBOLS, n_bars: int = N_BARS, seed: int = 42) -> dict:
    """Geometric random walks with consistent OHLC, shape (symbols, bars) per field."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, (n_symbols, n_bars)), axis=1))
    prev = np.concatenate([np.full((n_symbols, 1), 100.0), close[:, :-1]], axis=1)
    open_ = prev * np.exp(rng.normal(0, 0.004, close.shape))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.006, close.shape)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.006, close.shape)))
    return {"open": open_, "high": high, "low": low, "close": close}


def frames(arrays: dict) -> dict:
    """{symbol: bars DataFrame} as a data provider returns them (ns index, symbol attr)."""
    import pandas as pd

    from core.canonical import stamp_fingerprint

    index = pd.bdate_range("2010-01-04", periods=arrays["close"].shape[1], unit="ns")
    out = {}
    for i in range(arrays["close"].shape[0]):
        bars = pd.DataFrame({k: arrays[k][i] for k in ("open", "high", "low", "close")},
                            index=index)
        bars["volume"] = 1e6
        bars.attrs["symbol"] = f"SYM{i}"
        stamp_fingerprint(bars)
        out[f"SYM{i}"] = bars
    return out


def grid_throughput(data: dict, exit_rule, repeats: int, with_trades: bool = False) -> dict:
    """Best-of-``repeats`` wall-clock backtests/s for the full grid, plus CPU seconds."""
    from core.engine import run_many

    run_many(data, "rsi_meanrev", GRID, [exit_rule], with_trades=with_trades)  # warm-up
    best_wall, cpu_at_best, rows = float("inf"), 0.0, 0
    for _ in range(repeats):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        batch = run_many(data, "rsi_meanrev", GRID, [exit_rule], with_trades=with_trades)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall < best_wall:
            best_wall, cpu_at_best, rows = wall, cpu, len(batch)
    return {"backtests": rows, "seconds": round(best_wall, 4),
            "backtests_per_s": round(rows / best_wall),
            "cpu_seconds": round(cpu_at_best, 4),
            "backtests_per_cpu_s": round(rows / cpu_at_best) if cpu_at_best else None}


def long_vs_short(data: dict, repeats: int) -> dict:
    """The grid long and short with the 5 % stop, runs alternating; best of each, the ratio of
    the short run's time to the long run's, and each side's mean exposure and trade count (the
    kernel's work: a bar in the market costs more than a flat one, which is only scanned)."""
    from core.engine import run_many

    best = {"long": float("inf"), "short": float("inf")}
    tables = {}
    for grid in (GRID, SHORT_GRID):
        run_many(data, "rsi_meanrev", grid, [STOP])  # warm-up
    for _ in range(repeats):
        for side, grid in (("long", GRID), ("short", SHORT_GRID)):
            t0 = time.perf_counter()
            tables[side] = run_many(data, "rsi_meanrev", grid, [STOP]).table
            best[side] = min(best[side], time.perf_counter() - t0)
    out = {side: {"backtests": len(tables[side]), "seconds": round(best[side], 4),
                  "backtests_per_s": round(len(tables[side]) / best[side]),
                  "mean_exposure": round(float(tables[side]["exposure"].mean()), 4),
                  "mean_trades": round(float(tables[side]["num_trades"].mean()), 2)}
           for side in best}
    out["short_time_over_long_time"] = round(best["short"] / best["long"], 3)
    return out


def single_backtest_ms(bars, repeats: int = 400, params: dict | None = None) -> float:
    from core.engine import run_backtest

    params = params or {"period": 14}
    for _ in range(20):
        run_backtest(bars, "rsi_meanrev", params, STOP)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run_backtest(bars, "rsi_meanrev", params, STOP)
        times.append(time.perf_counter() - t0)
    return round(float(np.median(times)) * 1e3, 3)


# --- subprocess measurements ----------------------------------------------------------------

_FIRST_BACKTEST = """
import time; t0 = time.perf_counter()
import sys, json, numpy as np, pandas as pd
sys.path.insert(0, {root!r})
a = np.load({npz!r})
bars = pd.DataFrame({{k: a[k][0] for k in ("open", "high", "low", "close")}},
                    index=pd.bdate_range("2010-01-04", periods=a["close"].shape[1], unit="ns"))
bars["volume"] = 1e6
from core.engine import run_backtest
r = run_backtest(bars, "rsi_meanrev", {{"period": 14}}, {{"type": "stop_loss", "pct": 0.05}})
first = time.perf_counter() - t0
mods = [m for m in ("zarr", "streamlit") if m in sys.modules]
extra = {{}}
if {with_grid}:
    from core.engine import run_many
    t1 = time.perf_counter()
    run_many({{"A": bars}}, "rsi_meanrev", {{"period": [5, 6]}}, [None])
    extra["first_run_many_s"] = time.perf_counter() - t1
print(json.dumps({{"first_backtest_s": first, "heavy_modules": mods, **extra}}))
"""

_PEAK_MEMORY = """
import sys, json, resource, time
sys.path.insert(0, {root!r}); sys.path.insert(0, {bench!r})
import numpy as np
from engine_bench import GRID, STOP, frames
from core.engine import run_many
a = dict(np.load({npz!r}))
data = frames(a)
t0 = time.perf_counter()
batch = run_many(data, "rsi_meanrev", GRID, [STOP])
seconds = time.perf_counter() - t0
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(json.dumps({{"getrusage_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "vmhwm_mb": int(hwm) / 1024, "rows": len(batch),
                  "seconds_incl_first_call": seconds}}))
"""

_VECTORBT = """
import json, sys, time, resource
import numpy as np, pandas as pd
t_import = time.perf_counter()
import vectorbt as vbt
t_import = time.perf_counter() - t_import
a = np.load(sys.argv[1])
index = pd.bdate_range("2010-01-04", periods=a["close"].shape[1])
cols = [f"SYM{i}" for i in range(a["close"].shape[0])]
frame = lambda k: pd.DataFrame(a[k].T, index=index, columns=cols)
close, open_, high, low = frame("close"), frame("open"), frame("high"), frame("low")
periods, lows, highs = list(range(5, 31)), list(range(20, 41, 4)), list(range(60, 81, 4))

def run(sl_stop):
    # RSI per (period, symbol); crossings per level; the product grid as 9,360 columns.
    rsi = vbt.RSI.run(close, window=periods).rsi.to_numpy().reshape(len(index), len(periods), len(cols))
    prev = np.vstack([np.full((1,) + rsi.shape[1:], np.nan), rsi[:-1]])
    lo = np.array(lows, float)[:, None, None, None]
    hi = np.array(highs, float)[:, None, None, None]
    ent = ((prev[None] >= lo) & (rsi[None] < lo))          # (6, bars, 26, 10)
    ext = ((prev[None] <= hi) & (rsi[None] > hi))
    ent = np.broadcast_to(ent[:, None], (6, 6) + ent.shape[1:])
    ext = np.broadcast_to(ext[None, :], (6, 6) + ext.shape[1:])
    to_cols = lambda x: np.moveaxis(x, 2, 0).reshape(len(index), -1)
    ent, ext = to_cols(ent), to_cols(ext)
    # signal on bar t's close, filled at bar t+1's open
    ent = np.vstack([np.zeros((1, ent.shape[1]), bool), ent[:-1]])
    ext = np.vstack([np.zeros((1, ext.shape[1]), bool), ext[:-1]])
    reps = ent.shape[1] // len(cols)
    tile = lambda df: np.tile(df.to_numpy(), (1, reps))
    kw = dict(price=tile(open_), open=tile(open_), high=tile(high), low=tile(low),
              init_cash=100_000, freq="1D")
    if sl_stop:
        kw["sl_stop"] = sl_stop
    pf = vbt.Portfolio.from_signals(tile(close), ent, ext, **kw)
    out = (pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown(), pf.trades.win_rate())
    return ent.shape[1]

t0 = time.perf_counter(); run(0.05); first = time.perf_counter() - t0
res = {"version": vbt.__version__, "import_s": t_import, "first_call_s_incl_jit": first}
for name, stop in (("with_5pct_stop", 0.05), ("signal_only", None)):
    t0 = time.perf_counter(); n = run(stop); s = time.perf_counter() - t0
    res[name] = {"backtests": n, "seconds": s, "backtests_per_s": n / s}
res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(res))
"""


def _python_json(args: list[str], env: dict | None = None, timeout: int = 900) -> tuple[dict, float]:
    t0 = time.perf_counter()
    out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=timeout,
                         cwd=ROOT)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    return json.loads(out.stdout.strip().splitlines()[-1]), wall


def compile_and_start(npz: str) -> dict:
    """Cold compile (empty numba cache dir) and a fresh process's first backtest (warm cache)."""
    script = _FIRST_BACKTEST.format(root=str(ROOT), npz=npz, with_grid=True)
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        cold, cold_wall = _python_json([sys.executable, "-c", script], env)
    _python_json([sys.executable, "-c", script])  # make sure the default disk cache is warm
    script = _FIRST_BACKTEST.format(root=str(ROOT), npz=npz, with_grid=False)
    warm = [_python_json([sys.executable, "-c", script]) for _ in range(3)]
    best = min(warm, key=lambda w: w[0]["first_backtest_s"])
    return {
        "compile_cold_cache_first_backtest_s": round(cold["first_backtest_s"], 3),
        "compile_cold_cache_first_run_many_s": round(cold["first_run_many_s"], 3),
        "fresh_process_first_backtest_s": round(best[0]["first_backtest_s"], 3),
        "fresh_process_wall_s_incl_interpreter": round(best[1], 3),
        "fresh_process_heavy_modules": best[0]["heavy_modules"],
    }


def peak_memory(npz: str) -> dict:
    """Peak RSS of a clean process that runs the whole grid.

    Run before this process grows: on Linux a child started by vfork+exec inherits its
    parent's peak in ``getrusage`` ``ru_maxrss``; ``VmHWM`` is the child's own peak.
    """
    script = _PEAK_MEMORY.format(root=str(ROOT), bench=str(ROOT / "bench"), npz=npz)
    result, _ = _python_json([sys.executable, "-c", script])
    return {"peak_rss_mb": round(result["getrusage_maxrss_mb"], 1),
            "peak_rss_vmhwm_mb": round(result["vmhwm_mb"], 1), "rows": result["rows"]}


def vectorbt(npz: str, ours_per_s: dict) -> dict:
    python = os.environ.get("PEERS_PYTHON", "/tmp/peers-venv/bin/python")
    if not Path(python).exists():
        return {"measured": False, "reason": f"no peers venv at {python} (set PEERS_PYTHON)"}
    try:
        result, _ = _python_json([python, "-c", _VECTORBT, npz], timeout=1800)
    except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as exc:
        return {"measured": False, "reason": f"vectorbt run failed: {exc}"}
    result["measured"] = True
    result["our_speedup"] = {
        name: round(ours_per_s[name] / result[name]["backtests_per_s"], 1)
        for name in ("with_5pct_stop", "signal_only")
    }
    return result


def main() -> None:
    quick = "--quick" in sys.argv
    sys.path.insert(0, str(ROOT))
    arrays = make_arrays()
    with tempfile.TemporaryDirectory() as tmp:
        npz = str(Path(tmp) / "bars.npz")
        np.savez(npz, **arrays)
        start = compile_and_start(npz)
        memory = peak_memory(npz)
        load_before = os.getloadavg()
        data = frames(arrays)
        repeats = 2 if quick else 7
        stop = grid_throughput(data, STOP, repeats)
        signal = grid_throughput(data, None, repeats)
        trades = grid_throughput(data, STOP, max(2, repeats // 2), with_trades=True)
        sides = long_vs_short(data, repeats)
        bars = data["SYM0"]
        provider_ms = single_backtest_ms(bars)  # fingerprint in attrs, as providers deliver
        short_ms = single_backtest_ms(bars, params={"period": 14, "direction": "short"})
        del bars.attrs["fingerprint"]
        plain_ms = single_backtest_ms(bars)
        load_after = os.getloadavg()
        ours = {"with_5pct_stop": stop["backtests_per_s"], "signal_only": signal["backtests_per_s"]}
        peers = {"measured": False, "reason": "skipped (--quick)"} if quick else vectorbt(npz, ours)
    import numba

    print(json.dumps({
        "workload": f"rsi_meanrev 936-cell grid x {N_SYMBOLS} symbols x {N_BARS} bars, "
                    "all 14 metrics per backtest",
        "threads": numba.get_num_threads(),
        "grid_with_5pct_stop": stop,
        "grid_signal_exit_only": signal,
        "grid_with_5pct_stop_and_trade_logs": trades,
        "grid_with_5pct_stop_long_vs_short": sides,
        **start,
        "single_run_backtest_ms_p50": provider_ms,
        "single_run_short_backtest_ms_p50": short_ms,
        "single_run_backtest_ms_p50_fingerprint_computed": plain_ms,
        **memory,
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "vectorbt": peers,
        "reported_baselines": REPORTED_BASELINES,
    }, indent=2))


if __name__ == "__main__":
    main()

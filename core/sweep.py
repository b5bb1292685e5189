"""Parameter sweeps: grids over params x symbols x exit rules, stored cell by cell, and read-outs.

A grid is counted arithmetically before anything is allocated and refused above a cap
(``GridTooLargeError`` names the count and the cap). Cells already stored with the same params,
exit rule, costs, settings and data fingerprint are skipped unless ``force``. The engine's
``run_many`` computes per-symbol chunks in this process, on a local process pool, or on Dask
workers; every result comes back to this one process, which writes it with
``store.store_many`` in batches (one writer, so the store's guarantees hold).

Sweep cells are stored with full metrics and trades but without equity curves; those are
recomputed on demand by ``core.details.load_details`` while the data fingerprint still matches.

Read-outs over stored cells (or any DataFrame shaped like ``store.query``): ``heatmap_data``,
``stability_score``, ``top_configurations`` and ``universe_view``.
"""
from __future__ import annotations

import itertools
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any

import numpy as np
import pandas as pd

from core.canonical import (fingerprint_of, flat_params_json, hash_of_json,
                            stable_hash)
from core.errors import GridTooLargeError, ParamError, ValidationError, did_you_mean
from core.scope import bars_scope_parts, make_scope, scope_hash

#: Below this many cells a sweep runs in this process (a pool costs more than it saves).
INLINE_MAX_CELLS = 4_000
#: At most this many cells per engine call (bounds the memory of one result batch).
MAX_TASK_CELLS = 50_000
#: Tasks per worker (a little over-splitting balances the load and overlaps the writes).
TASKS_PER_WORKER = 2
DEFAULT_BATCH_SIZE = 20_000
#: Grid sizes above this are printed as "more than 10^12" (a 300-digit count helps no one).
MAX_PRINTED_CELLS = 10**12
#: How long to try to reach a Dask scheduler given by address.
DASK_CONNECT_TIMEOUT = "10s"

Progress = Callable[[int, int], None]  # (cells done, cells total)


# ---------------------------------------------------------------------------------------------
# grid specification
# ---------------------------------------------------------------------------------------------


def _range_length(name: str, spec: Mapping[str, Any]) -> int:
    """Number of values of ``{"start", "stop", "step"}`` (stop inclusive), validated."""
    missing = [k for k in ("start", "stop") if k not in spec]
    extra = sorted(set(spec) - {"start", "stop", "step"})
    if missing or extra:
        raise ParamError(
            f"Range for {name!r} must have keys start, stop and optional step; "
            f"got {sorted(spec)}. Example: {{\"start\": 5, \"stop\": 30, \"step\": 5}}."
        )
    start, stop, step = spec["start"], spec["stop"], spec.get("step", 1)
    for key, value in (("start", start), ("stop", stop), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
            raise ParamError(f"Range for {name!r}: {key} must be a finite number, got {value!r}.")
    if step <= 0:
        raise ParamError(f"Range for {name!r}: step must be > 0, got {step!r}.")
    if stop < start:
        raise ParamError(
            f"Range for {name!r}: stop ({stop!r}) is below start ({start!r}). Swap them."
        )
    steps = (stop - start) / step
    if not math.isfinite(steps):
        raise ParamError(
            f"Range for {name!r} has too many values to count (start {start!r}, stop {stop!r}, "
            f"step {step!r}). Narrow the range or take a larger step."
        )
    return int(math.floor(steps + 1e-9)) + 1


def _axis_length(name: str, spec: Any) -> int:
    """Values on one grid axis: a list, a range dict, or one scalar (a fixed value)."""
    if isinstance(spec, Mapping):
        return _range_length(name, spec)
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ParamError(f"Values for {name!r} are an empty list. Give at least one value.")
        return len(spec)
    return 1


def _axis_values(name: str, spec: Any) -> list:
    """The raw values of one axis, in order (a range is expanded, stop inclusive)."""
    if isinstance(spec, Mapping):
        count = _range_length(name, spec)
        start, step = spec["start"], spec.get("step", 1)
        if all(isinstance(v, Integral) for v in (start, step)):
            return [int(start) + i * int(step) for i in range(count)]
        return [round(start + i * step, 10) for i in range(count)]
    if isinstance(spec, (list, tuple)):
        _axis_length(name, spec)
        return list(spec)
    return [spec]


def _count(values: Iterable[Any], what: str) -> int:
    """How many symbols / exit rules: a count as is, None or one name/rule is 1."""
    if isinstance(values, Integral) and not isinstance(values, bool):
        return values
    if values is None:
        return 1
    if isinstance(values, (str, Mapping)):
        return 1
    n = len(list(values))
    if n == 0:
        raise ValidationError(f"No {what} given. Give at least one.")
    return n


def count_grid(param_ranges: Mapping[str, Any] | None, symbols: Any = 1, exit_rules: Any = None) -> int:
    """Cells of params x symbols x exit rules, computed from the specs without expanding them.

    ``symbols`` and ``exit_rules`` may be sequences or counts; ``exit_rules=None`` is one rule
    (the strategy's own exit), a single dict is one rule.
    """
    if param_ranges is not None and not isinstance(param_ranges, Mapping):
        raise ParamError(
            f"Param ranges must be a mapping param -> values, got {param_ranges!r}."
        )
    n_params = math.prod(_axis_length(k, v) for k, v in (param_ranges or {}).items())
    n_rules = 1 if exit_rules is None or isinstance(exit_rules, Mapping) else _count(exit_rules, "exit rules")
    return n_params * _count(symbols, "symbols") * n_rules


#: Values one range axis may list (a sampled sweep still lists each axis).
MAX_AXIS_VALUES = 1_000_000


def grid_size_text(cells: int) -> str:
    """A cell count for messages: ``"1,347,300"``, or ``"more than 10^12"`` above that."""
    return f"{cells:,}" if cells <= MAX_PRINTED_CELLS else "more than 10^12"


def check_grid_size(cells: int, cap: int, detail: str = "") -> None:
    """Raise ``GridTooLargeError`` with the count and the cap when ``cells > cap``.

    ``detail`` (e.g. `` (12 param combinations x 3 symbols x 1 exit rules)``) follows the
    count; above ``MAX_PRINTED_CELLS`` the count is printed as "more than 10^12" and the detail,
    whose factors may be as long, is left out.
    """
    if cells > cap:
        size = (f"{cells:,} cells{detail}, more than" if cells <= MAX_PRINTED_CELLS
                else "more than 10^12 cells (a range stop or step typo?), far beyond")
        raise GridTooLargeError(
            f"The sweep has {size} the cap of {cap:,}. Narrow the ranges, sample with max_tries "
            f"(--max-tries N), or raise max_grid_cells (HINDSIGHT_MAX_GRID_CELLS)."
        )


def _check_axis_length(name: str, values: int) -> None:
    """Refuse an axis too long to list (even a sampled sweep lists every axis's values)."""
    if values > MAX_AXIS_VALUES:
        raise GridTooLargeError(
            f"Param {name!r} has {grid_size_text(values)} values in its range; one axis may "
            f"have at most {MAX_AXIS_VALUES:,}. Narrow its start, stop or step.")


def _grid_axes(strategy, param_ranges: Mapping[str, Any] | None) -> dict[str, list]:
    """Every strategy param as an axis of typed, range-checked values (unset -> default)."""
    ranges = dict(param_ranges or {})
    known = strategy.param_names
    for name in ranges:
        if name not in known:
            raise ParamError(f"{strategy.name} has no parameter {name!r}.{did_you_mean(name, known)}")
    axes = {}
    for p in strategy.params:
        if p.name in ranges:
            _check_axis_length(p.name, _axis_length(p.name, ranges[p.name]))
        raw = _axis_values(p.name, ranges[p.name]) if p.name in ranges else [p.default]
        typed = [p.coerce(v, strategy.name) for v in raw]
        axes[p.name] = list(dict.fromkeys(typed))  # drop duplicates, keep order
    return axes


def _valid_combos(strategy, combos: Iterable[tuple], names: Sequence[str]) -> tuple[list[dict], int]:
    """Validated param dicts of the combos that pass the strategy's cross-param check."""
    from core.strategies import validate_params

    out, invalid = [], 0
    for combo in combos:
        try:
            out.append(validate_params(strategy, dict(zip(names, combo))))
        except ParamError:  # values are range-checked already: only cross-param rules fail here
            invalid += 1
    return out, invalid


def expand_grid(strategy: Any, param_ranges: Mapping[str, Any] | None) -> list[dict]:
    """Every valid param combination of the grid, validated, in grid order.

    Ranges are lists, ``{"start", "stop", "step"}`` (stop inclusive) or a fixed scalar; params
    not given take their defaults. Out-of-range or mistyped values raise ``ParamError``;
    combinations that break a cross-param rule (e.g. oversold >= overbought) are left out.
    """
    combos, _ = expand_or_sample(strategy, param_ranges)
    return combos


def expand_or_sample(strategy: Any, param_ranges, max_tries: int | None = None, seed: int = 0):
    """(valid combos, number left out as invalid); sampled when ``max_tries`` < grid size."""
    from core.strategies import get_strategy

    strat = get_strategy(strategy)
    axes = _grid_axes(strat, param_ranges)
    names = list(axes)
    sizes = [len(axes[n]) for n in names]
    total = math.prod(sizes)
    if max_tries is not None and max_tries < total:
        picks = sorted(random.Random(seed).sample(range(total), max_tries))
        combos = (_decode(i, sizes, axes, names) for i in picks)
    else:
        combos = itertools.product(*(axes[n] for n in names))
    return _valid_combos(strat, combos, names)


def _decode(index: int, sizes: Sequence[int], axes: Mapping[str, list], names: Sequence[str]):
    """The combo at position ``index`` of the grid in ``itertools.product`` order."""
    out = []
    for size, name in zip(reversed(sizes), reversed(names)):
        index, pos = divmod(index, size)
        out.append(axes[name][pos])
    return tuple(reversed(out))


def exit_rule_list(exit_rules: Any) -> list[list[dict]]:
    """Canonical, de-duplicated exit rules; a dict or None is one rule, a list of rules many."""
    from core.exits import canonical_exit_rule

    if exit_rules is None or isinstance(exit_rules, Mapping):
        exit_rules = [exit_rules]
    if not isinstance(exit_rules, (list, tuple)) or not exit_rules:
        raise ValidationError(
            f"exit_rules must be a list of exit rules, got {exit_rules!r}. "
            "Example: [{\"type\": \"stop_loss\", \"pct\": 0.05}, null]."
        )
    rules = {}
    for rule in exit_rules:
        canon = canonical_exit_rule(rule)
        rules.setdefault(stable_hash(canon), canon)
    return list(rules.values())


# ---------------------------------------------------------------------------------------------
# running a sweep
# ---------------------------------------------------------------------------------------------


@dataclass
class SweepReport:
    """What a sweep did: grid size, cells skipped / computed / stored, where, how fast."""

    strategy: str
    n_params: int
    n_symbols: int
    n_exit_rules: int
    n_cells: int
    n_skipped: int = 0
    n_computed: int = 0
    n_stored: int = 0
    n_invalid: int = 0  # param combinations left out by a cross-param rule
    sampled: bool = False
    backend: str = "inline"
    elapsed_s: float = 0.0
    compute_s: float = 0.0
    store_s: float = 0.0
    symbols: list[str] = field(default_factory=list)
    #: Symbols left out because their data could not be loaded: {"symbol", "error"} dicts.
    skipped: list[dict[str, str]] = field(default_factory=list)

    @property
    def backtests_per_s(self) -> float:
        return self.n_computed / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "symbols"}
        out["backtests_per_s"] = round(self.backtests_per_s, 1) if self.n_computed else None
        for key in ("elapsed_s", "compute_s", "store_s"):
            out[key] = round(out[key], 3)
        return out


@dataclass(frozen=True)
class _Task:
    """One unit of work: symbols x param dicts x exit rules (one ``run_many`` call)."""

    symbols: tuple
    params: list
    rules: list
    run_kwargs: dict
    threads: int = 0  # numba threads for this task; 0 = numba's default (every core)


def _compute_task(task: _Task, bars: Mapping[str, pd.DataFrame]):
    """Run one task with the engine (in this process, a pool worker or a Dask worker).

    Top level, so that it pickles for a process pool and for Dask (which resolves the
    scattered bars inside ``bars`` before the call).
    """
    from core.engine import run_many

    if task.threads:
        import numba

        numba.set_num_threads(min(task.threads, numba.config.NUMBA_NUM_THREADS))
    kwargs = dict(task.run_kwargs)
    strategy = kwargs.pop("strategy")
    return run_many({s: bars[s] for s in task.symbols}, strategy, task.params, task.rules,
                    with_trades=True, **kwargs)


_POOL: dict[int, Any] = {}


def _local_pool(workers: int):
    """A process pool kept for the life of this process (its start-up is paid once)."""
    pool = _POOL.get(workers)
    if pool is None:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_end_with_parent,
                                   initargs=(os.getpid(),))
        _POOL[workers] = pool
    return pool


#: Seconds between checks that the sweep process still lives, where it cannot be awaited.
PARENT_POLL_S = 0.5
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _end_with_parent(parent: int) -> None:
    """Pool worker initializer: this worker ends as soon as the process ``parent`` ends.

    With the forkserver start method a worker's parent is the fork server, which itself waits
    for its workers, so a killed sweep would leave both running for good. Each worker therefore
    watches the sweep process in a daemon thread (Linux: a pidfd that turns readable when it
    ends; elsewhere polling) and, on Linux, also asks the kernel for SIGKILL when its own parent
    dies (``PR_SET_PDEATHSIG``), which covers the spawn and fork start methods instantly.
    """
    import threading

    _set_parent_death_signal()
    threading.Thread(target=_watch_parent, args=(parent,), name="hindsight-parent-watch",
                     daemon=True).start()


def _set_parent_death_signal() -> None:
    """Linux: SIGKILL this process when the thread that forked it ends (no-op elsewhere)."""
    import sys

    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # no prctl in this libc: the watcher thread remains
        pass


def _watch_parent(parent: int) -> None:
    """Return only to end this process: block until ``parent`` is gone, then exit at once."""
    import select

    try:
        handle = os.pidfd_open(parent)
    except ProcessLookupError:
        os._exit(1)
    except (AttributeError, OSError):  # not Linux (or an old kernel): poll instead
        while _alive(parent):
            time.sleep(PARENT_POLL_S)
        os._exit(1)
    waiter = select.poll()  # poll, not select: a pidfd may be numbered above FD_SETSIZE
    waiter.register(handle, select.POLLIN)
    while not waiter.poll():
        pass
    os._exit(1)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (POSIX: signal 0; Windows: it is still our parent)."""
    if os.name != "posix":
        return os.getppid() == pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def shutdown_pools() -> None:
    """Stop the local worker processes (they are also stopped at interpreter exit)."""
    while _POOL:
        _, pool = _POOL.popitem()
        pool.shutdown(cancel_futures=True)


class _StoredCells:
    """What the store holds for a strategy's cells, to decide which cells to skip.

    A stored cell counts as done when the latest backtest of its identity (key, scope and
    strategy definition) ran on the same data (fingerprint) with the same engine version.
    """

    def __init__(self, store, strategy: str, symbols: Sequence[str]):
        from core.strategies import current_definition

        self.default_source = store.default_scope["source"]
        frame = store.query(strategy=strategy, symbol=list(symbols), scope="all")
        frame = frame[frame["definition"].astype(object) == current_definition(strategy)]
        columns = [frame[c].astype(object).astype(str).tolist() for c in
                   ("symbol", "params_hash", "exit_hash", "scope_hash", "data_fingerprint",
                    "engine_version")]
        self.rows = {(s, p, e, c): (f, v) for s, p, e, c, f, v in zip(*columns)}

    def is_done(self, symbol: str, params_hash: str, exit_hash: str, wanted: dict[str, Any]
                ) -> bool:
        have = self.rows.get((symbol, params_hash, exit_hash, wanted["scope_hash"]))
        return have == (wanted["data_fingerprint"], wanted["engine_version"])


def _wanted_identity(frame: pd.DataFrame, run_kwargs: dict, default_source: str
                     ) -> dict[str, Any]:
    """The identity a stored cell must have to be skipped: the scope the engine will record
    for these bars and settings, the bars' fingerprint and this engine's version."""
    from core.engine import ENGINE_VERSION

    source, window = bars_scope_parts(frame)
    settings = {"whole_shares": run_kwargs["whole_shares"],
                "stop_on_entry_bar": run_kwargs["stop_on_entry_bar"]}
    if run_kwargs.get("periods_per_year") is not None:
        settings["periods_per_year"] = run_kwargs["periods_per_year"]
    scope = make_scope(source or default_source, window, run_kwargs.get("costs"),
                       run_kwargs["initial_capital"], settings)
    return {"scope_hash": scope_hash(scope), "data_fingerprint": fingerprint_of(frame),
            "engine_version": ENGINE_VERSION}


def _plan_cells(bars: Mapping[str, pd.DataFrame], param_grid: list[dict], rules: list[list],
                stored: _StoredCells | None, run_kwargs: dict) -> tuple[dict, int]:
    """Cells not already stored identically, as buckets ``(param idx, rule idx) -> symbols``.

    Symbols needing the same cells share a bucket, so they share engine calls (the engine sets
    a grid up once per call). Returns (buckets, cells skipped).
    """
    params_hashes = [hash_of_json(flat_params_json(p)) for p in param_grid]  # validated, flat
    exit_hashes = [stable_hash(r) for r in rules]
    buckets: dict[tuple, list[str]] = {}
    skipped = 0
    full = (tuple(range(len(param_grid))), tuple(range(len(rules))))
    for symbol, frame in bars.items():
        wanted = stored and _wanted_identity(frame, run_kwargs, stored.default_source)
        missing = {}
        for r, eh in enumerate(exit_hashes):
            todo = tuple(i for i, ph in enumerate(params_hashes) if stored is None
                         or not stored.is_done(symbol, ph, eh, wanted))
            skipped += len(param_grid) - len(todo)
            if todo:
                missing[r] = todo
        if len(missing) == len(rules) and all(len(t) == len(param_grid) for t in missing.values()):
            buckets.setdefault(full, []).append(symbol)
        else:
            for r, todo in missing.items():
                buckets.setdefault((todo, (r,)), []).append(symbol)
    return buckets, skipped


def _tasks(buckets: dict, param_grid: list[dict], rules: list[list], run_kwargs: dict,
           workers: int, threads: int = 0) -> list[_Task]:
    """Split each bucket into tasks: about TASKS_PER_WORKER per worker, <= MAX_TASK_CELLS each.

    ``threads``: numba threads per task (0 = every core, for a single in-process worker).
    """
    tasks = []
    for (param_idx, rule_idx), symbols in buckets.items():
        params = [param_grid[i] for i in param_idx]
        chosen = [rules[i] for i in rule_idx]
        cells = len(symbols) * len(params) * len(chosen)
        chunks = max(-(-cells // MAX_TASK_CELLS), 1 if workers <= 1 else workers * TASKS_PER_WORKER)
        tasks += _split(symbols, params, chosen, run_kwargs, chunks, threads)
    return tasks


def _split(symbols: list[str], params: list[dict], rules: list, run_kwargs: dict,
           chunks: int, threads: int) -> list[_Task]:
    """About ``chunks`` tasks: symbol groups first, then param slices when symbols run out."""
    n_sym = min(len(symbols), chunks)
    per_sym = -(-len(symbols) // n_sym)
    n_par = min(len(params), -(-chunks // n_sym))
    per_par = -(-len(params) // n_par)
    return [
        _Task(tuple(symbols[i:i + per_sym]), params[j:j + per_par], rules, run_kwargs, threads)
        for i in range(0, len(symbols), per_sym)
        for j in range(0, len(params), per_par)
    ]


class _Writer:
    """Collects batches from the workers and writes them with ``store_many`` in batches."""

    def __init__(self, store, batch_size: int, total: int, progress: Progress | None):
        self.store, self.batch_size, self.total, self.progress = store, batch_size, total, progress
        self.pending: list = []
        self.pending_rows = 0
        self.done = 0
        self.stored = 0
        self.store_s = 0.0

    def add(self, batch) -> None:
        self.pending.append(batch)
        self.pending_rows += len(batch)
        self.done += len(batch)
        if self.pending_rows >= self.batch_size:
            self.flush()
        elif self.progress is not None:
            self.progress(self.done, self.total)

    def flush(self) -> None:
        if self.pending:
            t0 = time.perf_counter()
            if self.store is not None:
                self.store.store_many(concat_batches(self.pending))
            self.store_s += time.perf_counter() - t0
            self.stored += self.pending_rows
            self.pending, self.pending_rows = [], 0
        if self.progress is not None:
            self.progress(self.done, self.total)


def concat_batches(batches: Sequence[Any]):
    """One ``BatchResult`` from several, trade ``row`` numbers shifted to the joined table."""
    from core.types import BatchResult

    if len(batches) == 1:
        return batches[0]
    tables, trades, offset = [], [], 0
    for batch in batches:
        tables.append(batch.table)
        if batch.trades is not None and len(batch.trades):
            shifted = batch.trades.copy()
            shifted["row"] = shifted["row"].to_numpy() + offset
            trades.append(shifted)
        offset += len(batch.table)
    table = pd.concat(tables, ignore_index=True)
    joined = pd.concat(trades, ignore_index=True) if trades else None
    if joined is None and any(b.trades is not None for b in batches):
        joined = next(b.trades for b in batches if b.trades is not None).iloc[0:0]
    return BatchResult(table=table, trades=joined)


def _task_bars(task: _Task, bars: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {s: bars[s] for s in task.symbols}


def _run_inline(tasks, bars, writer) -> None:
    for task in tasks:
        writer.add(_compute_task(task, bars))


def _run_pool(tasks, bars, writer, workers: int) -> None:
    from concurrent.futures import as_completed

    from concurrent.futures.process import BrokenProcessPool

    pool = _local_pool(workers)
    futures = [pool.submit(_compute_task, task, _task_bars(task, bars)) for task in tasks]
    try:
        for future in as_completed(futures):
            writer.add(future.result())
    except BrokenProcessPool:
        _POOL.pop(workers, None)  # a worker died: the next sweep starts a fresh pool
        raise
    finally:
        for future in futures:
            future.cancel()


def _dask_client(scheduler):
    """(client, whether we opened it): an address is connected to, a Client used as is."""
    from distributed import Client

    if isinstance(scheduler, Client):
        return scheduler, False
    if not isinstance(scheduler, str) or not scheduler.strip():
        raise ValidationError(
            f"scheduler must be a Dask address like 'tcp://host:8786' or a distributed.Client, "
            f"got {scheduler!r}."
        )
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT), True
    except (OSError, TimeoutError) as exc:
        from core.errors import HindsightError

        raise HindsightError(
            f"Cannot reach the Dask scheduler at {scheduler!r} ({exc}). Start it with "
            "`dask scheduler` and workers with `dask worker <address>`, or drop --scheduler."
        ) from None


def _dask_threads(client) -> int:
    """Numba threads per task so that the cluster's task slots share each host's cores."""
    from collections import Counter
    from urllib.parse import urlparse

    workers = client.scheduler_info().get("workers", {})
    cpus = client.run(os.cpu_count)
    slots = Counter()
    for address, info in workers.items():
        slots[urlparse(address).hostname] += int(info.get("nthreads", 1))
    per_host = [cpus[a] // slots[urlparse(a).hostname] for a in workers if a in cpus]
    return max(1, min(per_host, default=1))


def _run_dask(tasks, bars, writer, client) -> None:
    """Compute on a dask.distributed cluster; results stream back to this process's writer."""
    from distributed import as_completed

    shared = {s: client.scatter(frame) for s, frame in bars.items()}
    futures = [client.submit(_compute_task, task, {s: shared[s] for s in task.symbols},
                             pure=False) for task in tasks]
    for future in as_completed(futures):
        writer.add(future.result())
        future.release()


def _local_workers(cells: int, workers: int | None) -> int:
    """Local processes to use: 1 (in-process) for small sweeps, else ``workers`` or CPU count."""
    workers = workers if workers is not None else (os.cpu_count() or 1)
    return 1 if workers <= 1 or cells <= INLINE_MAX_CELLS else workers


def run_sweep(
    strategy: str,
    param_ranges: Mapping[str, Any] | None,
    symbols: Sequence[str],
    exit_rules: Any,
    store,
    provider,
    *,
    force: bool = False,
    scheduler: Any = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    max_cells: int | None = None,
    max_tries: int | None = None,
    seed: int = 0,
    workers: int | None = None,
    threads_per_task: int | None = None,
    costs: Mapping[str, float] | None = None,
    initial_capital: float = 100_000.0,
    whole_shares: bool = False,
    stop_on_entry_bar: bool = True,
    start: Any = None,
    end: Any = None,
    skip_bad_data: bool = False,
) -> SweepReport:
    """Compute and store every cell of a grid (or ``max_tries`` sampled param combinations).

    ``scheduler``: None (this machine: in-process when small, else a process pool of
    ``workers``), a Dask address ``"tcp://host:8786"`` or a ``distributed.Client``.
    ``threads_per_task``: numba threads per engine call (default: every core in-process, one
    per pool process, and each Dask host's cores shared among its task slots).
    ``store=None`` computes without storing (benchmarks). Raises ``GridTooLargeError`` before
    any work when the grid exceeds ``max_cells`` (default: settings ``max_grid_cells``).
    ``skip_bad_data``: a symbol whose data cannot be loaded (a malformed file) is left out and
    listed in ``report.skipped`` instead of stopping the sweep (needs ``provider.load_available``).
    """
    from core.data import validate_symbol
    from core.strategies import get_strategy

    t0 = time.perf_counter()
    strat = get_strategy(strategy)
    symbols = list(dict.fromkeys(validate_symbol(s) for s in symbols))
    if not symbols:
        raise ValidationError("No symbols given for the sweep. Give at least one symbol.")
    rules = exit_rule_list(exit_rules)
    _check_positive("batch_size", batch_size)
    if max_tries is not None:
        _check_positive("max_tries", max_tries)
    n_grid = count_grid(param_ranges, 1, 1)
    n_params = min(n_grid, max_tries) if max_tries else n_grid
    cells = n_params * len(symbols) * len(rules)
    cap = max_cells if max_cells is not None else grid_cap()
    check_grid_size(cells, cap, f" ({n_params:,} param combinations x {len(symbols)} symbols "
                                f"x {len(rules)} exit rules)")
    param_grid, invalid = expand_or_sample(strat, param_ranges, max_tries, seed)
    report = SweepReport(strat.name, len(param_grid), len(symbols), len(rules),
                         len(param_grid) * len(symbols) * len(rules), n_invalid=invalid,
                         sampled=bool(max_tries and max_tries < n_grid), symbols=symbols)
    if not param_grid:
        raise ValidationError(
            f"No valid param combination in the grid for {strat.name}: all {invalid} break a "
            "cross-param rule (e.g. oversold must be below overbought). Adjust the ranges."
        )
    run_kwargs = {"strategy": strat, "costs": dict(costs) if costs else None,  # pickles whole
                  "initial_capital": float(initial_capital), "whole_shares": bool(whole_shares),
                  "stop_on_entry_bar": bool(stop_on_entry_bar)}
    bars = _load_bars(provider, symbols, start, end, skip_bad_data, report)
    stored = None if force or store is None else _StoredCells(store, strat.name, symbols)
    buckets, report.n_skipped = _plan_cells(bars, param_grid, rules, stored, run_kwargs)
    todo = report.n_cells - report.n_skipped
    writer = _Writer(store, batch_size, todo, progress)
    t1 = time.perf_counter()
    if scheduler is not None:
        client, own = _dask_client(scheduler)
        try:
            n_workers = max(1, len(client.scheduler_info().get("workers", {})))
            report.backend = f"dask({n_workers} workers)"
            threads = threads_per_task or _dask_threads(client)
            _run_dask(_tasks(buckets, param_grid, rules, run_kwargs, n_workers, threads), bars,
                      writer, client)
        finally:
            if own:
                client.close()
    else:
        n_workers = _local_workers(todo, workers)
        threads = threads_per_task or (1 if n_workers > 1 else 0)
        tasks = _tasks(buckets, param_grid, rules, run_kwargs, n_workers, threads)
        if n_workers > 1:
            report.backend = f"pool({n_workers} processes)"
            _run_pool(tasks, bars, writer, n_workers)
        else:
            report.backend = "inline"
            _run_inline(tasks, bars, writer)
    writer.flush()
    report.n_computed, report.n_stored = writer.done, writer.stored if store is not None else 0
    report.store_s = writer.store_s
    report.elapsed_s = time.perf_counter() - t0
    report.compute_s = time.perf_counter() - t1 - writer.store_s
    return report


def _load_bars(provider, symbols: list[str], start, end, skip_bad_data: bool,
               report: SweepReport) -> dict[str, pd.DataFrame]:
    """Bars per symbol; with ``skip_bad_data`` the symbols that fail are dropped from ``report``."""
    if not skip_bad_data:
        return provider.load_many(symbols, start, end)
    bars, skipped = provider.load_available(symbols, start, end)
    for symbol, error in _irregular(bars).items():  # the engine could not annualise them
        skipped[symbol] = error
        del bars[symbol]
    if not bars:
        first, *others = skipped.values()
        more = f" ({len(others)} more symbol(s) failed too)" if others else ""
        raise ValidationError(f"No symbol of the sweep could be loaded: {first}{more}")
    if skipped:
        report.skipped = [{"symbol": s, "error": e} for s, e in skipped.items()]
        report.symbols = [s for s in symbols if s in bars]
        report.n_symbols = len(report.symbols)
        report.n_cells = report.n_params * report.n_symbols * report.n_exit_rules
    return bars


def _irregular(bars: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """Symbols whose bars keep no regular clock, with the reason (``core.frequency``)."""
    from core.errors import FrequencyError
    from core.frequency import detect_frequency

    found = {}
    for symbol, frame in bars.items():
        try:
            detect_frequency(frame.index)
        except FrequencyError as exc:
            found[symbol] = f"{symbol}: {exc}"
    return found


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(f"{name} must be a whole number >= 1, got {value!r}.")


def grid_cap() -> int:
    """The configured cap on sweep cells (setting ``max_grid_cells``)."""
    from core.config import load_settings

    return load_settings().max_grid_cells


# ---------------------------------------------------------------------------------------------
# read-outs
# ---------------------------------------------------------------------------------------------


def sweep_frame(source: Any, strategy: str | None = None,
                filters: Mapping[str, Any] | None = None, scope: Any = None) -> pd.DataFrame:
    """Stored cells as a DataFrame (from a store or a DataFrame), filtered.

    ``filters`` maps a column (or a bare param name such as ``period``) to a value or a list
    of accepted values. ``strategy`` may also be given as ``filters["strategy"]``. A store's
    cells are those of ``scope`` (the store's default scope unless given; ``"all"``: every one).
    """
    filters = dict(filters or {})
    strategy = strategy or filters.pop("strategy", None)
    if isinstance(source, pd.DataFrame):
        frame = source
        if strategy is not None and "strategy" in frame.columns:
            frame = frame[frame["strategy"] == strategy]
    else:
        frame = source.query(strategy=strategy, scope=scope)
    frame = _plain_columns(frame)
    if strategy is None and len(frame) and "strategy" in frame.columns:
        found = frame["strategy"].unique()
        if len(found) > 1:
            raise ValidationError(
                f"The cells mix strategies {sorted(found)}; filter on one, e.g. "
                f"filters={{'strategy': {found[0]!r}}}."
            )
    for key, value in filters.items():
        column = _column(frame, key, strategy)
        accepted = value if isinstance(value, (list, tuple, set)) else [value]
        frame = frame[frame[column].isin(list(accepted))]
    return frame.reset_index(drop=True)


_TEXT_COLUMNS = ("symbol", "strategy", "params_json", "exit_json", "params_hash", "exit_hash")


def _plain_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Store tables and engine tables alike: ``params_json``/``exit_json``, text as ``str``."""
    frame = frame.copy(deep=False)
    for json_col, store_col in (("params_json", "params"), ("exit_json", "exit_rule")):
        if json_col not in frame.columns and store_col in frame.columns:
            frame[json_col] = frame[store_col]
    for col in _TEXT_COLUMNS:
        if col in frame.columns:
            frame[col] = frame[col].astype(object).astype(str)
    return frame


def _column(frame: pd.DataFrame, name: str, strategy: str | None) -> str:
    """Resolve a column or bare param name (``period`` -> ``rsi_period``) in ``frame``."""
    if name in frame.columns:
        return name
    if strategy is None and "strategy" in frame.columns and len(frame):
        strategy = str(frame["strategy"].iloc[0])
    if strategy is not None:
        from core.strategies import get_strategy

        prefixed = f"{get_strategy(strategy).prefix}_{name}"
        if prefixed in frame.columns:
            return prefixed
    raise ValidationError(f"Unknown column {name!r}.{did_you_mean(name, map(str, frame.columns))}")


def _guard(frame: pd.DataFrame, metric: str, min_trades: int) -> pd.Series:
    """The metric with cells below ``min_trades`` trades masked to NaN."""
    values = frame[metric].astype(float)
    if min_trades and "num_trades" in frame.columns:
        values = values.where(frame["num_trades"].astype(float) >= min_trades)
    return values


def heatmap_data(source: Any, metric: str, x_param: str, y_param: str,
                 filters: Mapping[str, Any] | None = None, *, strategy: str | None = None,
                 agg: str = "median", min_trades: int = 0) -> pd.DataFrame:
    """Pivot of ``metric`` with ``y_param`` values as rows and ``x_param`` values as columns.

    Cells with fewer than ``min_trades`` trades count as missing; when other params, symbols or
    exit rules vary, the remaining cells are aggregated with ``agg`` (median by default).
    """
    frame = sweep_frame(source, strategy, filters)
    if len(frame) == 0:
        return pd.DataFrame()
    metric_col = _column(frame, metric, strategy)
    x, y = _column(frame, x_param, strategy), _column(frame, y_param, strategy)
    if x == y:
        raise ValidationError(f"The heatmap needs two different params; both are {x!r}.")
    data = pd.DataFrame({x: frame[x], y: frame[y], metric_col: _guard(frame, metric_col, min_trades)})
    pivot = data.pivot_table(index=y, columns=x, values=metric_col, aggfunc=agg, dropna=False)
    return pivot.sort_index().sort_index(axis=1)


def _param_cols(frame: pd.DataFrame, strategy: str | None) -> list[str]:
    if strategy is None:
        strategy = str(frame["strategy"].iloc[0])
    from core.strategies import get_strategy

    strat = get_strategy(strategy)
    return [f"{strat.prefix}_{p}" for p in strat.param_names if f"{strat.prefix}_{p}" in frame]


def _per_config(frame: pd.DataFrame, metric: str, strategy: str | None) -> pd.DataFrame:
    """One row per (params, exit rule): the metric's median over symbols and pooled trades.

    Configurations are told apart by their params hash, not only the numeric param columns:
    two cells that differ only in a choice param (e.g. sma vs ema) are two configurations.
    """
    keys = _param_cols(frame, strategy) + [c for c in ("params_hash",) if c in frame] + ["exit_hash"]
    work = frame.assign(
        _metric=frame[metric].astype(float),
        _trades=frame["num_trades"].astype(float),
        _wins=frame["num_trades"].astype(float) * frame["win_rate"].astype(float).fillna(0.0),
        _positive=(frame["total_return"].astype(float) > 0).astype(float),
    )
    grouped = work.groupby(keys, sort=True, dropna=False, observed=True)
    out = grouped.agg(
        params_json=("params_json", "first"), exit_json=("exit_json", "first"),
        n_symbols=("symbol", "nunique"), metric=("_metric", "median"),
        metric_mean=("_metric", "mean"), trades=("_trades", "sum"), wins=("_wins", "sum"),
        share_positive=("_positive", "mean"),
    ).reset_index()
    out["pooled_win_rate"] = np.where(out["trades"] > 0, out["wins"] / out["trades"].where(out["trades"] > 0), np.nan)
    return out.drop(columns="wins")


def top_configurations(source: Any, metric: str = "sharpe_ratio", n: int = 10,
                       filters: Mapping[str, Any] | None = None, *, strategy: str | None = None,
                       min_trades: int = 1, ascending: bool = False) -> pd.DataFrame:
    """The best ``n`` configurations by ``metric`` (median across symbols), min-trades guarded.

    Columns: the param columns, exit_hash, params_json, exit_json, n_symbols, ``metric``
    (median), ``<metric>_mean``, trades (pooled), pooled_win_rate, share_positive.
    """
    frame = sweep_frame(source, strategy, filters)
    if len(frame) == 0:
        return pd.DataFrame()
    metric_col = _column(frame, metric, strategy)
    table = _per_config(frame, metric_col, strategy)
    table = table[(table["trades"] >= min_trades) & table["metric"].notna()]
    table = table.sort_values("metric", ascending=ascending, kind="stable").head(n)
    return table.rename(columns={"metric": metric_col, "metric_mean": f"{metric_col}_mean"}).reset_index(drop=True)


def stability_score(source: Any, metric: str = "sharpe_ratio",
                    filters: Mapping[str, Any] | None = None, *, strategy: str | None = None,
                    min_trades: int = 1, radius: int = 1) -> dict[str, Any]:
    """How much the metric drops around the best cell of the grid.

    Cells are (params, exit rule) configurations, the metric the median across symbols. The
    best cell is the highest metric among cells with at least ``min_trades`` pooled trades; its
    neighbours are the cells within ``radius`` grid steps on every param axis (same exit rule).
    Returns best value and params, neighbour mean/min/count, ``drop`` (best - neighbour mean),
    ``relative_drop`` (drop / |best|) and ``score`` = clip(1 - relative_drop, 0, 1): 1 is a
    plateau, 0 an isolated spike.
    """
    frame = sweep_frame(source, strategy, filters)
    if len(frame) == 0:
        raise ValidationError("No stored cells match; run the sweep first or loosen the filters.")
    metric_col = _column(frame, metric, strategy)
    table = _per_config(frame, metric_col, strategy)
    params = _param_cols(frame, strategy)
    eligible = table[(table["trades"] >= min_trades) & table["metric"].notna()]
    if len(eligible) == 0:
        raise ValidationError(
            f"No cell has at least {min_trades} trades and a defined {metric_col}; "
            "lower min_trades or widen the grid."
        )
    best_row = eligible.loc[eligible["metric"].idxmax()]
    positions = {c: {v: i for i, v in enumerate(sorted(table[c].unique()))} for c in params}
    best_pos = {c: positions[c][best_row[c]] for c in params}
    choices = _choice_values(table, frame, strategy)
    near = (table["exit_hash"] == best_row["exit_hash"]).to_numpy() & (
        choices == choices[table.index.get_loc(best_row.name)])
    same = np.ones(len(table), dtype=bool)
    for c in params:
        pos = table[c].map(positions[c]).to_numpy()
        near &= np.abs(pos - best_pos[c]) <= radius
        same &= pos == best_pos[c]
    neighbours = table.loc[near & ~same, "metric"].dropna()
    best = float(best_row["metric"])
    mean = float(neighbours.mean()) if len(neighbours) else float("nan")
    drop = best - mean
    relative = drop / abs(best) if best != 0 and not math.isnan(drop) else float("nan")
    score = float(np.clip(1.0 - relative, 0.0, 1.0)) if not math.isnan(relative) else float("nan")
    return {
        "metric": metric_col, "best": best,
        "best_params": {c: best_row[c] for c in params}, "best_params_json": best_row["params_json"],
        "exit_json": best_row["exit_json"], "best_trades": int(best_row["trades"]),
        "n_neighbours": int(len(neighbours)), "neighbour_mean": mean,
        "neighbour_min": float(neighbours.min()) if len(neighbours) else float("nan"),
        "drop": drop, "relative_drop": relative, "score": score,
    }


def _choice_values(table: pd.DataFrame, frame: pd.DataFrame, strategy: str | None) -> np.ndarray:
    """Per configuration, its non-numeric (choice) params as text: neighbours share them."""
    import json

    from core.strategies import get_strategy

    strat = get_strategy(strategy if strategy is not None else str(frame["strategy"].iloc[0]))
    names = [p.name for p in strat.params if p.kind_name == "choice"]
    if not names or "params_json" not in table:
        return np.zeros(len(table), dtype=object)
    texts = [json.dumps({n: json.loads(t).get(n) for n in names}, sort_keys=True)
             for t in table["params_json"]]
    return np.asarray(texts, dtype=object)


UNIVERSE_COLUMNS = ("symbol", "num_trades", "win_rate", "total_return", "cagr", "sharpe_ratio",
                    "max_drawdown", "expectancy", "profit_factor", "start", "end")


def universe_view(store_or_frame: Any, strategy: str, params: Mapping[str, Any] | None,
                  exit_rule: Any = None, n_best: int = 5) -> dict[str, Any]:
    """One configuration across every symbol it is stored for.

    Returns ``n_symbols``, ``share_positive`` (total_return > 0), ``median_sharpe``,
    ``median_return``, ``pooled_trades``, ``pooled_win_rate`` (winning trades / all trades),
    ``best``/``worst`` (symbols by total return) and ``table`` (one row per symbol).
    """
    from core.exits import canonical_exit_rule
    from core.strategies import get_strategy, validate_params

    strat = get_strategy(strategy)
    full = validate_params(strat, params)
    ph, eh = stable_hash(full), stable_hash(canonical_exit_rule(exit_rule))
    frame = sweep_frame(store_or_frame, strat.name)
    if len(frame):
        frame = frame[(frame["params_hash"] == ph) & (frame["exit_hash"] == eh)]
    cols = [c for c in UNIVERSE_COLUMNS if c in frame.columns]
    table = frame[cols].sort_values("total_return", ascending=False).reset_index(drop=True)
    trades = table["num_trades"].astype(float) if len(table) else pd.Series(dtype=float)
    wins = (trades * table["win_rate"].astype(float).fillna(0.0)).sum() if len(table) else 0.0
    pooled = float(trades.sum())
    return {
        "strategy": strat.name, "params": full, "exit_rule": canonical_exit_rule(exit_rule),
        "n_symbols": int(len(table)),
        "share_positive": float((table["total_return"] > 0).mean()) if len(table) else float("nan"),
        "median_sharpe": float(table["sharpe_ratio"].median()) if len(table) else float("nan"),
        "median_return": float(table["total_return"].median()) if len(table) else float("nan"),
        "pooled_trades": int(pooled),
        "pooled_win_rate": float(wins / pooled) if pooled > 0 else float("nan"),
        "best": table["symbol"].head(n_best).tolist(),
        "worst": table["symbol"].tail(n_best).iloc[::-1].tolist(),
        "table": table,
    }

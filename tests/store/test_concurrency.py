"""Guarantee 2: concurrent writers lose nothing; a polling reader never sees a partial batch."""
from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

from crash_writer import PRELOAD, write_plan

from core.store import BacktestStore

WRITERS = 4
PER_WRITER = 250


def plan_for(writer: int) -> list[tuple[int, int]]:
    """250 backtests: ten single writes, then batches of 1..40 rows (batch ids are unique)."""
    sizes = [1] * 10 + [40, 25, 5, 30, 10, 2, 35, 20, 3, 15, 40, 15]
    assert sum(sizes) == PER_WRITER
    return [(writer * 100 + b, size) for b, size in enumerate(sizes)]


@pytest.mark.slow
def test_four_processes_and_a_thread_pool(tmp_path):
    url = str(tmp_path / "store.zarr")
    BacktestStore(url).close()
    plans = [plan_for(w) for w in range(WRITERS)]
    expected = {f"B{k:05d}": rows for plan in plans for k, rows in plan}
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    procs = [ctx.Process(target=write_plan, args=(url, plans[w], 1 if w < 3 else 6))
             for w in range(WRITERS)]  # the last writer is a thread pool sharing one handle
    observations, errors = [], []
    done = threading.Event()

    def poll() -> None:
        reader = BacktestStore(url, mode="r")
        try:
            while not done.is_set():
                count = reader.count()
                table = reader.get_all_stats()  # may already include a newer commit
                sizes = table.groupby("symbol", observed=True).size()
                partial = {s: n for s, n in sizes.items() if n != expected[s]}
                observations.append((count, len(table), partial))
                time.sleep(0.05)
        except Exception as exc:  # noqa: BLE001 - the test reports it below
            errors.append(exc)

    poller = threading.Thread(target=poll)
    poller.start()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(300)
    done.set()
    poller.join(60)
    assert [p.exitcode for p in procs] == [0] * WRITERS
    assert not errors, errors
    counts = [c for observation in observations for c in observation[:2]]
    assert len(observations) >= 5
    assert counts == sorted(counts), "the count went down"
    assert not [partial for _, _, partial in observations if partial], "a partial batch showed"
    final = BacktestStore(url, mode="r")
    table = final.get_all_stats()
    assert final.count() == len(table) == WRITERS * PER_WRITER
    assert table["backtest_id"].is_unique
    keys = set(zip(table["symbol"].astype(str), table["rsi_period"]))
    assert keys == {(s, 2.0 + i) for s, rows in expected.items() for i in range(rows)}
    assert final.verify()["ok"]

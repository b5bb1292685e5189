"""Guarantee 1: kill -9 the writer at every commit step and at random times.

Writers are real child processes (forked from a preloaded fork server, so each starts in
milliseconds) killed with SIGKILL: by the store's own crash hook at a named step, or by the
test at a random moment. After each kill the store is reopened: every batch is complete or
absent, no row shows fill values, and the next write succeeds.
"""
from __future__ import annotations

import multiprocessing
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from crash_writer import PRELOAD, check_store, compact_only, write_batches

ROWS = 6
COMMIT_STEPS = ["segment_begin", "segment_half", "segment_written", "locked", "manifest_tmp",
                "manifest_renamed", "manifest_replaced"]
VISIBLE_AFTER = {"manifest_renamed", "manifest_replaced"}


@pytest.fixture(scope="module")
def ctx():
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    return context


def run_child(ctx, target, *args) -> int:
    proc = ctx.Process(target=target, args=args)
    proc.start()
    proc.join(120)
    return proc.exitcode


@pytest.mark.parametrize("step", COMMIT_STEPS)
def test_kill_at_each_commit_step(ctx, tmp_path, step):
    url = str(tmp_path / "store.zarr")
    assert run_child(ctx, write_batches, url, 0, 2, ROWS) == 0
    assert run_child(ctx, write_batches, url, 2, 1, ROWS, step) == -signal.SIGKILL
    seen = check_store(url, ROWS)
    assert sorted(seen) == ([0, 1, 2] if step in VISIBLE_AFTER else [0, 1])
    assert run_child(ctx, write_batches, url, 3, 1, ROWS) == 0  # the next write succeeds
    assert sorted(check_store(url, ROWS)) == sorted([*seen, 3])


@pytest.mark.parametrize("step", ["compact_written", "compact_locked", "manifest_tmp",
                                  "manifest_renamed", "manifest_replaced"])
def test_kill_during_compaction(ctx, tmp_path, step):
    url = str(tmp_path / "store.zarr")
    assert run_child(ctx, write_batches, url, 0, 4, ROWS) == 0
    assert run_child(ctx, compact_only, url, step) == -signal.SIGKILL
    assert sorted(check_store(url, ROWS)) == [0, 1, 2, 3]
    assert run_child(ctx, write_batches, url, 4, 1, ROWS, None, None, 1) == 0
    assert sorted(check_store(url, ROWS)) == [0, 1, 2, 3, 4]


def _random_trials(ctx, url: str, lane: int, trials: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    killed = []
    for trial in range(trials):
        ready = ctx.Event()
        first = (lane * 1000 + trial) * 20
        proc = ctx.Process(target=write_batches, args=(url, first, 20, ROWS, None, ready, 3))
        proc.start()
        assert ready.wait(60), "writer did not start"
        time.sleep(rng.uniform(0.0, 0.6))
        proc.kill()
        proc.join(60)
        killed.append(proc.exitcode)
        check_store(url, ROWS, deep=trial == trials - 1)
    return killed


@pytest.mark.slow
def test_kill_at_random_times(ctx, tmp_path):
    lanes, trials = 4, 13  # 52 kills in total, four stores written in parallel
    with ThreadPoolExecutor(lanes) as pool:
        futures = [pool.submit(_random_trials, ctx, str(tmp_path / f"s{lane}.zarr"), lane,
                               trials, 1234 + lane) for lane in range(lanes)]
        codes = [code for f in futures for code in f.result()]
    assert len(codes) == lanes * trials
    assert codes.count(-signal.SIGKILL) >= 45  # nearly every writer died mid-work
    assert threading.active_count() >= 1
    for lane in range(lanes):
        url = str(tmp_path / f"s{lane}.zarr")
        assert run_child(ctx, write_batches, url, 99_000 + lane, 1, ROWS) == 0
        assert 99_000 + lane in check_store(url, ROWS)

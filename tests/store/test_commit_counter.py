"""A warm handle notices commits through the shared commit counter, and never misses one.

Writers are real child processes; the reader is a long-lived handle in this process that has
already answered lookups (its fast path reads only the counter).
"""
from __future__ import annotations

import multiprocessing
import os
import shutil
import signal
import time

import pytest
from crash_writer import batch_results, write_batches

from core.store import BacktestStore
from core.store import backtest_store as backtest_store_module
from core.store._backend import CommitCounter
from core.store._format import COMMIT_COUNTER_KEY, MANIFEST_KEY

ROWS = 4


@pytest.fixture(scope="module")
def ctx():
    """Fresh interpreters for the writers: the process-wide fork server is shared with every
    other test of this worker (sweeps start it for their pools), and these tests read the
    counter a writer leaves behind."""
    return multiprocessing.get_context("spawn")


def run_child(ctx, *args) -> int:
    proc = ctx.Process(target=write_batches, args=args)
    proc.start()
    proc.join(120)
    return proc.exitcode


def counter_value(url: str) -> int:
    with open(os.path.join(url, COMMIT_COUNTER_KEY), "rb") as fh:
        return int.from_bytes(fh.read(8), "little")


def warm_reader(url: str) -> BacktestStore:
    reader = BacktestStore(url, mode="r")
    for _ in range(3):
        assert reader.get_stats("B00000", "rsi_meanrev", {"period": 2}) is not None
    return reader


def test_each_commit_of_another_process_is_seen_on_the_next_call(ctx, tmp_path):
    url = str(tmp_path / "store.zarr")
    assert run_child(ctx, url, 0, 1, ROWS) == 0
    reader = warm_reader(url)
    for k in range(1, 4):
        before = counter_value(url)
        assert run_child(ctx, url, k, 1, ROWS) == 0
        assert counter_value(url) == before + 2 and counter_value(url) % 2 == 0
        assert reader.count() == (k + 1) * ROWS  # at once: no refresh, no wait
        assert reader.get_stats(f"B{k:05d}", "rsi_meanrev", {"period": 3}) is not None


def test_a_writer_killed_between_rename_and_counter_leaves_readers_right(ctx, tmp_path):
    url = str(tmp_path / "store.zarr")
    assert run_child(ctx, url, 0, 1, ROWS) == 0
    reader = warm_reader(url)
    assert run_child(ctx, url, 1, 1, ROWS, "manifest_renamed") == -signal.SIGKILL
    assert counter_value(url) % 2 == 1  # left "in flight": readers check the manifest
    assert reader.count() == 2 * ROWS
    assert run_child(ctx, url, 2, 1, ROWS) == 0
    assert counter_value(url) % 2 == 0
    assert reader.count() == 3 * ROWS
    assert run_child(ctx, url, 3, 1, ROWS) == 0
    assert reader.count() == 4 * ROWS


def two_batches_keeping_the_first_manifest(tmp_path) -> tuple[str, str]:
    """A store of two batches, and a copy of its manifest from when it held the first only."""
    url = str(tmp_path / "store.zarr")
    writer = BacktestStore(url)
    writer.store_many(batch_results(0, ROWS))
    earlier = str(tmp_path / "manifest.earlier")
    shutil.copyfile(os.path.join(url, MANIFEST_KEY), earlier)
    writer.store_many(batch_results(1, ROWS))
    return url, earlier


def test_a_reader_that_read_an_odd_counter_keeps_checking_the_manifest(tmp_path, monkeypatch):
    """The race the odd value exists for: a reader checks while a commit is in flight, the
    manifest is renamed, and the writer dies before making the counter even."""
    monkeypatch.setattr(backtest_store_module, "COUNTER_TRUST_S", 3600.0)
    url, earlier = two_batches_keeping_the_first_manifest(tmp_path)
    reader = warm_reader(url)
    CommitCounter(os.path.join(url, COMMIT_COUNTER_KEY), writable=True).begin()
    assert reader.count() == 2 * ROWS  # checked during the "commit": the old manifest
    os.replace(earlier, os.path.join(url, MANIFEST_KEY))  # renamed; the writer dies here
    assert reader.count() == ROWS


def test_a_manifest_replaced_behind_the_counter_is_seen_within_the_trust_window(
        tmp_path, monkeypatch):
    """A restored backup (or an older Hindsight writer) does not touch the counter."""
    monkeypatch.setattr(backtest_store_module, "COUNTER_TRUST_S", 0.2)
    url, backup = two_batches_keeping_the_first_manifest(tmp_path)
    reader = warm_reader(url)
    assert reader.count() == 2 * ROWS
    os.replace(backup, os.path.join(url, MANIFEST_KEY))
    time.sleep(0.3)
    assert reader.count() == ROWS


def test_a_store_without_a_counter_file_is_read_and_gains_one_on_the_next_write(tmp_path):
    url = str(tmp_path / "store.zarr")
    writer = BacktestStore(url)
    writer.store_many(batch_results(0, ROWS))
    writer.close()
    os.remove(os.path.join(url, COMMIT_COUNTER_KEY))  # as an older Hindsight left it
    reader = warm_reader(url)
    writer = BacktestStore(url)
    writer.store_many(batch_results(1, ROWS))
    assert counter_value(url) == 2
    assert reader.count() == 2 * ROWS
    writer.store_many(batch_results(2, ROWS))
    assert reader.count() == 3 * ROWS

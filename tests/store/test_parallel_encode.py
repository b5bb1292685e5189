"""Chunk compression on several threads writes the same bytes as one thread, also after fork."""
from __future__ import annotations

import multiprocessing

import numpy as np
import pandas as pd
import pytest
import zarr
from zarr.storage import LocalStore

from core.store import BacktestStore, _segment, _threads


def _files(monkeypatch, field: str, values: np.ndarray, level: int, threads: int) -> list:
    monkeypatch.setattr(_threads, "THREADS", threads)
    monkeypatch.setattr(_segment, "PARALLEL_MIN_VALUES", 1)
    return _segment._array_files(f"seg/{field}", field, values, level)


def test_threaded_compression_writes_the_same_files_as_one_thread(tmp_path, monkeypatch):
    rng = np.random.default_rng(4)
    for field, values, level in (
            ("tr_floats", rng.normal(size=(9_000, 5)), 0),  # 2-D ragged, 2 fresh-write chunks
            ("eq_steps", rng.integers(-9, 9, 2_048 * 2_049 + 5), 8),  # compacted: 2 shards
            ("floats", rng.normal(size=(70_000, 4)), 4)):  # per-row block
        serial = _files(monkeypatch, field, values, level, 1)
        threaded = _files(monkeypatch, field, values, level, 3)
        assert threaded == serial
        store = LocalStore(tmp_path / field)
        _segment._put_files(store, threaded)
        back = zarr.open_array(store=store, path=f"seg/{field}", mode="r",
                               config=_segment.READ_CONFIG)[...]
        assert np.array_equal(back, values)


def _write_in_child(path: str, queue) -> None:
    from tests.store.factories import make_result

    with BacktestStore(path) as store:
        queue.put(store.store_many([make_result(symbol=f"K{i}") for i in range(3)]))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_writes_after_its_parent_used_the_encoder_pool(tmp_path, monkeypatch):
    from tests.store.factories import make_result

    monkeypatch.setattr(_segment, "PARALLEL_MIN_VALUES", 1)  # every write uses the pool
    path = str(tmp_path / "s.zarr")
    with BacktestStore(path) as store:
        store.store_many([make_result(symbol="P")])
    assert _threads.started(), "the parent's write started the pool"
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_write_in_child, args=(path, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the child hung or failed writing with an inherited pool"
    assert len(queue.get(timeout=5)) == 3
    with BacktestStore(path, mode="r") as store:
        assert store.count() == 4
        assert isinstance(store.get_all_stats(), pd.DataFrame)

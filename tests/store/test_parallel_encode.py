"""A process forked after its parent wrote to a store (a sweep's pool worker) writes too."""
from __future__ import annotations

import multiprocessing

import pandas as pd
import pytest

from core.store import BacktestStore


def _write_in_child(path: str, queue) -> None:
    from tests.store.factories import make_result

    with BacktestStore(path) as store:
        queue.put(store.store_many([make_result(symbol=f"K{i}") for i in range(3)]))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_writes_after_its_parent_wrote(tmp_path):
    from tests.store.factories import make_result

    path = str(tmp_path / "s.zarr")
    with BacktestStore(path) as store:
        store.store_many([make_result(symbol="P")])
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_write_in_child, args=(path, queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the child hung or failed writing after its parent wrote"
    assert len(queue.get(timeout=5)) == 3
    with BacktestStore(path, mode="r") as store:
        assert store.count() == 4
        assert isinstance(store.get_all_stats(), pd.DataFrame)

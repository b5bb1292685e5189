"""Fixtures for sweep / walk-forward / refresh tests: a small offline universe and real stores."""
from __future__ import annotations

import pytest

from core.data.demo import DemoProvider


@pytest.fixture(scope="session")
def provider():
    """Four synthetic symbols with about 500 daily bars each (deterministic, no I/O)."""
    return DemoProvider(count=4, years=2)


@pytest.fixture
def store(tmp_path):
    """A fresh backtest store on disk."""
    from core.store import open_store

    return open_store(str(tmp_path / "store.zarr"), "a")

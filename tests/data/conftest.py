"""Fixtures for the data tests: small hand-made bars and caches in tmp_path."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.data.cached import CachedProvider
from core.data.folder import FolderProvider
from core.data.prices import PriceCache


def make_bars(n: int = 10, start: str = "2024-01-01", first_close: float = 100.0) -> pd.DataFrame:
    """Clean, consistent daily bars: close steps by +1, high/low one unit around open/close."""
    index = pd.bdate_range(start, periods=n, name="date").as_unit("ns")
    close = first_close + np.arange(n, dtype=float)
    open_ = close - 0.5
    return pd.DataFrame(
        {"open": open_, "high": close + 1.0, "low": open_ - 1.0, "close": close,
         "volume": np.full(n, 1000.0)},
        index=index,
    )


@pytest.fixture(autouse=True)
def _no_hindsight_environment(monkeypatch):
    """Settings in these tests come from the test itself, never from the caller's shell."""
    import os

    for name in [n for n in os.environ if n.startswith("HINDSIGHT_")]:
        monkeypatch.delenv(name)


@pytest.fixture(name="make_bars")
def make_bars_fixture():
    """The ``make_bars`` helper itself, for tests that need several frames."""
    return make_bars


@pytest.fixture
def bars() -> pd.DataFrame:
    return make_bars()


@pytest.fixture
def cache(tmp_path) -> PriceCache:
    return PriceCache(tmp_path / "prices.zarr")


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "files"
    path.mkdir()
    return path


@pytest.fixture
def folder_provider(folder, cache) -> CachedProvider:
    return CachedProvider(FolderProvider(folder), cache)



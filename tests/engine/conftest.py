"""Bars builders shared by the engine tests."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import strategies_folder


def make_bars(n: int = 250, seed: int = 0, vol: float = 0.02, start: str = "2020-01-01",
              symbol: str = "TEST") -> pd.DataFrame:
    """A geometric random walk with consistent OHLC (low <= open, close <= high)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, vol, n)))
    open_ = np.concatenate([[100.0], close[:-1]]) * np.exp(rng.normal(0, vol / 3, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, vol / 2, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, vol / 2, n)))
    bars = pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": np.full(n, 1e5)},
        index=pd.bdate_range(start, periods=n, unit="ns"),
    )
    bars.attrs["symbol"] = symbol
    return bars


def bars_from(open_, high, low, close, start: str = "2021-01-04") -> pd.DataFrame:
    """Bars from explicit OHLC lists (business days from ``start``)."""
    n = len(close)
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": [0.0] * n},
        index=pd.bdate_range(start, periods=n, unit="ns"), dtype=float,
    )


@pytest.fixture
def bars():
    return make_bars()


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty strategies folder that the registry reads (rule-file tests)."""
    return strategies_folder(tmp_path, monkeypatch)

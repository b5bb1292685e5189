"""Fixtures for the app tests: a fresh store and price cache per test, and a filled store."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the ``views`` helpers are imported as the app imports them
APP = ROOT / "app.py"
FILLED_SYMBOLS = ("DEMO01", "DEMO02", "DEMO03")
#: (params, exit rule) stored for each filled symbol: the scanner's defaults, and a variant.
FILLED_CONFIGS = (({"period": 14, "oversold": 30, "overbought": 70}, None),
                  ({"period": 10, "oversold": 25, "overbought": 70},
                   {"type": "stop_loss", "pct": 0.08}))


@pytest.fixture(scope="session")
def price_cache(tmp_path_factory):
    """One price cache for the session: the demo bars are deterministic, so tests share them."""
    return tmp_path_factory.mktemp("prices") / "prices.zarr"


@pytest.fixture
def env(tmp_path, monkeypatch, price_cache):
    """Point the app's settings at an empty store under tmp_path (and the shared price cache)."""
    monkeypatch.setenv("HINDSIGHT_STORE", str(tmp_path / "store.zarr"))
    monkeypatch.setenv("HINDSIGHT_PRICE_CACHE", str(price_cache))
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "demo")
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.chdir(ROOT)
    return tmp_path


def open_test_store(env_path: Path):
    from core.store import BacktestStore

    return BacktestStore(str(env_path / "store.zarr"))


@pytest.fixture
def filled(env):
    """The store under ``env`` holding RSI backtests: three demo symbols x two configurations."""
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest

    provider = get_provider(load_settings())
    store = open_test_store(env)
    ids = []
    for symbol in FILLED_SYMBOLS:
        bars = provider.load_bars(symbol)
        for params, exit_rule in FILLED_CONFIGS:
            result = run_backtest(bars, "rsi_meanrev", params, exit_rule, symbol=symbol)
            ids.append(store.store_backtest(result))
    return ids

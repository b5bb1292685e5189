"""The backtest store: one Zarr v3 store holding every backtest (see docs/store.md).

``BacktestStore(url, mode)`` / ``open_store(url, mode)``. The only package that imports zarr.
"""
from core.store._format import FORMAT_VERSION
from core.store.backtest_store import DEFAULT_URL, BacktestStore, open_store

__all__ = ["BacktestStore", "open_store", "DEFAULT_URL", "FORMAT_VERSION"]

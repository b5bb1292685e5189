"""Market data: providers (demo, folder, yahoo), validation and the cached provider factory.

Importing this package is cheap (no zarr, no yfinance): names are resolved on first use, so
``from core.data.validate import validate_bars`` costs only numpy and pandas.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "validate_bars": "core.data.validate",
    "BAR_COLUMNS": "core.data.validate",
    "validate_symbol": "core.data.symbols",
    "get_provider": "core.data.cached",
    "CachedProvider": "core.data.cached",
    "Provider": "core.data.provider",
    "DemoProvider": "core.data.demo",
    "FolderProvider": "core.data.folder",
    "YahooProvider": "core.data.yahoo",
    "read_ohlcv_csv": "core.data.folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    """Import the module that defines ``name`` on first access."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'core.data' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)

"""Settings read in one place by the app, the CLI and the jobs.

Order of precedence: environment variables (``HINDSIGHT_*``) > ``config.toml`` (path from
``HINDSIGHT_CONFIG``, else ``./config.toml``) > defaults. See docs/configuration.md.
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path

from core.errors import ValidationError

DATA_SOURCES = ("demo", "folder", "yahoo")
#: Named date readings of the folder source; any value holding "%" is a strftime pattern.
DATE_FORMATS = ("auto", "dayfirst", "monthfirst")


@dataclass(frozen=True)
class Settings:
    data_source: str = "demo"  # demo | folder | yahoo
    data_folder: str = "data/prices"  # used by the folder provider
    store_url: str = "data/backtests/store.zarr"  # path or fsspec URL (s3://..., memory://...)
    price_cache: str = "data/prices.zarr"
    max_grid_cells: int = 250_000  # sweeps larger than this are refused
    demo_symbols: int = 60
    demo_years: int = 12
    watchlist: str = ""  # comma-separated tickers for the yahoo source (empty: built-in list)
    date_format: str = "auto"  # folder files: auto | dayfirst | monthfirst | "%d/%m/%Y" ...
    strategies_folder: str = "strategies"  # rule strategy files (*.toml), docs/strategies.md


_ENV = {
    "data_source": "HINDSIGHT_DATA_SOURCE",
    "data_folder": "HINDSIGHT_DATA_FOLDER",
    "store_url": "HINDSIGHT_STORE",
    "price_cache": "HINDSIGHT_PRICE_CACHE",
    "max_grid_cells": "HINDSIGHT_MAX_GRID_CELLS",
    "watchlist": "HINDSIGHT_WATCHLIST",
    "date_format": "HINDSIGHT_DATE_FORMAT",
    "strategies_folder": "HINDSIGHT_STRATEGIES",
}


def _coerce(name: str, raw: object) -> object:
    kind = {f.name: f.type for f in fields(Settings)}[name]
    try:
        return int(raw) if kind in ("int", int) else str(raw)
    except (TypeError, ValueError):
        raise ValidationError(f"Setting '{name}' must be a whole number, got {raw!r}.") from None


def load_settings(path: str | os.PathLike | None = None, **overrides: object) -> Settings:
    """Build Settings from defaults, the TOML file, the environment and explicit overrides."""
    values: dict[str, object] = {}
    toml_path = Path(path or os.environ.get("HINDSIGHT_CONFIG", "config.toml"))
    if toml_path.is_file():
        try:
            doc = tomllib.loads(toml_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ValidationError(f"Cannot read {toml_path}: {exc}. Fix the TOML syntax.") from None
        known = {f.name for f in fields(Settings)}
        unknown = set(doc) - known
        if unknown:
            raise ValidationError(
                f"Unknown setting(s) {sorted(unknown)} in {toml_path}. Known: {sorted(known)}."
            )
        values.update(doc)
    for name, env in _ENV.items():
        if os.environ.get(env):
            values[name] = os.environ[env]
    values.update({k: v for k, v in overrides.items() if v is not None})
    settings = replace(Settings(), **{k: _coerce(k, v) for k, v in values.items()})
    if settings.data_source not in DATA_SOURCES:
        raise ValidationError(
            f"Unknown data source {settings.data_source!r}. Use one of {', '.join(DATA_SOURCES)}."
        )
    _check_date_format(settings.date_format)
    return settings


def _check_date_format(value: str) -> None:
    if value not in DATE_FORMATS and "%" not in value:
        raise ValidationError(
            f"Unknown date_format {value!r}. Use auto, dayfirst, monthfirst or a pattern such "
            "as '%d/%m/%Y %H:%M'."
        )

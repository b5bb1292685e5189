"""Plain data shapes shared by the engine, the store and the UI (no computation, no I/O)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.canonical import canonical_json, stable_hash

#: Every metric the engine computes, in display order. NaN where undefined (see docs/engine.md).
METRIC_NAMES: tuple[str, ...] = (
    "num_trades",
    "win_rate",
    "total_return",
    "cagr",
    "sharpe_ratio",
    "sortino_ratio",
    "max_drawdown",
    "calmar_ratio",
    "expectancy",
    "profit_factor",
    "exposure",
    "avg_bars_held",
    "best_trade",
    "worst_trade",
)

#: Columns of a trade log, in order.
TRADE_COLUMNS: tuple[str, ...] = (
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "units",
    "pnl",
    "return",
    "bars_held",
    "exit_reason",
)

#: Why a trade closed; the integer code of a reason is its index here.
EXIT_REASONS: tuple[str, ...] = (
    "signal",
    "stop_loss",
    "take_profit",
    "trailing_stop",
    "time_stop",
    "atr_stop",
    "end_of_data",
)
#: The dtype of a trade log's ``exit_reason`` column (engine output and store reads alike).
EXIT_REASON_DTYPE = pd.CategoricalDtype(pd.Index(EXIT_REASONS, dtype="str"))

#: A run's side, its ``direction`` param (left out of the params when long).
DIRECTIONS: tuple[str, ...] = ("long", "short")
#: The dtype of the ``direction`` column the engine adds after TRADE_COLUMNS in its trade logs
#: (the store keeps TRADE_COLUMNS only: a stored run's direction is in its params).
DIRECTION_DTYPE = pd.CategoricalDtype(pd.Index(DIRECTIONS, dtype="str"))


@dataclass
class BacktestResult:
    """One backtest: identity, settings, metrics, equity curve and trade log."""

    symbol: str
    strategy: str
    params: dict[str, Any]  # canonical: every param, typed, defaults filled in
    exit_rule: list[dict[str, Any]]  # canonical list of exit-rule dicts
    metrics: dict[str, float]
    equity: pd.Series  # DatetimeIndex -> equity value, one point per bar
    trades: pd.DataFrame  # TRADE_COLUMNS, then direction (engine output)
    start: pd.Timestamp
    end: pd.Timestamp
    costs: dict[str, float] = field(default_factory=dict)
    initial_capital: float = 100_000.0
    settings: dict[str, Any] = field(default_factory=dict)  # whole_shares, stop_on_entry_bar,
    # and periods_per_year when given explicitly
    engine_version: str = ""
    data_fingerprint: str = ""
    direction: str = DIRECTIONS[0]  # "long" or "short": a built-in's param, a rule's definition
    source: str = ""  # the data source (core.scope.source_id); "" means the store's default
    window: Any = "full"  # "full" or {"start": ..., "end": ...} (core.scope.canonical_window)
    definition: str = ""  # a rule strategy's definition hash; "" for built-ins
    periods_per_year: float = float("nan")  # Sharpe/Sortino annualisation (core.frequency)
    bar_seconds: float = float("nan")  # the bars' median spacing

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)

    @property
    def params_hash(self) -> str:
        return stable_hash(self.params)

    @property
    def exit_json(self) -> str:
        return canonical_json(self.exit_rule)

    @property
    def exit_hash(self) -> str:
        return stable_hash(self.exit_rule)


@dataclass
class BatchCurves:
    """Equity curves of a batch in columnar form (no per-row objects).

    Row i's values are ``values[offsets[i]:offsets[i + 1]]`` on the dates
    ``dates[date_starts[i]:date_starts[i] + length]``; a row of length 0 has no curve.
    ``dates`` holds each distinct calendar once, concatenated (``run_many``: one per symbol).
    """

    values: np.ndarray  # float64, every curve concatenated
    offsets: np.ndarray  # int64, rows + 1
    dates: np.ndarray  # datetime64[ns], the distinct calendars concatenated
    date_starts: np.ndarray  # int64, rows: where each row's dates start in ``dates``

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def curve(self, row: int) -> pd.Series:
        """Row ``row``'s equity curve as a Series indexed by date (what run_backtest returns)."""
        lo, hi = int(self.offsets[row]), int(self.offsets[row + 1])
        start = int(self.date_starts[row])
        index = pd.DatetimeIndex(self.dates[start:start + hi - lo])
        return pd.Series(self.values[lo:hi], index=index, name="equity")


@dataclass
class BatchResult:
    """Columnar output of ``run_many``: one row per symbol x params x exit rule.

    ``table`` columns: symbol, strategy, params_json, params_hash, exit_json, exit_hash, start,
    end, initial_capital, costs_json, settings_json, engine_version, data_fingerprint,
    periods_per_year and bar_seconds (floats: the symbol's bars per year and median bar spacing
    in seconds, see core.frequency), source, window_json, definition (see core.scope; what the
    store's scope is made of), one float column per strategy param named ``<prefix>_<param>``
    (``core.strategies.param_columns``: none for ``direction``, which is in params_json), then
    every name in METRIC_NAMES.
    ``trades`` (optional) holds every trade of every row, TRADE_COLUMNS plus ``direction`` and
    ``row`` (the positional row of ``table`` it belongs to), sorted by row then entry_time.
    ``curves`` (optional) holds every row's equity curve in columnar form; without it a row's
    curve is recomputed on demand (deterministic engine).
    """

    table: pd.DataFrame
    trades: pd.DataFrame | None = None
    curves: BatchCurves | None = None

    def __len__(self) -> int:
        return len(self.table)

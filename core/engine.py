"""Backtest engine: ``run_backtest`` (one run, equity + trades) and ``run_many`` (grids).

Both validate everything up front (strategy, params, exit rule, costs, bars) and then run the
numba kernels in ``core.kernels``. Indicators are computed once per distinct series per symbol
and shared by every grid cell. Conventions: docs/engine.md.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core import indicators
from core.canonical import (canonical_json, fingerprint_of, flat_params_json, hash_of_json,
                            stable_hash)
from core.data.validate import validate_bars
from core.errors import DataValidationError, FrequencyError, ParamError, did_you_mean
from core.exits import atr_periods, canonical_exit_rule, exit_vector
from core.frequency import BarClock, check_periods_per_year, detect_frequency
from core.kernels import grid_equity_nb, grid_metrics, grid_metrics_and_trades, simulate_nb
from core.metrics import N_METRICS
from core.strategies import (
    Strategy,
    direction_of,
    get_strategy,
    identity_params,
    min_bars,
    param_columns,
    validate_params,
)
from core.scope import bars_scope_parts, canonical_costs
from core.types import (DIRECTION_DTYPE, DIRECTIONS, EXIT_REASON_DTYPE, METRIC_NAMES,
                        BacktestResult, BatchCurves, BatchResult)

ENGINE_VERSION = "1.1.0"

_NO_SERIES = np.empty(0)


# --- validation of the simple inputs --------------------------------------------------------

def _kernel_costs(costs: dict[str, float], periods_per_year: float
                  ) -> tuple[float, float, float, float]:
    """(commission, fixed, slippage fraction, borrow fee per bar) for the kernels; the annual
    borrow rate is spread over the bars' own year."""
    return (costs["commission"], costs["fixed"], costs["slippage_bps"] / 1e4,
            costs.get("borrow_rate", 0.0) / periods_per_year)


def _side(strategy: Strategy, params: Mapping[str, Any]) -> float:
    """The kernels' side flag of validated params: +1.0 long, -1.0 short."""
    return -1.0 if direction_of(strategy, params) == "short" else 1.0


def _check_capital(initial_capital: Any, costs: dict[str, float]) -> float:
    if isinstance(initial_capital, bool) or not isinstance(initial_capital, (int, float, np.number)):
        raise ParamError(f"initial_capital must be a number, got {initial_capital!r}.")
    capital = float(initial_capital)
    if not math.isfinite(capital) or capital <= costs["fixed"]:
        raise ParamError(
            f"initial_capital={capital!r} must be finite and above the fixed cost per order "
            f"({costs['fixed']})."
        )
    return capital


def _settings(whole_shares: bool, stop_on_entry_bar: bool, periods_per_year: float | None
              ) -> dict[str, Any]:
    """A run's settings. An explicit ``periods_per_year`` is recorded, a detected one is not,
    so default runs keep the settings (and stored identity) they always had."""
    settings: dict[str, Any] = {"whole_shares": bool(whole_shares),
                                "stop_on_entry_bar": bool(stop_on_entry_bar)}
    if periods_per_year is not None:
        settings["periods_per_year"] = periods_per_year
    return settings


def _clock_of(index: pd.DatetimeIndex, symbol: str, periods_per_year: float | None
              ) -> BarClock:
    """The bars' clock (core.frequency); an irregular series' error names its symbol."""
    try:
        return detect_frequency(index, periods_per_year)
    except FrequencyError as exc:
        raise FrequencyError(f"{symbol or 'bars'}: {exc}") from None


class _Bars:
    """Validated bars of one symbol as contiguous float64 arrays plus index facts."""

    __slots__ = ("frame", "symbol", "open", "high", "low", "close", "volume", "index", "days",
                 "clock", "cache")

    def __init__(self, bars: pd.DataFrame, symbol: str, periods_per_year: float | None = None):
        frame = validate_bars(bars, symbol or "?")
        columns = frame.to_numpy(dtype=np.float64, copy=False).T
        self.frame = frame
        self.symbol = symbol
        # Own writable copies: the kernels then always see one array type (a read-only view
        # from pandas would need its own compiled specialization).
        self.open, self.high, self.low, self.close, self.volume = (np.array(columns[i])
                                                                   for i in range(5))
        self.index = frame.index
        self.days = (self.index[-1] - self.index[0]).total_seconds() / 86400.0
        self.clock = _clock_of(self.index, symbol, periods_per_year)
        self.cache: dict[tuple, np.ndarray] = {}

    def __len__(self) -> int:
        return self.close.shape[0]

    def series(self, key: tuple) -> np.ndarray:
        """Indicator series ``key`` over these bars, computed once."""
        if key not in self.cache:
            self.cache[key] = indicators.compute_series(
                key, self.open, self.high, self.low, self.close, self.volume
            )
        return self.cache[key]

    def fingerprint(self) -> str:
        return fingerprint_of(self.frame)

    def require(self, needed: int, what: str) -> None:
        """Refuse a history too short for the indicators; a single bar (which can never
        trade: fills happen on the next bar) runs and yields no trades."""
        if 1 < len(self) < needed:
            raise DataValidationError(
                f"{self.symbol or 'bars'}: {len(self)} bars is too few; {what} needs at least "
                f"{needed} bars. Load a longer history or use shorter look-backs."
            )


def _symbol_of(bars: Any, symbol: str | None) -> str:
    if symbol is not None:
        return str(symbol)
    attrs = getattr(bars, "attrs", {})
    return str(attrs.get("symbol", "")) if isinstance(attrs, Mapping) else ""


def _describe(strategy: Strategy, params: Mapping[str, Any]) -> str:
    return f"{strategy.name} with " + ", ".join(f"{k}={v}" for k, v in params.items())


# --- one backtest ---------------------------------------------------------------------------

def run_backtest(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    exit_rule: Mapping | list | None = None,
    costs: Mapping[str, Any] | None = None,
    initial_capital: float = 100_000,
    whole_shares: bool = False,
    stop_on_entry_bar: bool = True,
    symbol: str | None = None,
    periods_per_year: float | None = None,
) -> BacktestResult:
    """Run one backtest: metrics, equity curve (one point per bar) and the trade log.

    Sharpe and Sortino are annualised by the bars per year read from the bars (see
    ``core.frequency``) unless ``periods_per_year`` is given, which is then recorded in
    ``settings``.
    """
    strategy = get_strategy(strategy)
    params = validate_params(strategy, params)
    rule = canonical_exit_rule(exit_rule)
    costs = canonical_costs(costs)
    capital = _check_capital(initial_capital, costs)
    override = check_periods_per_year(periods_per_year)
    symbol = _symbol_of(bars, symbol)
    data = _Bars(bars, symbol, override)
    data.require(min_bars(strategy, params), _describe(strategy, params))

    entry, exit_ = strategy.rules(**params)
    periods = atr_periods(rule)
    atr = data.series(("atr", periods[0])) if periods else _NO_SERIES
    n = len(data)
    equity = np.empty(n)
    trades_int = np.empty((n, 4), dtype=np.int64)
    trades_float = np.empty((n, 5))
    metrics = np.empty(N_METRICS)
    count = simulate_nb(
        data.open, data.high, data.low, data.close,
        data.series(entry.series), _other(data, entry), float(entry.level), float(entry.direction),
        data.series(exit_.series), _other(data, exit_), float(exit_.level), float(exit_.direction),
        _side(strategy, params), exit_vector(rule), atr,
        *_kernel_costs(costs, data.clock.periods_per_year), capital,
        bool(whole_shares), bool(stop_on_entry_bar), data.days, data.clock.periods_per_year,
        equity, trades_int, trades_float, metrics,
    )
    trades_int, trades_float = trades_int[:count], trades_float[:count]
    direction = direction_of(strategy, params)
    source, window = bars_scope_parts(bars)
    codes = np.full(count, DIRECTIONS.index(direction), dtype=np.int8)
    return BacktestResult(
        symbol=symbol,
        strategy=strategy.name,
        params=params,
        exit_rule=rule,
        metrics=dict(zip(METRIC_NAMES, metrics.tolist())),
        equity=pd.Series(equity, index=data.index, name="equity"),
        trades=_trades_frame(data.index, trades_int, trades_float, codes),
        start=data.index[0],
        end=data.index[-1],
        costs=costs,
        initial_capital=capital,
        settings=_settings(whole_shares, stop_on_entry_bar, override),
        engine_version=ENGINE_VERSION,
        data_fingerprint=data.fingerprint(),
        direction=direction,
        periods_per_year=data.clock.periods_per_year,
        bar_seconds=data.clock.bar_seconds,
        source=source,
        window=window,
        definition=strategy.definition_hash or "",
    )


def _other(data: _Bars, rule) -> np.ndarray:
    return _NO_SERIES if rule.other is None else data.series(rule.other)


def _trades_frame(index: pd.DatetimeIndex, trades_int: np.ndarray, trades_float: np.ndarray,
                  direction: np.ndarray) -> pd.DataFrame:
    """Trade records from the kernel as a TRADE_COLUMNS frame plus ``direction``."""
    return _trade_records_frame(*_trade_records(index, trades_int, trades_float), direction, None)


def _trade_records(index: pd.DatetimeIndex, trades_int: np.ndarray, trades_float: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(entry times, exit times, int records, float records) of kernel trade records."""
    stamps = index.to_numpy()
    return stamps[trades_int[:, 0]], stamps[trades_int[:, 1]], trades_int, trades_float


def _trade_records_frame(entry: np.ndarray, exit_: np.ndarray, trades_int: np.ndarray,
                         trades_float: np.ndarray, direction: np.ndarray,
                         rows: np.ndarray | None) -> pd.DataFrame:
    """TRADE_COLUMNS, then ``direction`` (index into DIRECTIONS), then ``row`` if given."""
    columns = {
        "entry_time": entry,
        "entry_price": trades_float[:, 0],
        "exit_time": exit_,
        "exit_price": trades_float[:, 1],
        "units": trades_float[:, 2],
        "pnl": trades_float[:, 3],
        "return": trades_float[:, 4],
        "bars_held": trades_int[:, 3],
        "exit_reason": pd.Categorical.from_codes(trades_int[:, 2], dtype=EXIT_REASON_DTYPE),
        "direction": pd.Categorical.from_codes(direction, dtype=DIRECTION_DTYPE),
    }
    if rows is not None:
        columns["row"] = rows
    return pd.DataFrame(columns, copy=False)


# --- grids ----------------------------------------------------------------------------------

def expand_grid(strategy: str | Strategy, param_grid: Mapping[str, Any] | Sequence[Mapping] | None
                ) -> list[dict]:
    """Validated param dicts of a grid, in order, duplicates dropped.

    A dict maps param names to a value or a list of values (missing params take defaults) and
    expands to the cartesian product in declaration order; combinations that break a
    cross-param rule (e.g. ``fast >= slow``) are skipped. A list holds explicit param dicts,
    each of which must be valid.
    """
    strategy = get_strategy(strategy)
    if param_grid is None or isinstance(param_grid, Mapping):
        cells = _product(strategy, dict(param_grid or {}))
    elif isinstance(param_grid, Sequence) and not isinstance(param_grid, str):
        cells = [validate_params(strategy, p) for p in param_grid]
    else:
        raise ParamError(
            f"param_grid must be a dict of lists like {{'period': [10, 14]}} or a list of "
            f"param dicts, got {param_grid!r}."
        )
    seen: set[tuple] = set()
    ordered = []
    for cell in cells:
        key = tuple(cell.values())  # values are typed by Param.coerce, so equal means same
        if key not in seen:
            seen.add(key)
            ordered.append(cell)
    if not ordered:
        raise ParamError(f"The {strategy.name} grid {param_grid!r} has no valid combination.")
    return ordered


def _product(strategy: Strategy, grid: dict) -> list[dict]:
    names = strategy.param_names
    for key in grid:
        if key not in names:
            raise ParamError(f"{strategy.name} has no parameter {key!r}.{did_you_mean(key, names)}")
    axes = []
    for p in strategy.params:
        values = grid.get(p.name, [p.default])
        if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, np.ndarray)):
            values = [values]
        if len(values) == 0:
            raise ParamError(f"{strategy.name}: the grid gives no values for {p.name!r}.")
        axes.append([p.coerce(v, strategy.name) for v in values])
    cells = []
    for combo in itertools.product(*axes):
        cell = dict(zip(names, combo))
        if strategy.check is None or strategy.check(cell) is None:
            cells.append(identity_params(cell))
    return cells


def run_many(
    bars_by_symbol: Mapping[str, pd.DataFrame],
    strategy: str | Strategy,
    param_grid: Mapping[str, Any] | Sequence[Mapping] | None,
    exit_rules: Sequence | None = None,
    costs: Mapping[str, Any] | None = None,
    initial_capital: float = 100_000,
    whole_shares: bool = False,
    stop_on_entry_bar: bool = True,
    with_trades: bool = False,
    progress: Callable[[int, int], None] | None = None,
    with_curves: bool = False,
    periods_per_year: float | None = None,
) -> BatchResult:
    """Metrics for every symbol x params x exit rule (rows in that order), in parallel.

    Each row equals ``run_backtest`` of the same cell. ``with_trades`` also returns every
    trade with its ``row``; ``with_curves`` every row's equity curve as ``BatchCurves`` (8 bytes
    per bar per row in memory; without it a cell's curve is recomputed on demand). Each
    symbol's bars per year are read from its bars unless ``periods_per_year`` is given.
    """
    strategy = get_strategy(strategy)
    if not isinstance(bars_by_symbol, Mapping) or not bars_by_symbol:
        raise ParamError("bars_by_symbol must be a non-empty dict {symbol: bars DataFrame}.")
    cells = expand_grid(strategy, param_grid)
    rules = [canonical_exit_rule(r) for r in (list(exit_rules) if exit_rules else [None])]
    costs = canonical_costs(costs)
    capital = _check_capital(initial_capital, costs)
    override = check_periods_per_year(periods_per_year)
    settings = _settings(whole_shares, stop_on_entry_bar, override)
    grid = _GridSpec(strategy, cells, rules)

    metrics, symbols, trade_parts, curve_parts, offset = [], [], [], [], 0
    total = len(bars_by_symbol)
    for done, (symbol, bars) in enumerate(bars_by_symbol.items(), start=1):
        data = _Bars(bars, str(symbol), override)
        data.require(grid.needed, _describe(strategy, grid.longest))
        cell_metrics, trades = grid.run(data, costs, capital, settings, with_trades, offset)
        metrics.append(cell_metrics)
        symbols.append(data)
        if trades is not None:
            trade_parts.append(trades)
        if with_curves:
            curve_parts.append(grid.equity(data, costs, capital, settings))
        offset += len(cell_metrics)
        if progress is not None:
            progress(done, total)
    table = grid.table(symbols, np.concatenate(metrics), costs, capital, settings)
    trades = None
    if with_trades:  # one frame for every symbol's records (no per-symbol frames to concat)
        trades = _trade_records_frame(*(np.concatenate(part) for part in zip(*trade_parts)))
    curves = _batch_curves(symbols, curve_parts) if with_curves else None
    return BatchResult(table=table, trades=trades, curves=curves)


def _batch_curves(symbols: list[_Bars], equity: list[np.ndarray]) -> BatchCurves:
    """Per-symbol equity matrices (cells x bars) as one BatchCurves, one calendar per symbol."""
    bars = np.array([len(d) for d in symbols], dtype=np.int64)
    cells = np.array([len(e) for e in equity], dtype=np.int64)
    lengths = np.repeat(bars, cells)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    calendar_starts = np.concatenate(([0], np.cumsum(bars)[:-1]))
    return BatchCurves(
        values=np.concatenate([e.ravel() for e in equity]),
        offsets=offsets,
        dates=np.concatenate([d.index.to_numpy(dtype="datetime64[ns]") for d in symbols]),
        date_starts=np.repeat(calendar_starts, cells),
    )


class _GridSpec:
    """The symbol-independent part of a grid: params cells, exit rules and their columns."""

    def __init__(self, strategy: Strategy, cells: list[dict], rules: list[list[dict]]):
        self.strategy = strategy
        self.cells = cells
        self.rules = rules
        crosses = [strategy.rules(**c) for c in cells]
        cell_keys = [[k for k in (e.series, e.other, x.series, x.other) if k is not None]
                     for e, x in crosses]
        needed = [max(indicators.first_valid(k) for k in keys) + 2 for keys in cell_keys]
        self.needed = max(needed)
        self.longest = cells[needed.index(self.needed)]
        self.exit_vecs = np.array([exit_vector(r) for r in rules])
        atr_keys = [("atr", p[0]) if (p := atr_periods(r)) else None for r in rules]
        keys = [k for keys in cell_keys for k in keys] + [k for k in atr_keys if k is not None]
        self.keys = list(dict.fromkeys(keys))
        self.row_of = {k: i for i, k in enumerate(self.keys)}
        self.sides = np.array([_side(strategy, c) for c in cells])
        self.rule_rows = np.array(
            [[*self._cross(entry), *self._cross(exit_), side]
             for (entry, exit_), side in zip(crosses, self.sides)],
            dtype=np.float64,
        )
        self.atr_rows = np.array(
            [self.row_of[k] if k is not None else -1 for k in atr_keys], dtype=np.int64
        )
        params_json = [flat_params_json(c) for c in cells]
        # Strings are kept once per cell / rule and expanded with an index (Arrow take).
        self.texts = {
            "params_json": _strings(params_json),
            "params_hash": _strings([hash_of_json(j) for j in params_json]),
            "exit_json": _strings([canonical_json(r) for r in rules]),
            "exit_hash": _strings([stable_hash(r) for r in rules]),
        }
        self.cell_of_row = np.repeat(np.arange(len(cells), dtype=np.int64), len(rules))
        self.rule_of_row = np.tile(np.arange(len(rules), dtype=np.int64), len(cells))
        columns = [param_columns(strategy, c) for c in cells]  # the store's numeric columns
        self.param_columns = {
            name: np.array([col[name] for col in columns], dtype=np.float64)[self.cell_of_row]
            for name in columns[0]
        }

    def _cross(self, cross) -> tuple[float, float, float, float]:
        other = self.row_of[cross.other] if cross.other is not None else -1
        return self.row_of[cross.series], other, float(cross.level), float(cross.direction)

    def _args(self, data: _Bars, costs, capital, settings) -> tuple:
        """The grid kernels' arguments for one symbol."""
        series = np.vstack([data.series(k) for k in self.keys])
        return (
            data.open, data.high, data.low, data.close, series, self.rule_rows, self.exit_vecs,
            self.atr_rows, *_kernel_costs(costs, data.clock.periods_per_year),
            capital, settings["whole_shares"], settings["stop_on_entry_bar"], data.days,
            data.clock.periods_per_year,
        )

    def equity(self, data: _Bars, costs, capital, settings) -> np.ndarray:
        """Equity curves (cells x bars) of every cell on one symbol."""
        return grid_equity_nb(*self._args(data, costs, capital, settings))

    def run(self, data: _Bars, costs, capital, settings, with_trades, offset):
        """Metrics matrix (cells x METRIC_NAMES) and, if asked, the trade records with rows."""
        args = self._args(data, costs, capital, settings)
        if not with_trades:
            return grid_metrics(*args), None
        metrics, trades_int, trades_float = grid_metrics_and_trades(*args)
        counts = metrics[:, 0].astype(np.int64)
        rows = np.repeat(np.arange(len(counts), dtype=np.int64) + offset, counts)
        short = self.sides[self.cell_of_row] < 0
        direction = np.repeat(short.astype(np.int8) * DIRECTIONS.index("short"), counts)
        return metrics, (*_trade_records(data.index, trades_int, trades_float), direction, rows)

    def table(self, symbols: list[_Bars], metrics: np.ndarray, costs, capital, settings
              ) -> pd.DataFrame:
        """The BatchResult table: per-symbol facts repeated, per-cell columns tiled."""
        n_symbols = len(symbols)
        per_symbol = len(metrics) // n_symbols
        n = len(metrics)
        symbol_of_row = np.repeat(np.arange(n_symbols, dtype=np.int64), per_symbol)
        cell_of_row = np.tile(self.cell_of_row, n_symbols)
        rule_of_row = np.tile(self.rule_of_row, n_symbols)
        same = np.zeros(n, dtype=np.int64)

        def stamps(values):
            return np.array(values, dtype="datetime64[ns]")[symbol_of_row]

        def per_symbol(values):
            return np.array(values, dtype=np.float64)[symbol_of_row]

        columns: dict[str, Any] = {
            "symbol": _strings([d.symbol for d in symbols]).take(symbol_of_row),
            "strategy": _strings([self.strategy.name]).take(same),
            "params_json": self.texts["params_json"].take(cell_of_row),
            "params_hash": self.texts["params_hash"].take(cell_of_row),
            "exit_json": self.texts["exit_json"].take(rule_of_row),
            "exit_hash": self.texts["exit_hash"].take(rule_of_row),
            "start": stamps([d.index[0].to_datetime64() for d in symbols]),
            "end": stamps([d.index[-1].to_datetime64() for d in symbols]),
            "initial_capital": np.full(n, capital),
            "costs_json": _strings([canonical_json(costs)]).take(same),
            "settings_json": _strings([canonical_json(settings)]).take(same),
            "engine_version": _strings([ENGINE_VERSION]).take(same),
            "data_fingerprint": _strings([d.fingerprint() for d in symbols]).take(symbol_of_row),
            "periods_per_year": per_symbol([d.clock.periods_per_year for d in symbols]),
            "bar_seconds": per_symbol([d.clock.bar_seconds for d in symbols]),
            **_scope_columns(symbols, symbol_of_row, self.strategy),
        }
        columns.update({k: np.tile(v, n_symbols) for k, v in self.param_columns.items()})
        columns.update({name: metrics[:, i] for i, name in enumerate(METRIC_NAMES)})
        return pd.DataFrame(columns, copy=False)


def _scope_columns(symbols: list[_Bars], symbol_of_row: np.ndarray, strategy: Strategy
                   ) -> dict[str, Any]:
    """``source``, ``window_json`` (per symbol: what its bars were loaded as) and
    ``definition`` (a rule strategy's definition hash) of a batch table."""
    parts = [bars_scope_parts(d.frame) for d in symbols]
    same = np.zeros(len(symbol_of_row), dtype=np.int64)
    return {"source": _strings([source for source, _ in parts]).take(symbol_of_row),
            "window_json": _strings([canonical_json(w) for _, w in parts]).take(symbol_of_row),
            "definition": _strings([strategy.definition_hash or ""]).take(same)}


def _strings(values: list[str]):
    """A pandas string array (the default ``str`` dtype) to expand with ``take``."""
    return pd.array(values, dtype="str")

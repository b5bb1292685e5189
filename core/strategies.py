"""Strategy registry: each strategy is one small declaration (typed params + crossing rules).

A strategy's entry and exit are each a *crossing*: a series (optionally minus another series)
crossing a level. "Crosses below L" at bar t means ``v[t-1] >= L and v[t] < L``; "crosses above
H" means ``v[t-1] <= H and v[t] > H``; NaN never crosses. Signals are decided on bar t's close.
The same declaration drives the pure numpy ``signals`` function (scanner, tests) and the numba
kernels (engine), and the UI builds its forms from ``Param``. Each strategy also declares the
indicators its chart draws (``Indicator``; ``indicator_series`` computes them).
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from numbers import Integral, Real
from typing import Any, NamedTuple

import numpy as np

from core import indicators, rules
from core.errors import ParamError, UnknownStrategyError, did_you_mean
from core.rules import OSCILLATOR, Indicator, IndicatorSeries

BELOW = -1
ABOVE = 1


@dataclass(frozen=True)
class Param:
    """One typed parameter with its default and valid range (inclusive)."""

    name: str
    kind: type | str  # int | float | "int" | "float" | "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    choices: tuple = ()
    help: str = ""

    @property
    def kind_name(self) -> str:
        """``"int"``, ``"float"`` or ``"choice"`` whichever way ``kind`` was written."""
        return self.kind if isinstance(self.kind, str) else self.kind.__name__

    def coerce(self, value: Any, owner: str) -> Any:
        """Return ``value`` typed and range-checked, or raise ``ParamError`` naming the fix."""
        kind = self.kind_name
        if kind == "choice":
            if value not in self.choices:
                options = ", ".join(map(repr, self.choices))
                hint = did_you_mean(value, [str(c) for c in self.choices])
                raise ParamError(
                    f"{owner}: {self.name}={value!r} is not one of {options}.{hint}"
                )
            return value
        if isinstance(value, bool) or not isinstance(value, Real):
            raise ParamError(
                f"{owner}: {self.name} must be a number ({kind}), got {value!r} "
                f"of type {type(value).__name__}."
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise ParamError(f"{owner}: {self.name} must be a finite number, got {value!r}.")
        if kind == "int":
            if not isinstance(value, Integral) and not float(value).is_integer():
                raise ParamError(
                    f"{owner}: {self.name} must be a whole number, got {value!r}."
                )
            value = int(value)
        else:
            value = float(value)
        if (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        ):
            raise ParamError(
                f"{owner}: {self.name}={value!r} is out of range; use {self.low}..{self.high}."
            )
        return value


class Cross(NamedTuple):
    """A crossing rule: ``series - other`` (or ``series`` alone) crosses ``level``."""

    series: tuple
    other: tuple | None
    level: float
    direction: int  # BELOW or ABOVE


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: identity, typed params and a pure signal function."""

    name: str
    prefix: str
    title: str
    description: str
    params: tuple[Param, ...]
    signals: Callable[..., tuple[np.ndarray, np.ndarray]]
    rules: Callable[..., tuple[Cross, Cross]] | None = None  # params -> (entry, exit) crossing
    check: Callable[[dict], str | None] | None = None  # cross-param constraint -> error text
    direction: str = "long"  # a rule strategy's fixed direction (its file's `direction`)
    source: str = "built-in"  # or the path of the rule strategy's file
    definition: str | None = None  # a rule strategy's canonical definition (JSON text)
    definition_hash: str | None = None  # stable_hash of that definition (16 hex)
    indicators: tuple[Indicator, ...] = ()  # what its chart draws

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


def crossings(value: np.ndarray, level: float, direction: int) -> np.ndarray:
    """Boolean array: where ``value`` crosses ``level`` in ``direction`` (bar 0 never)."""
    out = np.zeros(value.shape[0], dtype=bool)
    prev, cur = value[:-1], value[1:]
    if direction == BELOW:
        out[1:] = (prev >= level) & (cur < level)
    else:
        out[1:] = (prev <= level) & (cur > level)
    return out


def rule_value(rule: Cross, series: Mapping[tuple, np.ndarray]) -> np.ndarray:
    """The crossing series of a rule: ``series`` or ``series - other``."""
    value = series[rule.series]
    return value if rule.other is None else value - series[rule.other]


def _signals_from_rules(name: str, open_, high, low, close, **params):
    """Entries and exits of strategy ``name`` over the given bars (params validated here)."""
    entry, exit_ = get_strategy(name).rules(**validate_params(name, params))
    arrays = [np.ascontiguousarray(a, dtype=np.float64) for a in (open_, high, low, close)]
    series: dict[tuple, np.ndarray] = {}
    for rule in (entry, exit_):
        for key in (rule.series, rule.other):
            if key is not None and key not in series:
                series[key] = indicators.compute_series(key, *arrays)
    entries = crossings(rule_value(entry, series), entry.level, entry.direction)
    exits = crossings(rule_value(exit_, series), exit_.level, exit_.direction)
    return entries, exits


def _declare(name, prefix, title, description, params, rules, check=None,
             indicators=()) -> Strategy:
    return Strategy(name, prefix, title, description, tuple(params),
                    partial(_signals_from_rules, name), rules, check,
                    indicators=tuple(indicators))


# --- the strategies -------------------------------------------------------------------------

#: Every built-in's last param: trade the rules long (default) or mirrored, short.
DIRECTION = Param("direction", "choice", "long", choices=("long", "short"),
                  help="long: buy the entry, sell the exit; short: the mirrored rules, sold short")


def identity_params(params: dict) -> dict:
    """``params`` in their stored form: ``direction`` is left out when it is ``"long"``.

    Long runs stored before shorts existed had no ``direction``; leaving the default out keeps
    their canonical params, hashes and numeric columns exactly as they were.
    """
    if params.get(DIRECTION.name) == DIRECTION.default:
        params = {k: v for k, v in params.items() if k != DIRECTION.name}
    return params


def current_definition(name: str) -> str | None:
    """The definition hash a strategy runs today ("" for built-ins, whose behaviour the engine
    version covers); None when no strategy of that name is registered any more."""
    try:
        return get_strategy(name).definition_hash or ""
    except UnknownStrategyError:
        return None


def direction_of(strategy: Strategy, params: Mapping[str, Any]) -> str:
    """``"long"`` or ``"short"``: a built-in's ``direction`` param (long when left out of the
    validated params), else the strategy's fixed direction."""
    if DIRECTION in strategy.params:
        return params.get(DIRECTION.name, DIRECTION.default)
    return strategy.direction


def _rsi_rules(period, oversold, overbought, direction="long"):
    rsi = ("rsi", period)
    if direction == "short":
        return Cross(rsi, None, overbought, ABOVE), Cross(rsi, None, oversold, BELOW)
    return Cross(rsi, None, oversold, BELOW), Cross(rsi, None, overbought, ABOVE)


def _rsi_check(p):
    if p["oversold"] >= p["overbought"]:
        return f"oversold ({p['oversold']}) must be below overbought ({p['overbought']})"
    return None


def _ma_rules(fast, slow, kind, direction="long"):
    fast_ma, slow_ma = (kind, fast), (kind, slow)
    up, down = Cross(fast_ma, slow_ma, 0.0, ABOVE), Cross(fast_ma, slow_ma, 0.0, BELOW)
    return (down, up) if direction == "short" else (up, down)


def _ma_check(p):
    if p["fast"] >= p["slow"]:
        return f"fast ({p['fast']}) must be below slow ({p['slow']})"
    return None


def _bb_rules(period, num_std, direction="long"):
    middle = ("sma", period)
    if direction == "short":
        upper = ("bb_upper", period, num_std)
        return Cross(("close",), upper, 0.0, ABOVE), Cross(("close",), middle, 0.0, BELOW)
    lower = ("bb_lower", period, num_std)
    return Cross(("close",), lower, 0.0, BELOW), Cross(("close",), middle, 0.0, ABOVE)


def _dc_rules(period, exit_period, direction="long"):
    if direction == "short":
        return (Cross(("close",), ("dc_low", period), 0.0, BELOW),
                Cross(("close",), ("dc_high", exit_period), 0.0, ABOVE))
    return (Cross(("close",), ("dc_high", period), 0.0, ABOVE),
            Cross(("close",), ("dc_low", exit_period), 0.0, BELOW))


_STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (
        _declare(
            "rsi_meanrev", "rsi", "RSI mean reversion",
            "Buy when RSI crosses below `oversold`; sell when it crosses above `overbought`. "
            "Short: sell short when RSI crosses above `overbought`; buy back when it crosses "
            "below `oversold`.",
            (
                Param("period", int, 14, 2, 500, 1, help="RSI look-back in bars (Wilder)"),
                Param("oversold", float, 30.0, 0, 100, 1,
                      help="long: enter when RSI crosses below; short: exit"),
                Param("overbought", float, 70.0, 0, 100, 1,
                      help="long: exit when RSI crosses above; short: enter"),
                DIRECTION,
            ),
            _rsi_rules, _rsi_check,
            (Indicator("rsi", ("close", "period"), OSCILLATOR, ("oversold", "overbought")),),
        ),
        _declare(
            "ma_crossover", "ma", "Moving-average crossover",
            "Buy when the fast average crosses above the slow one; sell when it crosses below. "
            "Short: sell short when it crosses below; buy back when it crosses above.",
            (
                Param("fast", int, 10, 1, 1000, 1, help="fast average length in bars"),
                Param("slow", int, 50, 2, 2000, 1, help="slow average length in bars"),
                Param("kind", "choice", "sma", choices=("sma", "ema"), help="average type"),
                DIRECTION,
            ),
            _ma_rules, _ma_check,
            (Indicator("kind", ("close", "fast")),  # fn "kind": the sma or ema the run chose
             Indicator("kind", ("close", "slow"))),
        ),
        _declare(
            "bollinger_reversion", "bb", "Bollinger band reversion",
            "Buy when the close crosses below the lower band; sell when it crosses back above "
            "the middle band (the SMA). Short: sell short when the close crosses above the "
            "upper band; buy back when it crosses below the middle band.",
            (
                Param("period", int, 20, 2, 500, 1, help="band look-back in bars"),
                Param("num_std", float, 2.0, 0.1, 10.0, 0.1, help="band width in std devs"),
                DIRECTION,
            ),
            _bb_rules, None,
            (Indicator("bb_upper", ("close", "period", "num_std")),
             Indicator("bb_mid", ("close", "period")),
             Indicator("bb_lower", ("close", "period", "num_std"))),
        ),
        _declare(
            "breakout", "dc", "Donchian breakout",
            "Buy when the close crosses above the highest high of the previous `period` bars; "
            "sell when it crosses below the lowest low of the previous `exit_period` bars. "
            "Short: sell short when the close crosses below the lowest low of the previous "
            "`period` bars; buy back when it crosses above the highest high of the previous "
            "`exit_period` bars.",
            (
                Param("period", int, 20, 1, 1000, 1,
                      help="entry channel: prior N-bar high (short: low)"),
                Param("exit_period", int, 10, 1, 1000, 1,
                      help="exit channel: prior N-bar low (short: high)"),
                DIRECTION,
            ),
            _dc_rules, None,
            (Indicator("donchian_high", ("period",), direction="long"),
             Indicator("donchian_low", ("exit_period",), direction="long"),
             Indicator("donchian_low", ("period",), direction="short"),
             Indicator("donchian_high", ("exit_period",), direction="short")),
        ),
    )
}


def list_strategies() -> list[Strategy]:
    """Every strategy: the built-ins in registration order, then the rule strategies of the
    strategies folder in file-name order (files that fail are left out: ``strategy_problems``)."""
    return [*_STRATEGIES.values(), *_folder_scan().strategies.values()]


def get_strategy(name: str | Strategy) -> Strategy:
    """The strategy registered as ``name`` (a built-in or a rule strategy file, re-read when
    it changed); ``UnknownStrategyError`` suggests the nearest."""
    if isinstance(name, Strategy):
        return name
    found = _STRATEGIES.get(name) if isinstance(name, str) else None
    if found is None and isinstance(name, str):
        found = _rule_strategy(name)
    if found is None:
        known = [*_STRATEGIES, *_folder_scan().strategies]
        raise UnknownStrategyError(
            f"Unknown strategy {name!r}.{did_you_mean(name, known)}"
        ) from None
    return found


def strategy_problems() -> list:
    """The strategy files that could not be loaded, as ``FileProblem(path, error)``."""
    return list(_folder_scan().problems)


_LAST_SCAN: dict = {}  # where settings come from -> the latest scan of the strategies folder


def _settings_origin() -> tuple:
    """What decides the strategies folder, short of reading the settings again."""
    return (os.getcwd(), os.environ.get("HINDSIGHT_STRATEGIES"),
            os.environ.get("HINDSIGHT_CONFIG"))


def _folder_scan():
    """The strategies folder's rule strategies (``core.rule_files``; cached by file mtimes)."""
    from core.config import load_settings
    from core.rule_files import scan_folder

    scan = scan_folder(load_settings().strategies_folder, _STRATEGIES.values())
    _LAST_SCAN.clear()
    _LAST_SCAN[_settings_origin()] = scan
    return scan


def _rule_strategy(name: str) -> Strategy | None:
    """A rule strategy by name: from the latest scan while its file is unchanged (one stat),
    else from a new scan of the folder."""
    from core.rule_files import is_current

    scan = _LAST_SCAN.get(_settings_origin())
    found = scan.strategies.get(name) if scan is not None else None
    if found is not None and is_current(found):
        return found
    return _folder_scan().strategies.get(name)


def validate_params(strategy_name: str | Strategy, params: Mapping[str, Any] | None) -> dict:
    """Typed params in declaration order with defaults filled in, or ``ParamError``.

    The one exception: ``direction`` is left out when it is ``"long"`` (``identity_params``).

    Valid results are memoised by the exact input (names, value types and values): sweeps and
    the store validate the same parameter sets again and again.
    """
    strategy = get_strategy(strategy_name)
    key = _memo_key(strategy, params)
    found = _VALIDATED.get(key) if key is not None else None
    if found is not None and found[0] is strategy:
        return dict(found[1])
    out = _validated(strategy, params)
    if key is not None:
        if len(_VALIDATED) >= _VALIDATED_MAX:
            _VALIDATED.clear()
        _VALIDATED[key] = (strategy, out)
        return dict(out)
    return out


_VALIDATED: dict[tuple, tuple[Strategy, dict]] = {}
_VALIDATED_MAX = 200_000


def _memo_key(strategy: Strategy, params: Any) -> tuple | None:
    """A hashable key of a plain dict of params (None when it cannot be one)."""
    if type(params) is not dict:
        return None
    key = (strategy.name, *[(k, type(v), v) for k, v in params.items()])
    try:
        hash(key)
    except TypeError:
        return None
    return key


def _validated(strategy: Strategy, params: Mapping[str, Any] | None) -> dict:
    if params is not None and not isinstance(params, Mapping):
        raise ParamError(
            f"{strategy.name}: params must be a mapping like {{'period': 14}}, got {params!r}."
        )
    params = dict(params or {})
    known = strategy.param_names
    for key in params:
        if key not in known:
            raise ParamError(
                f"{strategy.name} has no parameter {key!r}.{did_you_mean(key, known)}"
            )
    out = {
        p.name: p.coerce(params[p.name], strategy.name) if p.name in params else p.default
        for p in strategy.params
    }
    problem = strategy.check(out) if strategy.check else None
    if problem:
        raise ParamError(f"{strategy.name}: {problem}.")
    return identity_params(out)


def series_keys(strategy_name: str | Strategy, params: Mapping[str, Any]) -> list[tuple]:
    """Indicator series the strategy needs for these (validated) params."""
    entry, exit_ = get_strategy(strategy_name).rules(**params)
    keys = [entry.series, entry.other, exit_.series, exit_.other]
    return [k for k in dict.fromkeys(keys) if k is not None]


def min_bars(strategy_name: str | Strategy, params: Mapping[str, Any] | None) -> int:
    """Bars needed before a signal can occur: first defined bar of each series, plus 2.

    A crossing at bar t needs the series at t-1 and t, and the fill happens at t+1.
    """
    strategy = get_strategy(strategy_name)
    return bars_needed(strategy, validate_params(strategy, params))


def bars_needed(strategy: Strategy, params: Mapping[str, Any]) -> int:
    """``min_bars`` for params that are already validated (no second validation)."""
    return max(indicators.first_valid(k) for k in series_keys(strategy, params)) + 2


def param_columns(strategy_name: str | Strategy, params: Mapping[str, Any]) -> dict[str, float]:
    """Stored numeric columns ``<prefix>_<param>``; a choice param is stored as its index.

    ``direction`` has none: it is in the params (left out when long, see ``identity_params``),
    so stores written before shorts existed keep their columns.
    """
    strategy = get_strategy(strategy_name)
    out = {}
    for p in strategy.params:
        if p == DIRECTION:  # by value: a declaration may come unpickled in a worker
            continue
        value = params[p.name]
        if p.kind_name == "choice":
            value = p.choices.index(value)
        out[f"{strategy.prefix}_{p.name}"] = float(value)
    return out


def indicator_series(strategy_name: str | Strategy, params: Mapping[str, Any] | None,
                     bars: Mapping[str, Any]) -> list[IndicatorSeries]:
    """The strategy's declared indicators for ``params`` over ``bars`` (columns open, high, low,
    close and optionally volume, e.g. a DataFrame): what a chart of its runs draws.

    Indicators that come out with the same label are the same series and are drawn once.
    """
    strategy = get_strategy(strategy_name)
    params = validate_params(strategy, params)
    direction = direction_of(strategy, params)
    columns = [np.asarray(bars[c], dtype=np.float64) for c in ("open", "high", "low", "close")]
    volume = np.asarray(bars["volume"], dtype=np.float64) if "volume" in bars else None
    arrays, memo = rules.Bars(*columns, volume), {}
    out: dict[str, IndicatorSeries] = {}
    for spec in strategy.indicators:
        if spec.direction in (None, direction):
            found = rules.compute_indicator(spec, arrays, params, memo)
            out.setdefault(found.label, found)
    return list(out.values())

"""Today's signals, next to the stored track record of exactly that configuration.

``scan`` runs a strategy's own ``signals`` function over the latest bars of every symbol of a
universe and keeps the symbols whose entry fired on the last bar (or within the last ``lookback``
bars). ``add_backtest_stats`` joins each row with the stored backtest of the same (symbol,
strategy, params, exit rule) key, plus that configuration's pooled figures across the universe.

Only the tail of the bars that the indicators need is computed on (with a generous warm-up, so
recursive indicators such as Wilder's RSI have converged to their full-history values).

A symbol whose data cannot be loaded (a malformed file, an unknown name) is skipped and listed in
``frame.attrs["skipped"]``; every other symbol is still scanned. Each row says how old its
signal is (``bars_since_signal``), when the symbol's data ends (``last_bar``) and whether that is
older than the data's calendar expects (``data_stale``, see ``is_stale``).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core import strategies
from core.canonical import canonical_json, stable_hash
from core.errors import HindsightError, ValidationError
from core.exits import canonical_exit_rule

#: Columns of a scan result, in order.
SIGNAL_COLUMNS: tuple[str, ...] = (
    "symbol", "strategy", "signal_date", "bars_ago", "signal_close", "close", "last_date",
    "params_json", "exit_json", "params_hash", "exit_hash",
    "bars_since_signal", "last_bar", "data_stale",
)

#: The exact store key of a signal row.
KEY_COLUMNS: tuple[str, ...] = ("symbol", "strategy", "params_hash", "exit_hash")

#: Stored metrics joined onto each signal row.
STAT_COLUMNS: tuple[str, ...] = (
    "win_rate", "num_trades", "sharpe_ratio", "cagr", "max_drawdown", "expectancy",
)

#: Pooled figures of one configuration across the stored universe.
POOLED_COLUMNS: tuple[str, ...] = ("pooled_trades", "pooled_win_rate", "pooled_symbols")

WARMUP_FACTOR = 10  # bars computed per bar of indicator look-back
MIN_TAIL = 300  # never compute on fewer bars than this (recursive indicators converge)
#: Sessions a symbol's data may miss, beyond one bar interval, before it counts as stale
#: (a holiday plus a data update that comes in late).
STALE_TOLERANCE_SESSIONS = 2
#: Data with at least this share of weekend bars trades every day (crypto); else weekdays.
EVERY_DAY_WEEKEND_SHARE = 0.2
#: Recent bars looked at to tell the calendar and the bar interval.
CALENDAR_BARS = 500


def scan(
    source: Mapping[str, pd.DataFrame] | Any,
    strategy: str,
    params: Mapping[str, Any] | None = None,
    exit_rule: Any = None,
    lookback: int = 1,
    *,
    symbols: Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    now: Any = None,
) -> pd.DataFrame:
    """Symbols whose entry signal fired on one of their last ``lookback`` bars.

    ``source`` is either a mapping symbol -> bars or a data provider; a provider is asked for
    ``symbols`` (default: all of its symbols) through ``provider.load_available``, so symbols
    that cannot be loaded are skipped and listed in ``attrs["skipped"]`` as
    ``{"symbol", "error"}`` dicts. ``params`` are validated and completed by the strategy's
    schema; ``exit_rule`` is canonicalised (it does not change the signal, it names the stored
    configuration to join). ``now`` (default: the current local time) decides ``data_stale``.
    Returns one row per firing symbol (columns ``SIGNAL_COLUMNS``), newest signals first.
    """
    strat = strategies.get_strategy(strategy)
    full_params = strategies.validate_params(strat.name, {} if params is None else params)
    rule = canonical_exit_rule(exit_rule)
    lookback = _check_lookback(lookback)
    bars_by_symbol, skipped = _universe_bars(source, symbols, start, end)
    tail = _tail_length(strat.name, full_params, lookback)
    now = pd.Timestamp.now() if now is None else pd.Timestamp(now)

    identity = {
        "strategy": strat.name,
        "params_json": canonical_json(full_params),
        "exit_json": canonical_json(rule),
        "params_hash": stable_hash(full_params),
        "exit_hash": stable_hash(rule),
    }
    rows = []
    for symbol, bars in bars_by_symbol.items():
        try:
            hit = _latest_entry(strat, full_params, bars, tail, lookback)
        except HindsightError as exc:
            skipped[symbol] = str(exc)
            continue
        if hit is not None:
            rows.append({"symbol": symbol, **identity, **hit,
                         "data_stale": is_stale(bars.index, now)})
    frame = pd.DataFrame(rows, columns=list(SIGNAL_COLUMNS))
    for column, dtype in (("bars_ago", "int64"), ("bars_since_signal", "int64"),
                          ("data_stale", "bool")):
        frame[column] = frame[column].astype(dtype)
    frame = frame.sort_values(["bars_ago", "symbol"], kind="stable").reset_index(drop=True)
    frame.attrs["skipped"] = [{"symbol": s, "error": e} for s, e in skipped.items()]
    return frame


def _check_lookback(lookback: Any) -> int:
    try:
        value = int(lookback)
    except (TypeError, ValueError):
        value = 0
    if value < 1 or value != lookback:
        raise ValidationError(
            f"lookback must be a whole number of bars >= 1, got {lookback!r}. "
            "Use 1 for signals on the latest bar only."
        )
    return value


def _universe_bars(source, symbols, start, end) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """(bars per symbol, error per skipped symbol) from a mapping or a provider.

    A universe with nothing to scan is an error; when every symbol was skipped it names them.
    """
    skipped: dict[str, str] = {}
    if isinstance(source, Mapping):
        wanted = list(source) if symbols is None else list(symbols)
        bars = {s: source[s] for s in wanted if s in source}
    else:
        wanted = list(source.symbols()) if symbols is None else list(symbols)
        if not wanted:
            bars = {}
        elif hasattr(source, "load_available"):  # every Provider; a bare load_many cannot skip
            bars, skipped = source.load_available(wanted, start=start, end=end)
        else:
            bars = source.load_many(wanted, start=start, end=end)
    if bars:
        return dict(bars), dict(skipped)
    if skipped:
        first, *others = skipped.values()
        more = f" ({len(others)} more symbol(s) skipped too)" if others else ""
        raise ValidationError(f"No symbol could be scanned: {first}{more}")
    raise ValidationError(
        "The universe is empty: no symbols with price data to scan. "
        "Pick the demo universe, point the data folder at your CSV files, or type symbols."
    )


def _tail_length(strategy: str, params: dict[str, Any], lookback: int) -> int:
    """How many of the latest bars to compute on: warm-up for the indicators plus the lookback."""
    need = 0
    if hasattr(strategies, "min_bars"):
        need = int(strategies.min_bars(strategy, params))
    else:
        need = max([int(v) for v in params.values()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)] or [0])
    return max(MIN_TAIL, WARMUP_FACTOR * need) + lookback


def _latest_entry(strat, params, bars: pd.DataFrame, tail: int, lookback: int) -> dict | None:
    """The most recent entry within the last ``lookback`` bars of ``bars``, or None."""
    if len(bars) == 0:
        return None
    columns = [bars[c].to_numpy(dtype=np.float64)[-tail:] for c in ("open", "high", "low", "close")]
    if getattr(strat, "definition_hash", None):  # a rule strategy may read volume too
        params = {**params, "volume": bars["volume"].to_numpy(dtype=np.float64)[-tail:]}
    entries, _ = strat.signals(*columns, **params)
    window = np.asarray(entries[-lookback:], dtype=bool)
    fired = np.flatnonzero(window)
    if fired.size == 0:
        return None
    bars_ago = len(window) - 1 - int(fired[-1])
    close = columns[3]
    return {
        "signal_date": bars.index[-1 - bars_ago],  # the full timestamp: intraday keeps its time
        "bars_ago": bars_ago,
        "signal_close": float(close[-1 - bars_ago]),
        "close": float(close[-1]),
        "last_date": bars.index[-1],
        "bars_since_signal": bars_ago,
        "last_bar": bars.index[-1],
    }


def trades_every_day(index: pd.DatetimeIndex) -> bool:
    """Whether bars come seven days a week (crypto) rather than on weekdays (exchanges, FX)."""
    recent = index[-CALENDAR_BARS:]
    return len(recent) > 0 and float((recent.day_of_week >= 5).mean()) >= EVERY_DAY_WEEKEND_SHARE


def _sessions_between(first: pd.Timestamp, last: pd.Timestamp, every_day: bool) -> int:
    """Sessions on the days after ``first`` and before ``last`` (both exclusive)."""
    a, b = first.normalize() + pd.Timedelta(days=1), last.normalize()
    if b <= a:
        return 0
    if every_day:
        return (b - a).days
    return int(np.busday_count(a.date(), b.date()))


def _bar_interval(index: pd.DatetimeIndex, every_day: bool) -> int:
    """Typical sessions from one bar to the next (1 for daily and intraday, ~21 for monthly)."""
    days = index[-CALENDAR_BARS:].normalize().unique().to_numpy().astype("datetime64[D]")
    if len(days) < 2:
        return 1
    gaps = np.diff(days).astype(np.int64) if every_day else np.busday_count(days[:-1], days[1:])
    return max(1, int(np.median(gaps)))


def is_stale(index: pd.DatetimeIndex, now: Any = None) -> bool:
    """Whether data ending at ``index[-1]`` is older than its calendar expects at ``now``.

    The calendar is every day for data with weekend bars (``trades_every_day``), else weekdays
    (no holiday list). Stale means more than one bar interval plus ``STALE_TOLERANCE_SESSIONS``
    sessions passed between the last bar's day and today (today's session is not counted: it
    may not be over). Daily weekday data from Friday is stale on Thursday.
    """
    if len(index) == 0:
        return True
    now = pd.Timestamp.now() if now is None else pd.Timestamp(now)
    every_day = trades_every_day(index)
    missed = _sessions_between(index[-1], now, every_day)
    return missed > _bar_interval(index, every_day) - 1 + STALE_TOLERANCE_SESSIONS


def add_backtest_stats(signals: pd.DataFrame, store, universe: Sequence[str] | None = None,
                       scope=None) -> pd.DataFrame:
    """``signals`` with the stored stats of each row's exact configuration joined on.

    Adds ``STAT_COLUMNS`` and ``backtest_id`` from ``store.bulk_get_stats`` on the key (symbol,
    strategy, params, exit rule) in ``scope`` (default: the store's default scope, the full
    history of the configured source), and ``POOLED_COLUMNS``: the same configuration's trades
    and trade-weighted win rate summed over every stored symbol (of ``universe`` when given)
    in that scope. A configuration never backtested keeps NaN (and no id): missing is shown as
    missing.
    """
    out = signals.copy()
    if out.empty:
        for column in (*STAT_COLUMNS, "backtest_id", *POOLED_COLUMNS):
            out[column] = pd.Series(dtype="object" if column == "backtest_id" else "float64")
        return out
    stats = _exact_stats(out, store, scope)
    for column in STAT_COLUMNS:
        out[column] = stats[column].to_numpy()
    out["backtest_id"] = pd.Series(stats["backtest_id"].tolist(), index=out.index, dtype="object")
    pooled = _pooled_stats(out, store, universe, scope)
    for column in POOLED_COLUMNS:
        out[column] = pooled[column].to_numpy()
    return out


def _exact_stats(signals: pd.DataFrame, store, scope) -> pd.DataFrame:
    """Stored stats for every signal row, aligned with the rows (NaN / None where missing)."""
    keys = signals[list(KEY_COLUMNS)].reset_index(drop=True)
    found = store.bulk_get_stats(keys, scope=scope)
    wanted = [*KEY_COLUMNS, *STAT_COLUMNS, "backtest_id"]
    found = found[wanted] if len(found) else pd.DataFrame(columns=wanted)
    found = found.drop_duplicates(list(KEY_COLUMNS), keep="last")
    joined = keys.merge(found, on=list(KEY_COLUMNS), how="left", validate="many_to_one")
    joined[list(STAT_COLUMNS)] = joined[list(STAT_COLUMNS)].astype("float64")
    joined["backtest_id"] = pd.Series([str(b) if pd.notna(b) else None
                                       for b in joined["backtest_id"]], dtype="object")
    return joined


def _pooled_stats(signals: pd.DataFrame, store, universe: Sequence[str] | None, scope
                  ) -> pd.DataFrame:
    """Pooled trades, trade-weighted win rate and symbol count per configuration of the rows."""
    allowed = None if universe is None else set(universe)
    by_config: dict[tuple[str, str, str], dict[str, float]] = {}
    for strategy, params_json, exit_json in signals[
            ["strategy", "params_json", "exit_json"]].drop_duplicates().itertuples(index=False):
        stored = store.query(strategy=strategy, params=json.loads(params_json),
                             exit_rule=json.loads(exit_json), scope=scope)
        if allowed is not None and len(stored):
            stored = stored[stored["symbol"].isin(allowed)]
        by_config[(strategy, params_json, exit_json)] = pool(stored)
    rows = [by_config[key] for key in signals[["strategy", "params_json", "exit_json"]]
            .itertuples(index=False, name=None)]
    return pd.DataFrame(rows, columns=list(POOLED_COLUMNS))


def pool(stored: pd.DataFrame) -> dict[str, float]:
    """Pooled trades and trade-weighted win rate of stored rows (one per symbol)."""
    if stored is None or len(stored) == 0:
        return {"pooled_trades": np.nan, "pooled_win_rate": np.nan, "pooled_symbols": 0.0}
    trades = stored["num_trades"].to_numpy(dtype=float)
    win_rate = stored["win_rate"].to_numpy(dtype=float)
    counted = np.isfinite(trades) & np.isfinite(win_rate) & (trades > 0)
    total = float(trades[np.isfinite(trades)].sum())
    wins = float((trades[counted] * win_rate[counted]).sum())
    return {
        "pooled_trades": total,
        "pooled_win_rate": wins / total if total > 0 else np.nan,
        "pooled_symbols": float(stored["symbol"].nunique()),
    }

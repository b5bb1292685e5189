"""Today's signals, next to the stored track record of exactly that configuration.

``scan`` runs a strategy's own ``signals`` function over the latest bars of every symbol of a
universe and keeps the symbols whose entry fired on the last bar (or within the last ``lookback``
bars). ``add_backtest_stats`` joins each row with the stored backtest of the same (symbol,
strategy, params, exit rule) key, plus that configuration's pooled figures across the universe.

Only the tail of the bars that the indicators need is computed on (with a generous warm-up, so
recursive indicators such as Wilder's RSI have converged to their full-history values).
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core import strategies
from core.canonical import canonical_json, stable_hash
from core.errors import ValidationError
from core.exits import canonical_exit_rule

#: Columns of a scan result, in order.
SIGNAL_COLUMNS: tuple[str, ...] = (
    "symbol", "strategy", "signal_date", "bars_ago", "signal_close", "close", "last_date",
    "params_json", "exit_json", "params_hash", "exit_hash",
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
) -> pd.DataFrame:
    """Symbols whose entry signal fired on one of their last ``lookback`` bars.

    ``source`` is either a mapping symbol -> bars or a data provider; a provider is asked for
    ``symbols`` (default: all of its symbols) through ``provider.load_many(symbols, start, end)``.
    ``params`` are validated and completed by the strategy's schema; ``exit_rule`` is
    canonicalised (it does not change the signal, it names the stored configuration to join).
    Returns one row per firing symbol (columns ``SIGNAL_COLUMNS``), newest signals first.
    """
    strat = strategies.get_strategy(strategy)
    full_params = strategies.validate_params(strat.name, dict(params or {}))
    rule = canonical_exit_rule(exit_rule)
    lookback = _check_lookback(lookback)
    bars_by_symbol = _universe_bars(source, symbols, start, end)
    tail = _tail_length(strat.name, full_params, lookback)

    identity = {
        "strategy": strat.name,
        "params_json": canonical_json(full_params),
        "exit_json": canonical_json(rule),
        "params_hash": stable_hash(full_params),
        "exit_hash": stable_hash(rule),
    }
    rows = []
    for symbol, bars in bars_by_symbol.items():
        hit = _latest_entry(strat, full_params, bars, tail, lookback)
        if hit is not None:
            rows.append({"symbol": symbol, **identity, **hit})
    frame = pd.DataFrame(rows, columns=list(SIGNAL_COLUMNS))
    frame["bars_ago"] = frame["bars_ago"].astype("int64")
    return frame.sort_values(["bars_ago", "symbol"], kind="stable").reset_index(drop=True)


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


def _universe_bars(source, symbols, start, end) -> dict[str, pd.DataFrame]:
    """Bars per symbol from a mapping or a provider; an empty universe is an error."""
    if isinstance(source, Mapping):
        wanted = list(source) if symbols is None else list(symbols)
        bars = {s: source[s] for s in wanted if s in source}
    else:
        wanted = list(source.symbols()) if symbols is None else list(symbols)
        bars = dict(source.load_many(wanted, start=start, end=end)) if wanted else {}
    if not bars:
        raise ValidationError(
            "The universe is empty: no symbols with price data to scan. "
            "Pick the demo universe, point the data folder at your CSV files, or type symbols."
        )
    return bars


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
    entries, _ = strat.signals(*columns, **params)
    window = np.asarray(entries[-lookback:], dtype=bool)
    fired = np.flatnonzero(window)
    if fired.size == 0:
        return None
    bars_ago = len(window) - 1 - int(fired[-1])
    close = columns[3]
    return {
        "signal_date": bars.index[-1 - bars_ago],
        "bars_ago": bars_ago,
        "signal_close": float(close[-1 - bars_ago]),
        "close": float(close[-1]),
        "last_date": bars.index[-1],
    }


def add_backtest_stats(signals: pd.DataFrame, store, universe: Sequence[str] | None = None
                       ) -> pd.DataFrame:
    """``signals`` with the stored stats of each row's exact configuration joined on.

    Adds ``STAT_COLUMNS`` and ``backtest_id`` from ``store.bulk_get_stats`` on the key (symbol,
    strategy, params, exit rule), and ``POOLED_COLUMNS``: the same configuration's trades and
    trade-weighted win rate summed over every stored symbol (of ``universe`` when given). A
    configuration never backtested keeps NaN (and no id): missing is shown as missing.
    """
    out = signals.copy()
    if out.empty:
        for column in (*STAT_COLUMNS, "backtest_id", *POOLED_COLUMNS):
            out[column] = pd.Series(dtype="object" if column == "backtest_id" else "float64")
        return out
    stats = _exact_stats(out, store)
    for column in STAT_COLUMNS:
        out[column] = stats[column].to_numpy()
    out["backtest_id"] = pd.Series(stats["backtest_id"].tolist(), index=out.index, dtype="object")
    pooled = _pooled_stats(out, store, universe)
    for column in POOLED_COLUMNS:
        out[column] = pooled[column].to_numpy()
    return out


def _exact_stats(signals: pd.DataFrame, store) -> pd.DataFrame:
    """Stored stats for every signal row, aligned with the rows (NaN / None where missing)."""
    keys = signals[list(KEY_COLUMNS)].reset_index(drop=True)
    found = store.bulk_get_stats(keys)
    wanted = [*KEY_COLUMNS, *STAT_COLUMNS, "backtest_id"]
    found = found[wanted] if len(found) else pd.DataFrame(columns=wanted)
    found = found.drop_duplicates(list(KEY_COLUMNS), keep="last")
    joined = keys.merge(found, on=list(KEY_COLUMNS), how="left", validate="many_to_one")
    joined[list(STAT_COLUMNS)] = joined[list(STAT_COLUMNS)].astype("float64")
    joined["backtest_id"] = pd.Series([str(b) if pd.notna(b) else None
                                       for b in joined["backtest_id"]], dtype="object")
    return joined


def _pooled_stats(signals: pd.DataFrame, store, universe: Sequence[str] | None) -> pd.DataFrame:
    """Pooled trades, trade-weighted win rate and symbol count per configuration of the rows."""
    allowed = None if universe is None else set(universe)
    by_config: dict[tuple[str, str, str], dict[str, float]] = {}
    for strategy, params_json, exit_json in signals[
            ["strategy", "params_json", "exit_json"]].drop_duplicates().itertuples(index=False):
        stored = store.query(strategy=strategy, params=json.loads(params_json),
                             exit_rule=json.loads(exit_json))
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

"""Scanner page helpers: the signal table as shown, stat filters, and filling missing stats."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from views import _ui

SIGNAL_VIEW = ("details", "symbol", "strategy", "signal_date", "bars_ago", "close", "win_rate",
               "num_trades", "sharpe_ratio", "cagr", "max_drawdown", "expectancy",
               "pooled_trades", "pooled_win_rate", "params", "exit_rule", "backtest_id")


def signal_view(signals: pd.DataFrame) -> pd.DataFrame:
    """Scanner rows as shown: link, identity, stats, readable params and exit rule."""
    from core.exits import exit_label

    out = _ui.with_details_links(signals)
    out["params"] = [_ui.params_label(_ui.from_json(text)) for text in out["params_json"]]
    out["exit_rule"] = [exit_label(_ui.from_json(text)) for text in out["exit_json"]]
    out["signal_date"] = pd.to_datetime(out["signal_date"]).dt.date
    return out[[c for c in SIGNAL_VIEW if c in out]]


def filter_by_stats(signals: pd.DataFrame, min_win_rate: float, min_trades: int,
                    only_with_stats: bool) -> pd.DataFrame:
    """Rows meeting the stat thresholds; rows without stats pass unless ``only_with_stats``.

    A threshold of 0 means "no filter", so missing stats stay visible (and fillable).
    """
    if signals.empty:
        return signals
    has_stats = signals["backtest_id"].notna()
    keep = has_stats | (not only_with_stats and min_win_rate <= 0 and min_trades <= 0)
    if min_win_rate > 0:
        keep &= signals["win_rate"].fillna(-1) >= min_win_rate
    if min_trades > 0:
        keep &= signals["num_trades"].fillna(-1) >= min_trades
    return signals[keep]


def backtest_missing(missing: pd.DataFrame, bars: dict[str, pd.DataFrame]) -> int:
    """Backtest every signal row without stored stats (progress bar), then store them at once.

    One ``store_many`` call: the whole batch becomes visible atomically, or none of it.
    """
    from core.engine import run_backtest

    bar = st.progress(0.0, text=f"Backtesting {len(missing)} configuration(s)...")
    results = []
    for done, row in enumerate(missing.itertuples(index=False), start=1):
        results.append(run_backtest(bars[row.symbol], row.strategy, json.loads(row.params_json),
                                    json.loads(row.exit_json), symbol=row.symbol))
        bar.progress(done / len(missing), text=f"Backtested {done} of {len(missing)} "
                                                f"({row.symbol}, {row.strategy})")
    bar.progress(1.0, text=f"Storing {len(results)} backtest(s)...")
    _ui.store().store_many(results)
    bar.empty()
    return len(results)

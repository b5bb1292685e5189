"""Scanner page helpers: the signal table as shown, stat filters, and filling missing stats."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from views import _ui

SIGNAL_VIEW = ("details", "symbol", "flag", "strategy", "signal_date", "bars_ago", "last_bar",
               "close", "win_rate", "num_trades", "sharpe_ratio", "cagr", "max_drawdown",
               "expectancy", "pooled_trades", "pooled_win_rate", "params", "exit_rule",
               "backtest_id")


def signal_view(signals: pd.DataFrame) -> pd.DataFrame:
    """Scanner rows as shown: link, identity, a flag for old signals or stale data, stats,
    readable params and exit rule."""
    from core.exits import exit_label

    out = _ui.with_details_links(signals)
    out["params"] = [_ui.params_label(_ui.from_json(text)) for text in out["params_json"]]
    out["exit_rule"] = [exit_label(_ui.from_json(text)) for text in out["exit_json"]]
    out["signal_date"] = as_shown(out["signal_date"])
    if "bars_since_signal" in out:
        out["bars_ago"] = out["bars_since_signal"]
    if "last_bar" in out:
        out["last_bar"] = as_shown(out["last_bar"])
    out["flag"] = flags(out)
    return out[[c for c in SIGNAL_VIEW if c in out]]


def as_shown(stamps: pd.Series) -> pd.Series:
    """Dates as dates, but intraday times keep their time (an hourly signal names its hour)."""
    stamps = pd.to_datetime(stamps)
    intraday = (stamps.dropna() != stamps.dropna().dt.normalize()).any()
    return stamps if intraday else stamps.dt.date


def flags(rows: pd.DataFrame) -> list[str]:
    """Per row: "" for a signal on the latest bar of current data, else what is old about it."""
    ages = rows["bars_ago"] if "bars_ago" in rows else pd.Series(0, index=rows.index)
    stale = rows["data_stale"] if "data_stale" in rows else pd.Series(False, index=rows.index)
    last = rows["last_bar"] if "last_bar" in rows else pd.Series(None, index=rows.index)
    out = []
    for age, is_stale, last_bar in zip(ages, stale, last):
        notes = []
        if pd.notna(age) and int(age) > 0:
            notes.append(f"signal {int(age)} bar{'s' if int(age) != 1 else ''} old")
        if bool(is_stale) if pd.notna(is_stale) else False:
            notes.append(f"stale data (last bar {last_bar})" if pd.notna(last_bar)
                         else "stale data")
        out.append("⚠ " + "; ".join(notes) if notes else "")
    return out


def without_demo_staleness(signals: pd.DataFrame, source: str) -> pd.DataFrame:
    """The demo universe is fixed synthetic data: "stale" would only ask for a refresh that
    cannot change it, so its rows are not flagged."""
    if source == "demo" and "data_stale" in signals:
        return signals.drop(columns=["data_stale"])
    return signals


def stale_symbols(bars: dict[str, pd.DataFrame]) -> list[str]:
    """Symbols whose data ends before the last session their calendar expects (``is_stale``).

    Symbols sharing their latest bar times share one answer, so a universe that trades on one
    calendar costs one check.
    """
    from core.scanner import is_stale

    memo: dict[tuple, bool] = {}
    stale = []
    for symbol, frame in bars.items():
        key = tuple(frame.index[-64:])
        if key not in memo:
            memo[key] = is_stale(frame.index)
        if memo[key]:
            stale.append(symbol)
    return sorted(stale)


def show_staleness(bars: dict[str, pd.DataFrame], source: str) -> None:
    """A warning naming the symbols whose data ends before the last expected session (the
    fixed demo data excepted: a refresh cannot change it)."""
    if source == "demo" or not bars:
        return
    names = stale_symbols(bars)
    if not names:
        return
    listed = ", ".join(names[:12]) + (f" and {len(names) - 12} more" if len(names) > 12 else "")
    st.warning(f"{len(names)} of {len(bars)} symbol(s) have data older than the last expected "
               f"session: {listed}. Their signals are not current; refresh the data "
               "(`python -m core refresh`) or update the files.", icon=":material/schedule:")


def show_skipped(skipped: list[dict]) -> None:
    """A warning listing the files (symbols) that failed to load and were left out, and why."""
    if not skipped:
        return
    rows = pd.DataFrame([{"file": item.get("file") or item.get("symbol", "?"),
                          "error": item.get("error", "")} for item in skipped]).drop_duplicates()
    st.warning(f"Skipped {len(rows)} file(s) that could not be loaded: "
               f"{', '.join(rows['file'].astype(str).head(8))}"
               f"{' …' if len(rows) > 8 else ''}. Every other symbol was scanned; fix or remove "
               "these files.", icon=":material/warning:")
    with st.expander("Why each file was skipped"):
        _ui.table(rows, name="skipped_files", key="scan.skipped")


def raise_nothing_loaded(skipped: list[dict]) -> None:
    """No symbol of the universe could be loaded: one error saying so (the reasons are listed)."""
    from core.errors import DataUnavailableError

    raise DataUnavailableError(f"None of the {len(skipped)} symbol(s) could be loaded; see the "
                               "skipped files below. Fix the files or switch the data source.")


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

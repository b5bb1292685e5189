"""Everything about one stored backtest, with its equity curve even when it was not stored.

Sweep cells are stored with full metrics and trades but without the equity curve (it is the
bulk of the bytes and the engine is fast and deterministic). ``load_details`` recomputes such a
curve with ``run_backtest`` — but only when the price data the provider serves today has the
same fingerprint as the data the backtest was stored with, and the recomputed metrics agree
with the stored ones. Otherwise the curve is ``None`` and ``equity_reason`` says why.
``strategy_indicators`` computes the strategy's declared indicators over the bars a chart draws.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from core.canonical import fingerprint_of

#: Metrics compared between a stored backtest and its recomputation (relative tolerance).
_CHECKED_METRICS = ("num_trades", "total_return", "max_drawdown")
_RTOL = 1e-9


def load_details(store, bid: str, provider=None) -> dict[str, Any]:
    """The stored details of backtest ``bid`` plus ``equity``, ``equity_source``, ``equity_reason``.

    ``equity_source`` is ``"stored"``, ``"recomputed"`` or ``None``; when the curve is missing,
    ``equity_reason`` explains it (no provider given, data changed since, symbol gone, ...).
    Raises ``NotFoundError`` for an unknown id (from the store).
    """
    details = dict(store.get_detailed_results(bid))
    details["direction"] = stored_direction(details["strategy"], details["params"])
    details["trades"] = with_direction(details.get("trades"), details["direction"])
    if details.get("equity") is not None:
        return {**details, "equity_source": "stored", "equity_reason": None}
    equity, reason = recompute_equity(details, provider)
    source = None if equity is None else "recomputed"
    return {**details, "equity": equity, "equity_source": source, "equity_reason": reason}


def stored_direction(strategy: str, params: dict) -> str:
    """``"long"`` or ``"short"``: a stored run's side, from its params (built-ins) or its
    strategy's declaration (rule files); a strategy no longer registered reads its params."""
    from core.errors import UnknownStrategyError
    from core.strategies import direction_of, get_strategy

    try:
        return direction_of(get_strategy(strategy), params)
    except UnknownStrategyError:
        return str(params.get("direction", "long"))


def directions(rows) -> list[str]:
    """``stored_direction`` of every row of a stats table (each distinct pair worked out once)."""
    import json

    known: dict[tuple[str, str], str] = {}
    out = []
    for strategy, params in zip(rows["strategy"].astype(str), rows["params"].astype(str)):
        key = (strategy, params)
        if key not in known:
            known[key] = stored_direction(strategy, json.loads(params))
        out.append(known[key])
    return out


def direction_summary(rows: pd.DataFrame) -> pd.DataFrame | None:
    """Backtests, trades and the median headline metrics per direction of a stats table with a
    ``direction`` column; None unless it holds both long and short runs."""
    if rows["direction"].nunique() < 2:
        return None
    metrics = ["win_rate", "total_return", "sharpe_ratio", "max_drawdown"]
    grouped = rows.groupby("direction", observed=True)
    out = grouped[metrics].median()
    out.insert(0, "trades", grouped["num_trades"].sum())
    out.insert(0, "backtests", grouped.size())
    return out.reset_index()


def with_direction(trades, direction: str):
    """A stored trade log with the engine's ``direction`` column (the store keeps a run's side
    in its params, not per trade)."""
    if trades is None:
        return None
    from core.types import DIRECTION_DTYPE

    return trades.assign(direction=pd.Categorical([direction] * len(trades),
                                                  dtype=DIRECTION_DTYPE))


def recompute_equity(details: dict[str, Any], provider) -> tuple[Any, str | None]:
    """``(equity, None)`` recomputed from today's data, or ``(None, reason)``."""
    from core.errors import HindsightError

    if provider is None:
        return None, "equity curve not stored and no data provider given to recompute it"
    symbol = details.get("symbol")
    try:
        bars = provider.load_bars(symbol, start=details.get("start"), end=details.get("end"))
    except HindsightError as exc:
        return None, f"cannot reload the price data to recompute it: {exc}"
    stored_fp = details.get("data_fingerprint")
    current_fp = fingerprint_of(bars)
    if not stored_fp or stored_fp != current_fp:
        return None, (
            f"the price data of {symbol} changed since this backtest was stored "
            f"(fingerprint {stored_fp} -> {current_fp}); re-run it to get an equity curve"
        )
    result = _rerun(details, bars)
    mismatch = _metric_mismatch(stored_metrics(details), result.metrics)
    if mismatch:
        return None, (
            f"recomputing gave different results ({mismatch}; stored engine "
            f"{details.get('engine_version')!r}, current {result.engine_version!r}); re-run it"
        )
    return result.equity, None


def strategy_indicators(details: dict[str, Any], bars) -> tuple[list | None, str | None]:
    """``(series, None)``: the indicators the backtest's strategy declares, computed with its
    stored params over ``bars`` (its period's price data, as drawn), or ``(None, reason)``.

    The caller passes the bars it draws, so the series line up with the price chart bar for bar.
    """
    from core.errors import HindsightError
    from core.strategies import indicator_series

    if bars is None or len(bars) == 0:
        return None, "no price data for this period"
    try:
        return indicator_series(details["strategy"], details["params"], bars), None
    except HindsightError as exc:
        return None, str(exc)


def stored_metrics(details: dict[str, Any]) -> dict[str, float]:
    """The metrics of a stored backtest's details (the store keeps them as top-level keys)."""
    from core.types import METRIC_NAMES

    nested = details.get("metrics")
    if isinstance(nested, dict):
        return dict(nested)
    return {name: details[name] for name in METRIC_NAMES if name in details}


def _rerun(details: dict[str, Any], bars):
    """Run the stored configuration again, with the stored costs and settings."""
    from core.engine import run_backtest

    settings = details.get("settings") or {}
    return run_backtest(
        bars, details["strategy"], details["params"], details.get("exit_rule"),
        costs=details.get("costs") or None,
        initial_capital=float(details.get("initial_capital") or 100_000.0),
        whole_shares=bool(settings.get("whole_shares", False)),
        stop_on_entry_bar=bool(settings.get("stop_on_entry_bar", True)),
        symbol=details.get("symbol"), periods_per_year=settings.get("periods_per_year"),
    )


def _metric_mismatch(stored: dict[str, Any], fresh: dict[str, Any]) -> str:
    """Text naming the first checked metric that differs, or '' when they agree."""
    for name in _CHECKED_METRICS:
        if name not in stored or name not in fresh:
            continue
        a, b = float(stored[name]), float(fresh[name])
        if math.isnan(a) and math.isnan(b):
            continue
        if not math.isclose(a, b, rel_tol=_RTOL, abs_tol=1e-12):
            return f"{name} {a!r} stored vs {b!r} now"
    return ""


def exit_reason_summary(trades) -> Any:
    """Per exit reason: trades, win rate, average and total return and P&L, most used first.

    A last row ``all`` sums up every trade. Empty (same columns) when there are no trades.
    """
    import pandas as pd

    columns = ["exit_reason", "trades", "win_rate", "avg_return", "total_pnl", "avg_bars_held"]
    if trades is None or len(trades) == 0:
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame({
        "exit_reason": trades["exit_reason"].astype(str).to_numpy(),
        "return": trades["return"].to_numpy(dtype=float),
        "pnl": _column(trades, "pnl"), "bars_held": _column(trades, "bars_held"),
    })
    frame["win"] = frame["return"] > 0
    rows = [_reason_row(reason, group) for reason, group in frame.groupby("exit_reason", sort=False)]
    rows.sort(key=lambda row: (-row["trades"], row["exit_reason"]))
    rows.append(_reason_row("all", frame))
    return pd.DataFrame(rows, columns=columns)


def _column(trades, name: str):
    import numpy as np

    return trades[name].to_numpy(dtype=float) if name in trades else np.full(len(trades), np.nan)


def _reason_row(reason: str, group) -> dict[str, Any]:
    return {"exit_reason": reason, "trades": int(len(group)), "win_rate": float(group["win"].mean()),
            "avg_return": float(group["return"].mean()), "total_pnl": float(group["pnl"].sum()),
            "avg_bars_held": float(group["bars_held"].mean())}


def buy_and_hold_return(close) -> float:
    """Return of buying at the first close and holding to the last (NaN without two prices)."""
    import numpy as np

    prices = np.asarray(close, dtype=float)
    prices = prices[np.isfinite(prices)]
    if prices.size < 2 or prices[0] <= 0:
        return float("nan")
    return float(prices[-1] / prices[0] - 1.0)

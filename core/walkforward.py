"""Walk-forward optimisation: optimise on each in-sample window, test the winner out of sample.

Windows (bar positions, end exclusive), for ``n`` bars, in-sample length ``IS``, out-of-sample
length ``OOS`` and ``step`` (default ``OOS``; at least ``OOS`` so test windows never overlap):

- rolling:  window k has IS = [k*step, k*step + IS), OOS = [k*step + IS, k*step + IS + OOS)
- anchored: window k has IS = [0, IS + k*step),      OOS = [IS + k*step, IS + k*step + OOS)

Only windows whose OOS fits entirely in the data are used. Each OOS backtest runs on the OOS bars
alone, starting flat with the initial capital (the indicators warm up inside the window, as
they would for a trader who starts then). The in-sample winner is the cell with the highest
``metric`` among those with at least ``min_trades`` trades; ties go to the first in grid order.
A window without an eligible cell stays in cash out of sample.

Every window's IS winner and OOS backtest are stored (with equity curves), tagged so that they
belong to one parent walk-forward id (see docs/research.md); the report carries the stitched
out-of-sample equity curve and the in-sample vs out-of-sample gap of the metric.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.canonical import canonical_json, fingerprint_of, stable_hash, stamp_fingerprint
from core.errors import ValidationError, did_you_mean
from core.types import METRIC_NAMES


@dataclass(frozen=True)
class Window:
    """One walk-forward window as bar positions (end exclusive)."""

    k: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def walk_forward_windows(n_bars: int, in_sample: int, out_of_sample: int,
                         step: int | None = None, anchored: bool = False) -> list[Window]:
    """The windows of a walk-forward over ``n_bars`` bars (see the module docstring)."""
    step = out_of_sample if step is None else step
    for name, value in (("in_sample", in_sample), ("out_of_sample", out_of_sample), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValidationError(f"{name} must be a whole number of bars >= 1, got {value!r}.")
    if step < out_of_sample:
        raise ValidationError(
            f"step ({step}) is shorter than the out-of-sample window ({out_of_sample}), so test "
            f"windows would overlap. Use step >= {out_of_sample} (default: equal)."
        )
    if in_sample + out_of_sample > n_bars:
        raise ValidationError(
            f"The data has {n_bars} bars, fewer than one window needs "
            f"(in_sample {in_sample} + out_of_sample {out_of_sample}). Shorten the windows."
        )
    windows = []
    k = 0
    while True:
        is_start = 0 if anchored else k * step
        is_end = in_sample + k * step
        oos_end = is_end + out_of_sample
        if oos_end > n_bars:
            return windows
        windows.append(Window(k, is_start, is_end, is_end, oos_end))
        k += 1


@dataclass
class WalkForwardReport:
    """Per-window results, the stitched OOS equity and the IS-vs-OOS summary."""

    parent_id: str
    symbol: str
    strategy: str
    metric: str
    windows: pd.DataFrame
    oos_equity: pd.Series
    stored_ids: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Mean IS and OOS metric, their gap, and the stitched OOS return."""
        w = self.windows
        is_mean = float(w[f"is_{self.metric}"].mean()) if len(w) else math.nan
        oos_mean = float(w[f"oos_{self.metric}"].mean()) if len(w) else math.nan
        start = float(self.oos_equity.iloc[0]) if len(self.oos_equity) else math.nan
        end = float(self.oos_equity.iloc[-1]) if len(self.oos_equity) else math.nan
        return {
            "parent_id": self.parent_id,
            "windows": int(len(w)),
            "windows_with_winner": int(w["params_json"].notna().sum()) if len(w) else 0,
            f"is_{self.metric}_mean": is_mean,
            f"oos_{self.metric}_mean": oos_mean,
            "is_oos_gap": is_mean - oos_mean,
            "oos_efficiency": oos_mean / is_mean if is_mean and not math.isnan(is_mean) else math.nan,
            "oos_total_return": end / start - 1.0 if start else math.nan,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "symbol": self.symbol, "strategy": self.strategy, "metric": self.metric,
            "window_rows": self.windows.to_dict(orient="records"),
            "oos_equity": [[t.isoformat(), float(v)] for t, v in self.oos_equity.items()],
            "stored_ids": list(self.stored_ids),
        }


def _pick_winner(table: pd.DataFrame, metric: str, min_trades: int) -> pd.Series | None:
    """The row with the best finite ``metric`` among rows with >= ``min_trades`` trades."""
    values = table[metric].to_numpy(dtype=float)
    ok = np.isfinite(values) & (table["num_trades"].to_numpy(dtype=float) >= min_trades)
    if not ok.any():
        return None
    best = int(np.flatnonzero(ok)[np.argmax(values[ok])])  # first maximum in grid order
    return table.iloc[best]


def _parent_id(symbol: str, strategy: str, grid: list[dict], rules: list, fingerprint: str,
               spec: dict[str, Any]) -> str:
    """Deterministic id of a walk-forward: same inputs and data -> same id."""
    return "wf" + stable_hash({"symbol": symbol, "strategy": strategy, "grid": grid,
                               "rules": rules, "data": fingerprint, **spec})[:12]


def walk_forward(
    bars: pd.DataFrame,
    strategy: str,
    param_ranges: Mapping[str, Any] | None,
    exit_rules: Any = None,
    *,
    in_sample: int,
    out_of_sample: int,
    step: int | None = None,
    anchored: bool = False,
    metric: str = "sharpe_ratio",
    min_trades: int = 1,
    store=None,
    symbol: str | None = None,
    costs: Mapping[str, float] | None = None,
    initial_capital: float = 100_000.0,
    whole_shares: bool = False,
    stop_on_entry_bar: bool = True,
    max_cells: int | None = None,
) -> WalkForwardReport:
    """Optimise ``metric`` on each in-sample window, test the winner on the next window.

    ``param_ranges`` and ``exit_rules`` are as for ``core.sweep.run_sweep`` (the exit rule is
    optimised too when several are given). With a ``store``, each window's IS winner and OOS
    backtest are stored and linked to the report's ``parent_id``.
    """
    from core.strategies import get_strategy
    from core.sweep import exit_rule_list, expand_or_sample, grid_cap, check_grid_size, count_grid

    if metric not in METRIC_NAMES:
        raise ValidationError(f"Unknown metric {metric!r}.{did_you_mean(metric, METRIC_NAMES)}")
    strat = get_strategy(strategy)
    symbol = symbol or str(bars.attrs.get("symbol") or "")
    rules = exit_rule_list(exit_rules)
    windows = walk_forward_windows(len(bars), in_sample, out_of_sample, step, anchored)
    cells = count_grid(param_ranges, 1, len(rules)) * len(windows)
    check_grid_size(cells, max_cells if max_cells is not None else grid_cap(),
                    f" ({len(windows)} windows x the grid)")
    grid, _ = expand_or_sample(strat, param_ranges)
    run = {"costs": costs, "initial_capital": initial_capital, "whole_shares": whole_shares,
           "stop_on_entry_bar": stop_on_entry_bar}
    fingerprint = fingerprint_of(bars)
    spec = {"in_sample": in_sample, "out_of_sample": out_of_sample, "step": step or out_of_sample,
            "anchored": anchored, "metric": metric, "min_trades": min_trades,
            "run": canonical_json({**run, "costs": dict(costs or {})})}
    parent = _parent_id(symbol, strat.name, grid, rules, fingerprint, spec)

    rows, curves, results = [], [], []
    for w in windows:
        row, curve, pair = _run_window(bars, w, symbol, strat, grid, rules, metric, min_trades, run)
        if pair is not None:
            results.append((len(rows), w.k, *pair))
        rows.append(row)
        curves.append(curve)
    stored = _store_windows(store, results, rows, parent) if store is not None else []
    return WalkForwardReport(parent, symbol, strat.name, metric, pd.DataFrame(rows),
                             _stitch(curves, float(initial_capital)), stored)


def _run_window(bars, w: Window, symbol: str, strat, grid: list[dict], rules: list,
                metric: str, min_trades: int, run: dict):
    """One window: (report row, OOS equity curve, (IS result, OOS result) or None)."""
    from core.engine import run_backtest, run_many

    is_bars, oos_bars = _window(bars, w.is_start, w.is_end), _window(bars, w.oos_start, w.oos_end)
    table = run_many({symbol: is_bars}, strat, grid, rules, **run).table
    winner = _pick_winner(table, metric, min_trades)
    row = {"window": w.k, "is_start": is_bars.index[0], "is_end": is_bars.index[-1],
           "oos_start": oos_bars.index[0], "oos_end": oos_bars.index[-1],
           "params_json": None, "exit_json": None, f"is_{metric}": math.nan,
           f"oos_{metric}": math.nan, "is_trades": 0, "oos_trades": 0,
           "oos_return": 0.0, "is_id": None, "oos_id": None}
    if winner is None:  # nothing eligible in sample: stay in cash out of sample
        return row, pd.Series(float(run["initial_capital"]), index=oos_bars.index), None
    params, rule = _json(winner["params_json"]), _json(winner["exit_json"])
    is_result = run_backtest(is_bars, strat, params, rule, symbol=symbol, **run)
    try:
        oos_result = run_backtest(oos_bars, strat, params, rule, symbol=symbol, **run)
    except ValidationError as exc:
        raise ValidationError(
            f"Window {w.k}: the out-of-sample window ({len(oos_bars)} bars) is too short "
            f"for the winning params {params}: {exc}"
        ) from None
    row.update({
        "params_json": winner["params_json"], "exit_json": winner["exit_json"],
        f"is_{metric}": float(winner[metric]), f"oos_{metric}": oos_result.metrics[metric],
        "is_trades": int(winner["num_trades"]),
        "oos_trades": int(oos_result.metrics["num_trades"]),
        "oos_return": oos_result.metrics["total_return"],
    })
    return row, oos_result.equity, (is_result, oos_result)


def _stitch(curves: list[pd.Series], initial_capital: float) -> pd.Series:
    """Chain OOS curves: each window starts where the previous one ended (compounded)."""
    pieces, level = [], initial_capital
    for curve in curves:
        scaled = curve * (level / initial_capital)
        pieces.append(scaled)
        level = float(scaled.iloc[-1])
    if not pieces:
        return pd.Series(dtype=float)
    out = pd.concat(pieces)
    out.name = "equity"
    return out


def _window(bars: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Bars ``[start, end)`` with their own fingerprint (a slice inherits the parent's attrs)."""
    piece = bars.iloc[start:end].copy(deep=False)
    piece.attrs = dict(bars.attrs)
    stamp_fingerprint(piece)
    return piece


def _json(text: str) -> Any:
    import json

    return json.loads(text)


def window_tags(parent_id: str, k: int, part: str) -> list[str]:
    """Tags linking a stored window backtest to its walk-forward: ``wf:<id>``, ``wf-window:k:is``."""
    return [f"wf:{parent_id}", f"wf-window:{k}:{part}"]


def _store_windows(store, results: list, rows: list[dict], parent_id: str) -> list[str]:
    """Store every window's IS and OOS backtest in one atomic batch, then tag each one."""
    if not results:
        return []
    batch = [r for _, _, is_result, oos_result in results for r in (is_result, oos_result)]
    ids = store.store_many(batch)
    for (row_pos, k, _, _), is_id, oos_id in zip(results, ids[0::2], ids[1::2]):
        rows[row_pos]["is_id"], rows[row_pos]["oos_id"] = is_id, oos_id
        for bid, part in ((is_id, "is"), (oos_id, "oos")):
            store.set_note(bid, note=f"walk-forward {parent_id} window {k} {part.upper()}",
                           tags=window_tags(parent_id, k, part))
    return list(ids)


def load_walk_forward(store, parent_id: str) -> pd.DataFrame:
    """Every stored window backtest of walk-forward ``parent_id``, in window order (IS, OOS)."""
    frame = store.query(include_history=True)
    if len(frame) == 0:
        return frame
    tags = frame["tags"].astype(object).astype(str)
    mine = frame[tags.str.split(",").apply(lambda t: f"wf:{parent_id}" in t)].copy()
    window = tags[mine.index].str.extract(r"wf-window:(\d+):(is|oos)")
    mine["window"], mine["part"] = window[0].astype(int), window[1]
    return mine.sort_values(["window", "part"], ascending=[True, True]).reset_index(drop=True)

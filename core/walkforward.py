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

Every window's IS winner and OOS backtest are stored (with equity curves) in the main store,
each under its window's scope (an explicit start and end), so none replaces the full-history
record of the same configuration. Tags link them to one parent walk-forward id and the first
one's note carries a small record of the run (see docs/research.md): ``list_walk_forwards`` and
``load_walk_forward`` read them back. ``import_walkforward_store`` copies the separate
``walkforward.zarr`` that earlier versions wrote next to the store.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from core.canonical import canonical_json, fingerprint_of, stable_hash, stamp_fingerprint
from core.errors import NotFoundError, ValidationError, did_you_mean
from core.types import METRIC_NAMES

#: Tag of the stored backtest whose note holds the record of its walk-forward.
RUN_TAG = "wf-run"
#: What separates the readable note from the record's JSON in that note.
RECORD_MARK = "\nrecord: "
#: The separate store of walk-forward windows that earlier versions kept beside the main store.
LEGACY_STORE = "walkforward.zarr"
#: Suffix the legacy store's folder gets once it has been imported.
IMPORTED_SUFFIX = ".imported"
#: Metrics every window row carries for both halves (plus the optimised one).
WINDOW_METRICS = ("cagr", "sharpe_ratio")
_DATE_COLUMNS = ("is_start", "is_end", "oos_start", "oos_end")
_PARENT_TAG = r"(?:^|,)wf:([^,]+)"
_WINDOW_TAG = r"(?:^|,)wf-window:(\d+):(is|oos)"
#: Columns of ``list_walk_forwards``, in order.
LIST_COLUMNS = ("parent_id", "created_at", "symbol", "strategy", "scheme", "in_sample",
                "out_of_sample", "step", "metric", "windows", "windows_with_winner",
                "oos_total_return", "wf_efficiency")


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
    """Per-window results, the stitched OOS equity and the IS-vs-OOS summary.

    ``metric`` is None for a walk-forward imported from a ``walkforward.zarr`` (which did not
    record it); ``spec`` holds the scheme (rolling/anchored), window sizes, step, min trades,
    grid and exit rules it ran with (empty when not recorded).
    """

    parent_id: str
    symbol: str
    strategy: str
    metric: str | None
    windows: pd.DataFrame
    oos_equity: pd.Series
    stored_ids: list[str] = field(default_factory=list)
    spec: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Windows, mean IS and OOS metric and their gap, compounded OOS return, efficiency."""
        return {"parent_id": self.parent_id, **window_summary(self.windows, self.metric)}

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "symbol": self.symbol, "strategy": self.strategy, "metric": self.metric,
            "spec": dict(self.spec),
            "window_rows": self.windows.to_dict(orient="records"),
            "oos_equity": [[t.isoformat(), float(v)] for t, v in self.oos_equity.items()],
            "stored_ids": list(self.stored_ids),
        }


def window_summary(windows: pd.DataFrame, metric: str | None) -> dict[str, Any]:
    """The summary of a window table (see docs/research.md for each figure).

    ``oos_total_return`` compounds the OOS returns (a window in cash adds 0);
    ``wf_efficiency`` is the mean OOS annualised return over the mean IS annualised return of
    the windows with a winner (NaN unless that IS mean is above 0). With a ``metric``: its IS
    and OOS means, their gap and ``oos_efficiency`` (mean OOS / mean IS).
    """
    out: dict[str, Any] = {"windows": int(len(windows)),
                           "windows_with_winner": int(windows["params_json"].notna().sum())}
    if metric:
        is_mean = float(windows[f"is_{metric}"].mean())
        oos_mean = float(windows[f"oos_{metric}"].mean())
        out.update({
            f"is_{metric}_mean": is_mean,
            f"oos_{metric}_mean": oos_mean,
            "is_oos_gap": is_mean - oos_mean,
            "oos_efficiency": oos_mean / is_mean if is_mean and not math.isnan(is_mean)
            else math.nan,
        })
    is_cagr, oos_cagr = float(windows["is_cagr"].mean()), float(windows["oos_cagr"].mean())
    out["oos_total_return"] = float(np.prod(1.0 + windows["oos_return"].to_numpy(float))) - 1.0
    out["wf_efficiency"] = oos_cagr / is_cagr if is_cagr > 0 else math.nan
    return out


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
    progress: Callable[[int, int], None] | None = None,
) -> WalkForwardReport:
    """Optimise ``metric`` on each in-sample window, test the winner on the next window.

    ``param_ranges`` and ``exit_rules`` are as for ``core.sweep.run_sweep`` (the exit rule is
    optimised too when several are given). With a ``store``, each window's IS winner and OOS
    backtest are stored and linked to the report's ``parent_id``; running the same walk-forward
    again replaces them. ``progress(done, total)`` is called after each window.
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
    id_spec = {"in_sample": in_sample, "out_of_sample": out_of_sample,
               "step": step or out_of_sample, "anchored": anchored, "metric": metric,
               "min_trades": min_trades,
               "run": canonical_json({**run, "costs": dict(costs or {})})}
    parent = _parent_id(symbol, strat.name, grid, rules, fingerprint, id_spec)
    spec = {"scheme": "anchored" if anchored else "rolling", "in_sample": in_sample,
            "out_of_sample": out_of_sample, "step": step or out_of_sample,
            "min_trades": min_trades, "grid": json.loads(canonical_json(dict(param_ranges or {}))),
            "exit_rules": rules}

    rows, curves, results = [], [], []
    for w in windows:
        row, curve, pair = _run_window(bars, w, symbol, strat, grid, rules, metric, min_trades, run)
        if pair is not None:
            results.append((len(rows), w.k, *pair))
        rows.append(row)
        curves.append(curve)
        if progress is not None:
            progress(w.k + 1, len(windows))
    stored = (_store_windows(store, results, rows, parent, _record(metric, spec, rows))
              if store is not None else [])
    return WalkForwardReport(parent, symbol, strat.name, metric, pd.DataFrame(rows),
                             _stitch(curves, float(initial_capital)), stored, spec)


def _run_window(bars, w: Window, symbol: str, strat, grid: list[dict], rules: list,
                metric: str, min_trades: int, run: dict):
    """One window: (report row, OOS equity curve, (IS result, OOS result) or None)."""
    from core.engine import run_backtest, run_many

    is_bars, oos_bars = _window(bars, w.is_start, w.is_end), _window(bars, w.oos_start, w.oos_end)
    dates = (is_bars.index[0], is_bars.index[-1], oos_bars.index[0], oos_bars.index[-1])
    table = run_many({symbol: is_bars}, strat, grid, rules, **run).table
    winner = _pick_winner(table, metric, min_trades)
    if winner is None:  # nothing eligible in sample: stay in cash out of sample
        flat = pd.Series(float(run["initial_capital"]), index=oos_bars.index)
        return _window_row(w.k, dates, metric), flat, None
    params, rule = _json(winner["params_json"]), _json(winner["exit_json"])
    is_result = run_backtest(is_bars, strat, params, rule, symbol=symbol, **run)
    try:
        oos_result = run_backtest(oos_bars, strat, params, rule, symbol=symbol, **run)
    except ValidationError as exc:
        raise ValidationError(
            f"Window {w.k}: the out-of-sample window ({len(oos_bars)} bars) is too short "
            f"for the winning params {params}: {exc}"
        ) from None
    row = _window_row(w.k, dates, metric, winner["params_json"], winner["exit_json"],
                      is_result.metrics, oos_result.metrics)
    return row, oos_result.equity, (is_result, oos_result)


def _window_row(k: int, dates: tuple, metric: str | None, params_json: str | None = None,
                exit_json: str | None = None, is_metrics: Mapping | None = None,
                oos_metrics: Mapping | None = None) -> dict[str, Any]:
    """One row of a window table; without metrics, a window in cash (no IS winner)."""
    is_m, oos_m = is_metrics or {}, oos_metrics or {}
    row: dict[str, Any] = {"window": k, "is_start": dates[0], "is_end": dates[1],
                           "oos_start": dates[2], "oos_end": dates[3],
                           "params_json": params_json, "exit_json": exit_json}
    for name in dict.fromkeys([*([metric] if metric else []), *WINDOW_METRICS]):
        row[f"is_{name}"] = float(is_m.get(name, math.nan))
        row[f"oos_{name}"] = float(oos_m.get(name, math.nan))
    row.update(is_trades=int(is_m.get("num_trades", 0)), oos_trades=int(oos_m.get("num_trades", 0)),
               oos_return=float(oos_m.get("total_return", 0.0)), is_id=None, oos_id=None)
    return row


def _stitch(curves: list[pd.Series], initial_capital: float) -> pd.Series:
    """Chain OOS curves: each window starts where the previous one ended (compounded)."""
    pieces, level = [], initial_capital
    for curve in curves:
        scaled = curve * (level / initial_capital)
        pieces.append(scaled)
        level = float(scaled.iloc[-1])
    if not pieces:
        return pd.Series(dtype=float)
    out = pd.concat(pieces).rename_axis("date")
    out.name = "equity"
    return out


def _window(bars: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Bars ``[start, end)`` stated as their own window (so a stored result gets that window's
    scope, never the full history's) with their own fingerprint."""
    from core.scope import with_window

    piece = with_window(bars, bars.index[start], bars.index[end - 1])
    stamp_fingerprint(piece)
    return piece


def _json(text: str) -> Any:
    return json.loads(text)


# --- storing and reading back ------------------------------------------------------------------

def window_tags(parent_id: str, k: int, part: str) -> list[str]:
    """Tags linking a stored window backtest to its walk-forward: ``wf:<id>``, ``wf-window:k:is``."""
    return [f"wf:{parent_id}", f"wf-window:{k}:{part}"]


def _record(metric: str, spec: dict[str, Any], rows: list[dict]) -> dict[str, Any]:
    """What the stored backtests alone do not tell: the metric, the spec, the window count and
    the dates of the windows in cash (they store nothing)."""
    cash = [[row["window"], *(row[c].isoformat() for c in _DATE_COLUMNS)]
            for row in rows if row["params_json"] is None]
    return {"metric": metric, **spec, "windows": len(rows), "cash_windows": cash}


def _store_windows(store, results: list, rows: list[dict], parent_id: str,
                   record: dict[str, Any]) -> list[str]:
    """Store every window's IS and OOS backtest in one atomic batch, tag them all in one commit
    (the first also holds the run's record in its note), then delete what an earlier run of
    the same walk-forward stored."""
    if not results:
        return []
    previous = stored_windows(store, parent_id)["backtest_id"].tolist()
    batch = [r for _, _, is_result, oos_result in results for r in (is_result, oos_result)]
    ids = store.store_many(batch)
    notes = {}
    for (row_pos, k, _, _), is_id, oos_id in zip(results, ids[0::2], ids[1::2]):
        rows[row_pos]["is_id"], rows[row_pos]["oos_id"] = is_id, oos_id
        for bid, part in ((is_id, "is"), (oos_id, "oos")):
            note = f"walk-forward {parent_id} window {k} {part.upper()}"
            tags = window_tags(parent_id, k, part)
            if bid == ids[0]:
                note, tags = note + RECORD_MARK + json.dumps(record), [*tags, RUN_TAG]
            notes[bid] = {"note": note, "tags": tags}
    store.set_notes(notes)  # one commit tags every window
    if previous:
        store.delete_backtest(previous)
    return list(ids)


def stored_windows(store, parent_id: str | None = None) -> pd.DataFrame:
    """The stored window backtests of walk-forward ``parent_id`` (of every one when None):
    store rows plus ``parent_id``, ``window`` and ``part`` ("is"/"oos"), in window order.

    Only the newest backtest of a (walk-forward, window, part) counts.
    """
    from core.scope import ALL_SCOPES

    frame = store.query(include_history=True, scope=ALL_SCOPES)
    tags = frame["tags"].astype(str)
    linked = tags.str.contains("wf:", regex=False)
    frame, tags = frame[linked], tags[linked]
    window = tags.str.extract(_WINDOW_TAG)
    frame = frame.assign(parent_id=tags.str.extract(_PARENT_TAG, expand=False),
                         window=window[0], part=window[1]).dropna(subset=["parent_id", "window"])
    if parent_id is not None:
        frame = frame[frame["parent_id"] == parent_id]
    frame = frame.assign(window=frame["window"].astype(int),
                         number=frame["backtest_id"].astype(int))
    newest = frame.sort_values("number").drop_duplicates(["parent_id", "window", "part"],
                                                         keep="last")
    return (newest.sort_values(["parent_id", "window", "part"]).drop(columns="number")
            .reset_index(drop=True))


def list_walk_forwards(store) -> pd.DataFrame:
    """One row per stored walk-forward (``LIST_COLUMNS``), newest first: what ran, when, how
    many windows, the compounded OOS return and the walk-forward efficiency."""
    rows = stored_windows(store)
    entries = [_list_entry(parent, group) for parent, group in rows.groupby("parent_id")]
    frame = pd.DataFrame(entries, columns=list(LIST_COLUMNS))
    return frame.sort_values("created_at", ascending=False, kind="stable").reset_index(drop=True)


def _list_entry(parent_id: str, rows: pd.DataFrame) -> dict[str, Any]:
    record = _record_of(rows)
    summary = window_summary(_windows_from_rows(rows, record), record.get("metric"))
    return {"parent_id": parent_id, "created_at": rows["created_at"].max(),
            "symbol": str(rows["symbol"].iloc[0]), "strategy": str(rows["strategy"].iloc[0]),
            **{name: record.get(name) for name in ("scheme", "in_sample", "out_of_sample",
                                                   "step", "metric")},
            **{name: summary[name] for name in ("windows", "windows_with_winner",
                                                "oos_total_return", "wf_efficiency")}}


def load_walk_forward(store, parent_id: str) -> WalkForwardReport:
    """A stored walk-forward as a report: its windows, the OOS equity stitched from the stored
    curves and, when recorded, the metric and spec it ran with."""
    rows = stored_windows(store, parent_id)
    if rows.empty:
        raise NotFoundError(f"No stored walk-forward {parent_id!r}. List them with "
                            "list_walk_forwards(store) or `python -m core walkforwards`.")
    record = _record_of(rows)
    windows = _windows_from_rows(rows, record)
    capital = float(rows["initial_capital"].iloc[0])
    curves = [_oos_curve(store, window, capital) for window in windows.itertuples()]
    spec = {k: v for k, v in record.items() if k not in ("metric", "windows", "cash_windows")}
    return WalkForwardReport(parent_id, str(rows["symbol"].iloc[0]),
                             str(rows["strategy"].iloc[0]), record.get("metric"), windows,
                             _stitch(curves, capital), rows["backtest_id"].astype(str).tolist(),
                             spec)


def _record_of(rows: pd.DataFrame) -> dict[str, Any]:
    """The run's record from the note of its ``wf-run`` backtest ({} when absent or edited)."""
    for note, tags in zip(rows["note"].astype(str), rows["tags"].astype(str)):
        if RUN_TAG in tags.split(","):
            try:
                record = json.loads(note.partition(RECORD_MARK)[2])
            except json.JSONDecodeError:
                return {}
            return record if isinstance(record, dict) else {}
    return {}


def _windows_from_rows(rows: pd.DataFrame, record: dict[str, Any]) -> pd.DataFrame:
    """The window table of stored window backtests (plus the recorded windows in cash)."""
    metric = record.get("metric")
    out = []
    for k, group in rows.groupby("window"):
        parts = {part: row for part, row in zip(group["part"], group.to_dict("records"))}
        is_row, oos_row = parts.get("is", {}), parts.get("oos", {})
        either = is_row or oos_row
        dates = (is_row.get("start"), is_row.get("end"), oos_row.get("start"), oos_row.get("end"))
        row = _window_row(int(k), dates, metric, str(either["params"]), str(either["exit_rule"]),
                          is_row, oos_row)
        row["is_id"], row["oos_id"] = is_row.get("backtest_id"), oos_row.get("backtest_id")
        out.append(row)
    for k, *dates in record.get("cash_windows", []):
        out.append(_window_row(int(k), tuple(pd.Timestamp(d) for d in dates), metric))
    return pd.DataFrame(sorted(out, key=lambda row: row["window"]))


def _oos_curve(store, window, capital: float) -> pd.Series:
    """A window's stored OOS equity curve; flat at the capital for a window in cash."""
    if isinstance(window.oos_id, str):
        equity = store.get_detailed_results(window.oos_id)["equity"]
        if equity is not None:
            return equity
    return pd.Series(capital, index=pd.DatetimeIndex([window.oos_start, window.oos_end]))


# --- importing the separate walkforward.zarr of earlier versions ----------------------------

def legacy_store_url(store_url: str) -> str:
    """Where earlier versions kept walk-forward windows: ``walkforward.zarr`` next to the store."""
    url = str(store_url).rstrip("/")
    head, _, _ = url.rpartition("/")
    return f"{head}/{LEGACY_STORE}" if head else LEGACY_STORE


def import_legacy_walkforward_store(store_url: str) -> int:
    """Import the ``walkforward.zarr`` beside the store at ``store_url`` into it, once.

    Afterwards the folder is renamed ``walkforward.zarr.imported``, so the next call finds
    nothing (and costs one directory check). Returns how many backtests were copied.
    """
    old_url = legacy_store_url(store_url)
    if not _is_folder(old_url):
        return 0
    from fsspec.core import url_to_fs

    from core.store import open_store

    with open_store(store_url, "r+") as main:
        copied = import_walkforward_store(main, old_url)
    fs, path = url_to_fs(old_url)
    fs.mv(path, _free_name(fs, path + IMPORTED_SUFFIX), recursive=True)
    return copied


def import_walkforward_store(main_store, old_url: str) -> int:
    """Copy every backtest of the store at ``old_url`` into ``main_store`` (metrics, params,
    exit rule, equity curve, trades, note and tags); returns how many were copied.

    Each copy is stored under the explicit window of its own start and end: a window backtest
    never becomes a full-history record. Walk-forwards already in ``main_store`` are skipped,
    so importing twice copies them once.
    """
    from core.scope import ALL_SCOPES
    from core.store import open_store

    known = set(stored_windows(main_store)["parent_id"])
    with open_store(old_url, "r") as old:
        frame = old.query(include_history=True, scope=ALL_SCOPES)
        parents = frame["tags"].astype(str).str.extract(_PARENT_TAG, expand=False)
        copies = [old.get_detailed_results(bid)
                  for bid in frame["backtest_id"][~parents.isin(known)]]
    ids = main_store.store_many([_as_window_result(details) for details in copies])
    for bid, details in zip(ids, copies):
        if details["note"] or details["tags"]:
            main_store.set_note(bid, note=details["note"], tags=details["tags"])
    return len(ids)


def _as_window_result(details: dict[str, Any]):
    """A stored backtest's details as a result to store again, under its explicit window."""
    from core.details import stored_metrics
    from core.types import BacktestResult

    return BacktestResult(
        symbol=details["symbol"], strategy=details["strategy"], params=details["params"],
        exit_rule=details["exit_rule"], metrics=stored_metrics(details),
        equity=details["equity"], trades=details["trades"], start=details["start"],
        end=details["end"], costs=details["costs"], initial_capital=details["initial_capital"],
        settings=details["settings"], engine_version=details["engine_version"],
        data_fingerprint=details["data_fingerprint"],
        source=details["scope_detail"]["source"], definition=details["definition"],
        window={"start": details["start"], "end": details["end"]},
    )


def _is_folder(url: str) -> bool:
    """Whether a folder exists at a path or fsspec URL (a local path never imports fsspec)."""
    if "://" not in url or url.startswith("file://"):
        import os

        return os.path.isdir(url.removeprefix("file://"))
    from fsspec.core import url_to_fs

    fs, path = url_to_fs(url)
    return bool(fs.isdir(path))


def _free_name(fs, path: str) -> str:
    """``path``, or ``path-2``, ``path-3``... : the first name not taken."""
    name, n = path, 1
    while fs.exists(name):
        n += 1
        name = f"{path}-{n}"
    return name

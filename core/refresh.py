"""Nightly refresh: update prices, re-run every stored configuration whose data changed.

For each stored configuration (the latest version of each store key), the bars it would see
today are loaded from the same start date to the newest bar; when their fingerprint differs
from the stored ``data_fingerprint`` the configuration is re-run with its stored params, exit
rule, costs and settings, and the new result is stored. The store keeps every version of a key,
so the previous metrics stay visible: the report lists the drift ("win rate 62% -> 48%").
Walk-forward window backtests (tagged ``wf:<id>``) are historical by design and left alone.

Idempotent: a second run finds every fingerprint current and does nothing. Resumable after a
kill (even ``kill -9``): results are stored in atomic batches, and what is done is recognised
by its fingerprint; a small journal next to the store (``<store>.refresh.json``, replaced
atomically after each batch) carries the interrupted run's figures (drift lines, new bars per
symbol, price notes) into the resumed one's report, and is removed when a run completes.

One refresh at a time: a run holds a file lock (``refresh_lock_path``) from start to end; a
second one waits up to ``wait`` seconds for it, then stops with ``RefreshRunningError``, so no
configuration is ever re-run twice.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from core.canonical import fingerprint_of, stable_hash
from core.errors import HindsightError, ValidationError

#: Metrics whose change is reported, with how to print them.
DRIFT_METRICS: dict[str, str] = {
    "win_rate": "pct", "total_return": "pct", "num_trades": "int", "sharpe_ratio": "num",
    "max_drawdown": "pct",
}
#: Rows re-run together within one (symbol, scope): one run_many call each.
_GROUP_COLUMNS = ("strategy", "exit_rule")
DEFAULT_BATCH_ROWS = 5_000


class RefreshRunningError(HindsightError):
    """Another refresh of the same store holds the refresh lock."""


@dataclass
class RefreshReport:
    """What a refresh did; ``drift`` has one row per re-run configuration (old vs new)."""

    prices_updated: dict[str, int] = field(default_factory=dict)
    configs: int = 0
    current: int = 0
    rerun: int = 0
    failed: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    resumed: bool = False
    elapsed_s: float = 0.0
    drift: list[dict[str, Any]] = field(default_factory=list)

    def lines(self) -> list[str]:
        """Human-readable summary and one drift line per re-run configuration."""
        out = [
            f"prices: {sum(self.prices_updated.values())} new bars for "
            f"{sum(1 for v in self.prices_updated.values() if v)} symbols",
            f"configurations: {self.configs} stored, {self.current} up to date, "
            f"{self.rerun} re-run{' (resumed an interrupted run)' if self.resumed else ''}",
        ]
        out += [drift_line(d) for d in self.drift]
        out += [f"note: {n}" for n in self.notes]
        out += [f"failed: {f}" for f in self.failed]
        out.append(f"done in {self.elapsed_s:.1f}s")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "lines": [drift_line(d) for d in self.drift]}


def _fmt(value: Any, kind: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if kind == "pct":
        return f"{value:.0%}" if abs(value) >= 0.1 else f"{value:.1%}"
    if kind == "int":
        return str(int(value))
    return f"{value:.2f}"


def drift_line(entry: dict[str, Any]) -> str:
    """``AAA rsi_meanrev {"period":14,...} [exit]: win rate 62% -> 48%, ...``"""
    changes = []
    for name, kind in DRIFT_METRICS.items():
        old, new = entry["old"].get(name), entry["new"].get(name)
        if _fmt(old, kind) != _fmt(new, kind):
            changes.append(f"{name.replace('_', ' ')} {_fmt(old, kind)} -> {_fmt(new, kind)}")
    what = ", ".join(changes) if changes else "no change in the headline metrics"
    return f"{entry['symbol']} {entry['strategy']} {entry['params_json']} {entry['exit_json']}: {what}"


# ---------------------------------------------------------------------------------------------
# journal
# ---------------------------------------------------------------------------------------------


def journal_path(store_url: str) -> Path | None:
    """``<store>.refresh.json`` next to a local store; None for remote stores (no journal)."""
    url = str(store_url)
    if "://" in url and not url.startswith("file://"):
        return None
    path = Path(url.removeprefix("file://")).resolve()
    return path.with_name(path.name + ".refresh.json")


def _read_journal(path: Path | None) -> dict | None:
    if path is None or not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None  # a torn journal only loses drift lines; the fingerprints still hold


def _write_journal(path: Path | None, doc: dict) -> None:
    """Replace the journal atomically (write aside, fsync, rename)."""
    if path is None:
        return
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, allow_nan=True, default=str)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _merge_counts(before: dict[str, int], now: dict[str, int]) -> dict[str, int]:
    """New bars per symbol of the interrupted run plus those of this run."""
    return {s: int(before.get(s, 0)) + int(now.get(s, 0)) for s in {**before, **now}}


# ---------------------------------------------------------------------------------------------
# one refresh at a time
# ---------------------------------------------------------------------------------------------


def refresh_lock_path(store_url: str) -> Path:
    """``<store>.refresh.lock`` next to a local store; for a remote store, a lock file named
    after the store URL in this machine's temp folder (refreshes started here take turns)."""
    url = str(store_url)
    if "://" in url and not url.startswith("file://"):
        return Path(tempfile.gettempdir()) / f"hindsight-refresh-{stable_hash(url)}.lock"
    path = Path(url.removeprefix("file://")).resolve()
    return path.with_name(path.name + ".refresh.lock")


@contextmanager
def _one_at_a_time(store_url: str, wait: float | None) -> Iterator[None]:
    """Hold the store's refresh lock; wait up to ``wait`` seconds (None: as long as it takes)."""
    if wait is not None and (isinstance(wait, bool) or not wait >= 0):
        raise ValidationError(f"wait must be a number of seconds >= 0 (or None), got {wait!r}.")
    path = refresh_lock_path(store_url)
    lock = FileLock(path, thread_local=False)
    try:
        lock.acquire(timeout=-1 if wait is None else float(wait))
    except Timeout:
        waited = f" after waiting {wait:g} s" if wait else ""
        raise RefreshRunningError(
            f"Another refresh is running on {store_url or 'this store'}{waited} (it holds {path}). "
            f"Let it finish, or wait for it with --wait SECONDS (refresh(wait=...))."
        ) from None
    try:
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------------------------------------
# the refresh
# ---------------------------------------------------------------------------------------------


def update_price_cache(provider, symbols: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Ask the cached provider (``CachedProvider.refresh``) for new bars.

    Returns (new rows per symbol, the provider's warnings as text, e.g. a symbol it no longer
    has). A provider without a price cache serves fresh data on every load: nothing to update.
    """
    import warnings

    update = getattr(provider, "refresh", None)
    if update is None:
        return {}, []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        counts = update(list(symbols))
    notes = [str(w.message) for w in caught]
    return {str(k): int(v) for k, v in dict(counts or {}).items()}, notes


def _stored_configs(store, symbols: Sequence[str] | None, source: str
                   ) -> tuple[pd.DataFrame, list[str]]:
    """Latest stored configurations the refresh can bring up to date, and notes on the others.

    Each identity is re-run in its own scope: only scopes of this data source whose window
    can grow (``full``, or a start without an end) are kept; fixed windows never change.
    Walk-forward windows and runs of an older strategy definition are left as they are.
    """
    frame = store.query(symbol=list(symbols), scope="all") if symbols else \
        store.query(scope="all")
    if frame is None or len(frame) == 0:
        return pd.DataFrame(), []
    frame = frame.copy()
    for column in ("symbol", "strategy", "params", "exit_rule", "params_hash", "exit_hash",
                   "scope_hash", "definition", "data_fingerprint", "tags"):
        frame[column] = frame[column].astype(object).astype(str)
    is_window = frame["tags"].str.split(",").apply(lambda tags: any(t.startswith("wf:") for t in tags))
    frame = frame[~is_window]
    scopes = store.scopes()
    source = source or store.default_scope["source"]
    ours = frame["scope_hash"].map(lambda h: scopes[h]["source"] == source)
    growing = frame["scope_hash"].map(lambda h: _window_grows(scopes[h]["window"]))
    current = _current_definitions(frame)
    notes = []
    for count, why in (((~ours).sum(), "another data source"),
                       ((ours & ~growing).sum(), "a fixed window"),
                       ((ours & growing & ~current).sum(), "an older strategy definition")):
        if count:
            notes.append(f"{count} configuration(s) of {why} left as they are.")
    return frame[ours & growing & current].reset_index(drop=True), notes


def _window_grows(window) -> bool:
    return window == "full" or window.get("end") is None


def _current_definitions(frame: pd.DataFrame) -> pd.Series:
    """Rows whose strategy is registered with the definition they ran."""
    from core.strategies import current_definition

    current = {name: current_definition(name) for name in frame["strategy"].unique()}
    return frame["strategy"].map(current) == frame["definition"]


def _current_bars(provider, symbol: str, window) -> pd.DataFrame:
    """Today's bars of ``symbol`` in a scope's window (``full``: all of them)."""
    if window == "full":
        return provider.load_bars(symbol)
    return provider.load_bars(symbol, start=window.get("start"), end=window.get("end"))


def _rerun_group(rows: pd.DataFrame, bars: pd.DataFrame, scope: dict):
    """Re-run rows sharing symbol, scope, strategy and exit rule at once, in that scope."""
    from core.engine import run_many

    first = rows.iloc[0]
    settings = scope["settings"]
    params = [json.loads(p) for p in rows["params"]]
    return run_many(
        {first["symbol"]: bars}, first["strategy"], params, [json.loads(first["exit_rule"])],
        costs=scope["costs"], initial_capital=float(scope["capital"]),
        whole_shares=bool(settings.get("whole_shares", False)),
        stop_on_entry_bar=bool(settings.get("stop_on_entry_bar", True)), with_trades=True,
        periods_per_year=settings.get("periods_per_year"),
    )


def _drift_entries(old: pd.DataFrame, new: pd.DataFrame) -> list[dict[str, Any]]:
    """Old vs new headline metrics for each re-run configuration (matched by params hash)."""
    by_hash = {ph: i for i, ph in enumerate(new["params_hash"])}
    out = []
    for _, row in old.iterrows():
        j = by_hash.get(row["params_hash"])
        if j is None:
            continue
        fresh = new.iloc[j]
        out.append({
            "symbol": row["symbol"], "strategy": row["strategy"],
            "params_json": row["params"], "exit_json": row["exit_rule"],
            "old_fingerprint": row["data_fingerprint"], "new_fingerprint": fresh["data_fingerprint"],
            "old": {m: _plain(row.get(m)) for m in DRIFT_METRICS},
            "new": {m: _plain(fresh.get(m)) for m in DRIFT_METRICS},
        })
    return out


def _plain(value: Any) -> float | None:
    """A metric as a float for the JSON journal (None when missing)."""
    return None if value is None else float(value)


def refresh(
    store,
    provider,
    *,
    symbols: Sequence[str] | None = None,
    update_prices: bool = True,
    progress: bool = False,
    journal: Path | str | None = "auto",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    wait: float | None = 0.0,
) -> RefreshReport:
    """Bring every stored configuration up to date with today's data; report the drift.

    Symbols are processed one after another (bars loaded, changed configurations re-run) and
    results are stored in atomic batches of about ``batch_rows``. ``journal="auto"`` keeps the
    journal next to a local store (``journal_path``); ``None`` disables it. A symbol that can no
    longer be loaded is listed in ``failed`` and its configurations are left as they are.
    While another refresh of the store runs, this one waits up to ``wait`` seconds (None: until
    it ends), then raises ``RefreshRunningError``.
    """
    with _one_at_a_time(_store_url(store), wait):
        return _refresh(store, provider, symbols, update_prices, progress, journal, batch_rows)


def _refresh(store, provider, symbols, update_prices, progress, journal, batch_rows) -> RefreshReport:
    """The refresh itself, run while holding the store's refresh lock."""
    t0 = time.perf_counter()
    jpath = journal_path(_store_url(store)) if journal == "auto" else (Path(journal) if journal else None)
    report = _resume(_read_journal(jpath))
    configs, skipped = _stored_configs(store, symbols, getattr(provider, "source_id", ""))
    report.configs = len(configs)
    report.notes = list(dict.fromkeys(report.notes + skipped))
    if update_prices and len(configs):
        counts, notes = update_price_cache(provider, sorted(configs["symbol"].unique()))
        report.prices_updated = _merge_counts(report.prices_updated, counts)
        report.notes = list(dict.fromkeys(report.notes + notes))
    _write_journal(jpath, _journal_doc(report))
    bar = _bar(progress, len(configs))
    writer = _Batcher(store, report, jpath, batch_rows)
    failed_configs = 0
    scopes = store.scopes() if len(configs) else {}
    for (symbol, scope_hash), rows in configs.groupby(["symbol", "scope_hash"], sort=True):
        scope = scopes[scope_hash]
        try:
            bars = _current_bars(provider, symbol, scope["window"])
        except HindsightError as exc:
            report.failed.append(f"{symbol}: {len(rows)} configuration(s) not refreshed: {exc}")
            failed_configs += len(rows)
        else:
            failed_configs += _rerun_changed(rows, bars, scope, writer)
        if bar is not None:
            bar.update(len(rows))
    writer.flush()
    if bar is not None:
        bar.close()
    report.current = max(0, len(configs) - failed_configs - len(report.drift))
    return _finish(report, jpath, t0)


def _resume(previous: dict | None) -> RefreshReport:
    """A new report, carrying the figures of an interrupted run's journal when there is one."""
    if previous is None:
        return RefreshReport()
    return RefreshReport(resumed=True, drift=list(previous.get("drift", [])),
                         prices_updated=dict(previous.get("prices_updated", {})),
                         notes=list(previous.get("notes", [])))


def _rerun_changed(rows: pd.DataFrame, bars: pd.DataFrame, scope: dict, writer: "_Batcher"
                   ) -> int:
    """Re-run the rows whose data fingerprint differs from ``bars``; returns configs failed."""
    fp = fingerprint_of(bars)
    changed = rows[rows["data_fingerprint"] != fp]
    if len(changed) == 0:
        return 0
    failed = 0
    for _, group in changed.groupby(list(_GROUP_COLUMNS), sort=False, dropna=False):
        try:
            batch = _rerun_group(group, bars, scope)
        except HindsightError as exc:
            first = group.iloc[0]
            writer.report.failed.append(f"{first['symbol']} {first['strategy']} "
                                        f"{first['exit_rule']}: {exc}")
            failed += len(group)
            continue
        writer.add(batch, _drift_entries(group, batch.table))
    return failed


class _Batcher:
    """Stores re-run results in atomic batches, then journals their drift lines."""

    def __init__(self, store, report: RefreshReport, jpath: Path | None, batch_rows: int):
        self.store, self.report, self.jpath, self.batch_rows = store, report, jpath, batch_rows
        self.batches: list = []
        self.drift: list = []
        self.rows = 0

    def add(self, batch, drift: list) -> None:
        self.batches.append(batch)
        self.drift += drift
        self.rows += len(batch)
        if self.rows >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.batches:
            return
        from core.sweep import concat_batches

        self.store.store_many(concat_batches(self.batches))
        self.report.drift += self.drift
        _write_journal(self.jpath, _journal_doc(self.report))
        self.batches, self.drift, self.rows = [], [], 0


def _journal_doc(report: RefreshReport) -> dict:
    """What a resumed run needs to report the interrupted run's work as its own."""
    return {"drift": report.drift, "prices_updated": report.prices_updated, "notes": report.notes}


def _finish(report: RefreshReport, jpath, t0: float) -> RefreshReport:
    if jpath is not None and jpath.exists():
        jpath.unlink()
    report.rerun = len(report.drift)
    report.elapsed_s = time.perf_counter() - t0
    return report


def _store_url(store) -> str:
    for name in ("url", "path", "root"):
        value = getattr(store, name, None)
        if value:
            return str(value)
    return ""


def _bar(enabled: bool, total: int):
    """A tqdm bar on stderr (silent when stderr is not a terminal), or None."""
    if not enabled:
        return None
    import sys

    from tqdm import tqdm

    return tqdm(total=total, desc="refresh", unit="config", file=sys.stderr, dynamic_ncols=True,
                disable=None)

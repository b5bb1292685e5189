"""Build the store's outputs: the stats dict of one backtest and stats tables."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from core.store._format import CODE_KINDS, FLOAT_LEAD, METRICS, TIME_COLUMNS

STR = pd.StringDtype("pyarrow", na_value=np.nan)
#: Text columns of stats tables and the vocabulary each comes from.
TEXT_COLUMNS = {"symbol": "symbol", "strategy": "strategy", "engine_version": "engine_version",
                "data_fingerprint": "data_fingerprint"}
HASH_COLUMNS = {"params_hash": "params", "exit_hash": "exit_rule"}
JSON_COLUMNS = {"params": "params", "exit_rule": "exit_rule"}
_EMPTY_TEXT = pd.CategoricalDtype(pd.Index([""], dtype=STR))  # note/tags when none are set


def stats_dict(store, index, row: int, values: list) -> dict:
    """Identity, settings, every metric, param columns, note and tags of one backtest.

    ``values`` is ``index.stat_row(row)``: times then float columns, as Python numbers.
    Every part comes from a per-handle cache (vocabulary strings, parsed JSON copied, shared
    Timestamps), so this is dict building only.
    """
    vocab = store._vocab.values
    symbol, strategy, params, exit_rule, costs, settings, engine, fingerprint = \
        index.code_block[:, row].tolist()
    bid = str(index.bids.item(row))
    json_value, stamp, layout = store._json, store._timestamp, index.stat_layout
    out = {
        "backtest_id": bid,
        "symbol": vocab["symbol"][symbol],
        "strategy": vocab["strategy"][strategy],
        "params": json_value("params", params),
        "params_hash": vocab["params"][params][1],
        "exit_rule": json_value("exit_rule", exit_rule),
        "exit_hash": vocab["exit_rule"][exit_rule][1],
        "start": stamp(values[0]),
        "end": stamp(values[1]),
        "created_at": stamp(values[2], True),
    }
    out.update(zip(layout.plain_names, layout.plain(values)))
    for name, pos in layout.params:
        value = values[pos]
        if value == value:  # NaN: a param column of another strategy
            out[name] = value
    out["metrics"] = dict(zip(layout.metric_names, layout.metrics(values)))
    out["costs"] = json_value("costs", costs)
    out["settings"] = json_value("settings", settings)
    out["engine_version"] = vocab["engine_version"][engine]
    out["data_fingerprint"] = vocab["data_fingerprint"][fingerprint]
    note = store._notes().get(bid)
    out["note"] = note.get("note", "") if note else ""
    out["tags"] = list(note.get("tags", [])) if note else []
    return out


def stats_frame(store, index, rows: np.ndarray, compact_params: bool) -> pd.DataFrame:
    """One row per given global row: ids, key, dates, metrics, param columns, note, tags."""
    rows = np.asarray(rows, np.int64)
    every_row = len(rows) == index.n and index.n > 0 and rows[0] == 0 and bool(
        (np.diff(rows) == 1).all())  # every row, in order: a plain copy beats a gather
    take = (lambda values: values.copy()) if every_row else (lambda values: values[rows])
    vocab = store._vocab.values
    data: dict[str, object] = {"backtest_id": _id_strings(take(index.bids))}
    for column in ("symbol", "strategy"):
        data[column] = _categorical(take(index.codes[column]), vocab[column], column, store)
    for column, kind in JSON_COLUMNS.items():
        data[column] = _categorical(take(index.codes[kind]), vocab[kind], kind, store, part=0)
    for name in TIME_COLUMNS[:2]:
        data[name] = _datetimes(take(index.column(name)))
    metric_names = [c for c in index.float_columns if c not in index.param_columns
                    and c not in FLOAT_LEAD]
    for name in metric_names:
        data[name] = take(index.column(name))
    for name in index.param_columns:
        values = take(index.column(name))
        if compact_params and len(rows) and np.isnan(values).all():
            continue
        data[name] = values
    data["initial_capital"] = take(index.column("initial_capital"))
    data["created_at"] = _datetimes(take(index.column("created_at")), utc=True)
    data["note"], data["tags"] = _notes_columns(store._notes(), index.bids[rows])
    for column, kind in HASH_COLUMNS.items():
        data[column] = _categorical(take(index.codes[kind]), vocab[kind], kind, store, part=1)
    for column in ("engine_version", "data_fingerprint"):
        data[column] = _categorical(take(index.codes[column]), vocab[column], column, store)
    # Every column is already a final 1-D array (ExtensionArray or numpy), so the frame is
    # assembled without pandas' per-column checks: half the cost of a 500-row lookup table.
    return pd.DataFrame._from_arrays(list(data.values()), pd.Index(list(data)),
                                     pd.RangeIndex(len(rows)), verify_integrity=False)


_NAIVE_NS = np.dtype("datetime64[ns]")
_UTC_NS = pd.DatetimeTZDtype(unit="ns", tz="UTC")


def _datetimes(ns: np.ndarray, utc: bool = False) -> pd.arrays.DatetimeArray:
    """Nanosecond integers (UTC instants) as a datetime array without a copy or a check.

    ``_simple_new`` wraps the buffer directly (the public constructors re-validate every
    value: 25x slower for a 500-row table); stored times are valid by construction.
    """
    return pd.arrays.DatetimeArray._simple_new(ns.view(_NAIVE_NS),
                                               dtype=_UTC_NS if utc else _NAIVE_NS)


def _id_strings(bids: np.ndarray) -> pd.arrays.ArrowStringArray:
    return pd.arrays.ArrowStringArray(pa.array(bids).cast(pa.large_string()), dtype=STR)


def _categorical(codes: np.ndarray, values: list, kind: str, store, part: int | None = None):
    categories = store._categories(kind, values, part)
    return pd.Categorical.from_codes(codes, dtype=categories, validate=False)


def _notes_columns(notes: dict, bids: np.ndarray) -> tuple[pd.Categorical, pd.Categorical]:
    note_codes = np.zeros(len(bids), np.int32)
    tag_codes = np.zeros(len(bids), np.int32)
    note_values, tag_values = [""], [""]
    if not notes:
        return (pd.Categorical.from_codes(note_codes, dtype=_EMPTY_TEXT, validate=False),
                pd.Categorical.from_codes(tag_codes, dtype=_EMPTY_TEXT, validate=False))
    noted = np.fromiter((int(b) for b in notes), np.int64, len(notes))
    for i in np.flatnonzero(np.isin(bids, noted)):
        entry = notes[str(int(bids[i]))]
        note_codes[i] = _code_of(note_values, entry.get("note", ""))
        tag_codes[i] = _code_of(tag_values, ",".join(entry.get("tags", [])))
    return (pd.Categorical.from_codes(note_codes, categories=_unique_categories(note_values)),
            pd.Categorical.from_codes(tag_codes, categories=_unique_categories(tag_values)))


def _code_of(values: list, value: str) -> int:
    if value in values:
        return values.index(value)
    values.append(value)
    return len(values) - 1


def _unique_categories(values: list) -> pd.Index:
    return pd.Index(values, dtype=STR)


__all__ = ["stats_dict", "stats_frame", "METRICS"]

"""Build the store's outputs: the stats dict of one backtest and stats tables."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa

from core.scope import scope_label
from core.store._format import (CODE_KINDS, METRICS, TRADE_FLOAT_COLUMNS,
                                TRADE_TIME_COLUMNS)
from core.types import EXIT_REASON_DTYPE, TRADE_COLUMNS

STR = pd.StringDtype("pyarrow", na_value=np.nan)
#: Text columns of stats tables and the vocabulary each comes from.
TEXT_COLUMNS = {"symbol": "symbol", "strategy": "strategy", "engine_version": "engine_version",
                "data_fingerprint": "data_fingerprint", "definition": "definition"}
HASH_COLUMNS = {"params_hash": "params", "exit_hash": "exit_rule", "scope_hash": "scope"}
#: A text column of labels derived from a vocabulary (``scope``: its readable name).
LABEL_COLUMN = "scope"
_EMPTY_TEXT = pd.CategoricalDtype(pd.Index([""], dtype=STR))  # note/tags when none are set


def stats_dict(store, index, row: int, values: list) -> dict:
    """Identity, settings, every metric, param columns, note and tags of one backtest.

    ``values`` is ``index.stat_row(row, chunks)``: times then float columns, as Python numbers.
    Every part comes from a per-handle cache (vocabulary strings, parsed JSON copied, shared
    Timestamps), so this is dict building only.
    """
    vocab = store._vocab.values
    symbol, strategy, params, exit_rule, scope, definition, costs, settings, engine, \
        fingerprint = index.code_block[:, row].tolist()
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
        "scope": _scope_label(store, scope),
        "scope_hash": vocab["scope"][scope][1],
        "scope_detail": json_value("scope", scope),
        "definition": vocab["definition"][definition],
        "start": stamp(values[0]),
        "end": stamp(values[1]),
        "created_at": stamp(values[2], True),
    }
    for name, pos in layout.lead:
        out[name] = values[pos]
    metrics = dict(zip(layout.metric_names, layout.metrics(values)))
    out.update(metrics)
    for name, pos in layout.params:
        value = values[pos]
        if value == value:  # NaN: a param column of another strategy
            out[name] = value
    out["metrics"] = metrics
    out["costs"] = json_value("costs", costs)
    out["settings"] = json_value("settings", settings)
    out["engine_version"] = vocab["engine_version"][engine]
    out["data_fingerprint"] = vocab["data_fingerprint"][fingerprint]
    note = store._notes().get(bid)
    out["note"] = note.get("note", "") if note else ""
    out["tags"] = list(note.get("tags", [])) if note else []
    return out


def stats_frame(store, index, rows: np.ndarray, compact_params: bool) -> pd.DataFrame:
    """One row per given global row: ids, key, dates, metrics, param columns, note, tags.

    ``index`` must be warm. Text columns are categoricals over the store's vocabularies; the
    float columns become one 2-D block (copied once, in table order).
    """
    code_block, times, floats, bids = index.gather(np.asarray(rows, np.int64))
    codes = dict(zip(CODE_KINDS, code_block))
    vocab = store._vocab.values

    def categorical(kind: str, part: int | None = None) -> pd.Categorical:
        dtype = store._categories(kind, vocab[kind], part)
        return pd.Categorical.from_codes(_own_codes(codes[kind], len(dtype.categories)),
                                         dtype=dtype, validate=False)

    head = {"backtest_id": pd.array(pa.array(bids).cast(pa.string()), dtype=STR),
            "symbol": categorical("symbol"), "strategy": categorical("strategy"),
            "params": categorical("params", 0), "exit_rule": categorical("exit_rule", 0),
            "start": _datetimes(times[0]), "end": _datetimes(times[1])}
    float_table = _float_table(index, floats, compact_params)
    note, tags = _notes_columns(store._notes(), bids)
    tail = {"created_at": _datetimes(times[2], utc=True), "note": note, "tags": tags,
            "scope": _scope_column(store, codes["scope"]),
            "params_hash": categorical("params", 1), "exit_hash": categorical("exit_rule", 1),
            "scope_hash": categorical("scope", 1), "definition": categorical("definition"),
            "engine_version": categorical("engine_version"),
            "data_fingerprint": categorical("data_fingerprint")}
    rows_index = pd.RangeIndex(len(bids))
    return pd.concat([pd.DataFrame(head, index=rows_index), float_table,
                      pd.DataFrame(tail, index=rows_index)], axis=1)


def _own_codes(codes: np.ndarray, categories: int) -> np.ndarray:
    """A new array of ``codes`` in the smallest integer type pandas keeps for that many
    categories (a table never shares the index's codes, and a million rows of a small
    vocabulary take a megabyte, not four)."""
    for dtype in (np.int8, np.int16, np.int32):
        if categories < np.iinfo(dtype).max:
            return codes.astype(dtype)
    return codes.astype(np.int64)


def scope_labels(store) -> tuple[np.ndarray, pd.CategoricalDtype]:
    """(label code of each scope code, categorical dtype of the distinct labels), cached
    until the scope vocabulary grows."""
    values = store._vocab.values["scope"]
    cached = store._category_cache.get(("scope", "label"))
    if cached is None or cached[0] != len(values):
        codes, distinct = label_codes(values)
        dtype = pd.CategoricalDtype(pd.Index(distinct, dtype=STR))
        cached = store._category_cache[("scope", "label")] = (len(values), (codes, dtype))
    return cached[1]


def label_codes(scopes: list) -> tuple[np.ndarray, list[str]]:
    """(label code of each (json, hash) scope entry, the distinct labels): scopes that read
    alike share a label."""
    labels = [scope_label(json.loads(value[0])) for value in scopes]
    distinct = list(dict.fromkeys(labels))
    position = {label: i for i, label in enumerate(distinct)}
    return np.array([position[label] for label in labels], np.int32), distinct


def _scope_label(store, code: int) -> str:
    remap, dtype = scope_labels(store)
    return str(dtype.categories[remap[code]])


def _scope_column(store, codes: np.ndarray) -> pd.Categorical:
    remap, dtype = scope_labels(store)
    return pd.Categorical.from_codes(remap[codes] if len(remap) else codes.copy(),
                                     dtype=dtype, validate=False)


def trades_frame(times: np.ndarray, floats: np.ndarray, ints: np.ndarray) -> pd.DataFrame:
    """A trade log from its stored rows (entry/exit ns, the five prices and amounts, bars
    held and exit-reason codes)."""
    columns = {name: _datetimes(times[:, j]) for j, name in enumerate(TRADE_TIME_COLUMNS)}
    columns.update((name, floats[:, j]) for j, name in enumerate(TRADE_FLOAT_COLUMNS))
    columns["bars_held"] = ints[:, 0].astype(np.int64)
    columns["exit_reason"] = pd.Categorical.from_codes(ints[:, 1], dtype=EXIT_REASON_DTYPE,
                                                       validate=False)
    return pd.DataFrame({name: columns[name] for name in TRADE_COLUMNS},
                        index=pd.RangeIndex(len(times)))


def _float_table(index, floats: np.ndarray, compact_params: bool) -> pd.DataFrame:
    """The float columns of a table, in the index's order (metrics, param columns without
    other strategies' all-NaN ones when ``compact_params``, FLOAT_LEAD), from a (columns,
    rows) block.

    A table of every row shares the index's float block instead of copying it: through one
    DataFrame the index keeps, so pandas' copy-on-write copies the data before any change to
    the table, and the index never changes under its caller.
    """
    names = index.float_columns
    position = {name: j for j, name in enumerate(names)}
    if compact_params and floats.shape[1]:
        names = [c for c in names
                 if c not in index.param_columns or not np.isnan(floats[position[c]]).all()]
    if floats is index.float_block and names is index.float_columns:
        if index.float_frame is None:
            index.float_frame = pd.DataFrame(floats.T, columns=names, copy=False)
        return index.float_frame
    kept = floats if names is index.float_columns else floats[[position[c] for c in names]]
    return pd.DataFrame(kept.T, columns=names, index=pd.RangeIndex(floats.shape[1]), copy=False)


def _datetimes(ns: np.ndarray, utc: bool = False) -> pd.DatetimeIndex:
    """Nanosecond integers (UTC instants) as datetimes, naive or UTC-aware."""
    values = pd.DatetimeIndex(ns.astype("datetime64[ns]"))  # a copy: callers may own ``ns``
    return values.tz_localize("UTC") if utc else values


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

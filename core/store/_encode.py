"""Turn engine output (result objects, a batch table, a BatchResult) into one columnar segment.

Everything is validated here, before a byte is written: bad input never damages the store.
Both forms are encoded column by column. In a result list each distinct key value (told apart
by its ``repr``) is validated and canonicalised once; a batch table's text columns are
factorized and its canonical JSON checked on a sample.
"""
from __future__ import annotations

import json
import math
import operator
from itertools import chain, count
from typing import Any, Callable

import numpy as np
import pandas as pd

from core.canonical import canonical_json
from core.errors import ValidationError
from core.scope import make_scope, scope_hash, scope_json
from core.store import _keys
from core.store._curves import attach_batch_curves, attach_curves, curve_arrays
from core.store._format import (CODE_KINDS, FLOAT_LEAD, METRICS,
                                TRADE_FLOAT_COLUMNS, TRADE_TIME_COLUMNS)
from core.store._keys import KeyMemo
from core.store._segdata import SegmentData
from core.types import EXIT_REASONS, TRADE_COLUMNS, BacktestResult, BatchResult

__all__ = ["KeyMemo", "SegmentData", "encode_any"]

_NAT = np.iinfo(np.int64).min
_REASON_CODE = {name: code for code, name in enumerate(EXIT_REASONS)}
_KIND_POS = {kind: pos for pos, kind in enumerate(CODE_KINDS)}
_TABLE_TEXT = {"costs": "costs_json", "settings": "settings_json",
               "engine_version": "engine_version", "data_fingerprint": "data_fingerprint",
               "definition": "definition"}
_SAMPLE_CHECKS = 16
_METRIC_GETTER = operator.itemgetter(*METRICS)
_METRIC_SET = frozenset(METRICS)
_NS = operator.attrgetter("value")


def encode_any(results: Any, created_at_ns: int, memo: KeyMemo | None = None,
               default_source: str = "demo") -> SegmentData:
    """Validate and encode the input of ``store_many``: a list of results or a batch.

    A row that names no data source is stored under ``default_source`` (the store's)."""
    if isinstance(results, (BatchResult, pd.DataFrame)):
        return encode_batch(results, created_at_ns, default_source)
    if isinstance(results, BacktestResult):
        results = [results]
    if not isinstance(results, (list, tuple)):
        raise ValidationError("store_many takes a list of BacktestResult, a BatchResult or "
                              f"a batch DataFrame, got {type(results).__name__}.")
    return encode_results(list(results), created_at_ns, memo or KeyMemo(), default_source)


# --------------------------------------------------------------------------------------------
# Result objects
# --------------------------------------------------------------------------------------------
def encode_results(results: list, created_at_ns: int, memo: KeyMemo,
                   default_source: str = "demo") -> SegmentData:
    """Validate and encode a list of ``BacktestResult``, column by column.

    An error names the first offending result: ``result #i ('SYMBOL', 'strategy'): ...``.
    """
    for i, result in enumerate(results):
        if not isinstance(result, BacktestResult):
            raise ValidationError(f"result #{i}: expected a core.types.BacktestResult, got "
                                  f"{type(result).__name__}.")
    n = len(results)

    def where(row: int) -> str:
        return _label(row, results[row])

    def column(name: str) -> list:
        return list(map(operator.attrgetter(name), results))

    codes = np.empty((n, len(CODE_KINDS)), np.int32)
    vocab: dict[str, list] = {}
    for kind, canon in _CANON.items():
        values = column(kind)
        raw, forms = _distinct(list(map(repr, values)), values, canon, memo, kind, where)
        codes[:, _KIND_POS[kind]], vocab[kind] = _vocab_codes(raw, forms)
    strategies = [vocab["strategy"][code] for code in codes[:, 1].tolist()]
    params = list(zip(strategies, column("params")))
    raw, forms = _distinct(list(zip(strategies, map(repr, column("params")))), params,
                           _params_form, memo, "params", where)
    codes[:, 2], vocab["params"] = _vocab_codes(raw, [form[:2] for form in forms])
    param_names = {column: bare for strategy in vocab["strategy"]
                   for column, bare in _keys.param_column_names(strategy).items()}
    param_values = [np.array([form[2].get(c, np.nan) for form in forms])[raw]
                    for c in param_names]
    times = np.empty((n, 3), np.int64)
    times[:, 0] = _stamps(column("start"), "start", where)
    times[:, 1] = _stamps(column("end"), "end", where)
    times[:, 2] = created_at_ns
    if (times[:, 1] < times[:, 0]).any():
        row = int(np.argmax(times[:, 1] < times[:, 0]))
        raise ValidationError(f"{where(row)}: end {results[row].end} is before start "
                              f"{results[row].start}.")
    capital = _capitals(column("initial_capital"), where)
    scopes = list(zip([source or default_source for source in column("source")],
                      column("window"), column("costs"), column("initial_capital"),
                      column("settings")))
    scope_raw, scope_forms = _distinct(list(map(repr, scopes)), scopes, _scope_form, memo,
                                       "scope", where)
    codes[:, _KIND_POS["scope"]], vocab["scope"] = _vocab_codes(scope_raw, scope_forms)
    clock = [_optional_floats(results, name, where) for name in FLOAT_LEAD[1:]]
    metrics, extra = _metric_block(column("metrics"), where)
    float_columns = [*FLOAT_LEAD, *METRICS, *extra, *param_names]
    floats = np.column_stack([capital, *clock, metrics, *extra.values(), *param_values])
    data = SegmentData(rows=n, vocab={kind: vocab[kind] for kind in CODE_KINDS}, codes=codes,
                       times=times, float_columns=float_columns,
                       floats=np.ascontiguousarray(floats.reshape(n, len(float_columns))),
                       param_columns=param_names)
    _attach_result_trades(data, column("trades"), where)
    _attach_result_curves(data, column("equity"), where)  # after the trades: the codec reads them
    return data


def _label(row: int, result: Any) -> str:
    symbol = getattr(result, "symbol", "?")
    strategy = getattr(result, "strategy", "?")
    shown = symbol if not isinstance(symbol, str) or len(symbol) <= 40 else symbol[:40] + "..."
    return f"result #{row} ({shown!r}, {strategy!r})"


def _distinct(keys: list, values: list, canon: Callable[[Any], Any], memo: KeyMemo, kind: str,
              where: Callable[[int], str]) -> tuple[np.ndarray, list]:
    """(index of each row's key among the distinct keys, canonical form of each distinct key).

    ``canon`` runs on the value of the first row of each distinct key the memo does not hold;
    its ValidationError is re-raised naming that row's result.
    """
    first = dict(zip(reversed(keys), range(len(keys) - 1, -1, -1)))  # key -> first row
    order = dict(zip(dict.fromkeys(keys), count()))  # key -> its index, first-seen order
    forms = []
    for key in order:
        form = memo.forms.get((kind, key))
        if form is None:
            row = first[key]
            try:
                form = memo.forms[(kind, key)] = canon(values[row])
            except ValidationError as exc:
                raise type(exc)(f"{where(row)}: {exc}") from None
        forms.append(form)
    return np.fromiter(map(order.__getitem__, keys), np.int64, len(keys)), forms


def _vocab_codes(raw: np.ndarray, forms: list) -> tuple[np.ndarray, list]:
    """(code of each row, vocabulary): equal canonical forms share one code, first-seen order."""
    vocab: dict[Any, int] = {}
    remap = np.array([vocab.setdefault(form, len(vocab)) for form in forms], np.int32)
    return remap[raw], list(vocab)


def _params_form(pair: tuple[str, Any]) -> tuple[str, str, dict[str, float]]:
    """The registry's canonical form of a (strategy, params dict), or the registry's error."""
    strategy, params = pair
    if not isinstance(params, dict):
        raise ValidationError(f"params must be a dict, got {type(params).__name__}.")
    try:
        return _keys.params_form(strategy, params)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the registry tripped on, as bad input
        raise ValidationError(f"params {params!r} of {strategy!r} cannot be validated "
                              f"({exc}).") from None


def _json_text(value: Any, what: str) -> str:
    try:
        return canonical_json(value if value is not None else {})
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{what} cannot be stored as JSON ({exc}).") from None


def _exit_form(exit_rule: Any) -> tuple[str, str]:
    _json_text(exit_rule, "exit_rule")
    return _keys.exit_key(exit_rule)


def _text(what: str) -> Callable[[Any], str]:
    """The check of a text attribute: a string, or None for ''."""
    def check(value: Any) -> str:
        if value is not None and not isinstance(value, str):
            raise ValidationError(f"{what} must be a string, got {value!r}.")
        return value or ""
    return check


def _scope_form(parts: tuple) -> tuple[str, str]:
    """(canonical JSON, hash) of a result's scope: (source, window, costs, capital, settings)."""
    source, window, costs, capital, settings = parts
    if costs is not None and not isinstance(costs, dict):
        raise ValidationError(f"costs must be a dict, got {type(costs).__name__}.")
    scope = make_scope(source, window, costs, _capital(capital, "the scope"), settings)
    return scope_json(scope), scope_hash(scope)


def _optional_floats(results: list, name: str, where: Callable[[int], str]) -> np.ndarray:
    """A float attribute results may lack (NaN then), e.g. ``periods_per_year``."""
    values = [getattr(result, name, None) for result in results]
    try:
        return np.array([np.nan if v is None else v for v in values], np.float64)
    except (TypeError, ValueError):
        row = next(i for i, v in enumerate(values) if not _is_number(v) and v is not None)
        raise ValidationError(f"{where(row)}: {name} must be a number, got {values[row]!r}.") \
            from None


#: How each key attribute of a result is canonicalised (params, per strategy, apart).
_CANON: dict[str, Callable[[Any], Any]] = {
    "symbol": _keys.validate_symbol, "strategy": _keys.check_strategy, "exit_rule": _exit_form,
    "costs": lambda value: _json_text(value, "costs"),
    "settings": lambda value: _json_text(value, "settings"),
    "engine_version": _text("engine_version"), "data_fingerprint": _text("data_fingerprint"),
    "definition": _text("definition")}


def _stamps(values: list, what: str, where: Callable[[int], str]) -> np.ndarray:
    """int64 ns of start or end dates: Timestamps (naive, or aware as UTC) in one pass."""
    if {pd.Timestamp}.issuperset(map(type, values)):  # .value: UTC ns whatever the unit
        return np.fromiter(map(_NS, values), np.int64, len(values))
    return np.array([_timestamp_ns(v, what, where(row)) for row, v in enumerate(values)],
                    np.int64)


def _timestamp_ns(value: Any, what: str, where: str) -> int:
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {what} {value!r} is not a date.") from None
    if pd.isna(stamp):
        raise ValidationError(f"{where}: {what} is missing (NaT); give the backtest's {what} date.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.as_unit("ns").value)


def _capitals(values: list, where: Callable[[int], str]) -> np.ndarray:
    """Initial capitals as float64, each a positive finite number."""
    try:
        capital = np.fromiter(values, np.float64, len(values))
        if (np.isfinite(capital) & (capital > 0)).all():
            return capital
    except (TypeError, ValueError):
        pass
    return np.array([_capital(v, where(row)) for row, v in enumerate(values)], np.float64)


def _capital(value: Any, where: str) -> float:
    try:
        capital = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: initial_capital {value!r} is not a number.") from None
    if not math.isfinite(capital) or capital <= 0:
        raise ValidationError(f"{where}: initial_capital must be a positive number, got {value!r}.")
    return capital


def _metric_block(metrics: list, where: Callable[[int], str]
                  ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(float64 (rows, len(METRICS)), extra metric columns) of the results' metrics dicts."""
    n = len(metrics)
    try:
        values = list(chain.from_iterable(map(_METRIC_GETTER, metrics)))
        if not {float, int}.issuperset(map(type, values)):
            raise TypeError("not only Python numbers")
        block = np.array(values, np.float64)
    except (KeyError, TypeError, ValueError):  # checked row by row: the error names the result
        block = np.array([_metrics_row(m, where(row)) for row, m in enumerate(metrics)],
                         np.float64)
    extra: dict[str, np.ndarray] = {}
    for row in [row for row, m in enumerate(metrics) if len(m) > len(METRICS)]:
        for name, value in metrics[row].items():
            if name in _METRIC_SET:
                continue
            if not isinstance(name, str) or not name.isidentifier() or not _is_number(value):
                raise ValidationError(f"{where(row)}: extra metric {name!r}={value!r} must be a "
                                      "numeric value under an identifier name.")
            extra.setdefault(name, np.full(n, np.nan))[row] = float(value)
    return block.reshape(n, len(METRICS)), extra


def _metrics_row(metrics: Any, where: str) -> list[float]:
    if not isinstance(metrics, dict):
        raise ValidationError(f"{where}: metrics must be a dict of metric name -> number.")
    missing = [name for name in METRICS if name not in metrics]
    if missing:
        raise ValidationError(f"{where}: metrics missing {missing}; the engine computes every "
                              f"name in core.types.METRIC_NAMES (NaN where undefined).")
    bad = {name: metrics[name] for name in METRICS if not _is_number(metrics[name])}
    if bad:
        raise ValidationError(f"{where}: metrics must be numbers (NaN allowed), got {bad}.")
    return [float(metrics[name]) for name in METRICS]


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def _attach_result_trades(data: SegmentData, logs: list, where: Callable[[int], str]) -> None:
    """Every result's trade log, joined and checked in one pass (row by row when that fails)."""
    frames, owners = [], []
    for row, log in enumerate(logs):
        if log is None:
            continue
        if not isinstance(log, pd.DataFrame):
            raise ValidationError(f"{where(row)}: trades must be a DataFrame with columns "
                                  f"{list(TRADE_COLUMNS)}, got {type(log).__name__}.")
        if len(log):
            _check_trade_columns(log, where(row))
            frames.append(log)
            owners.append(row)
    if not frames:
        return
    lengths = np.zeros(data.rows, np.int64)
    lengths[owners] = [len(frame) for frame in frames]
    try:
        blocks = _trade_block(pd.concat(frames, ignore_index=True), "trades")
    except ValidationError:  # name the result at fault, or join logs that only clash together
        parts = [_trade_block(frame, where(row)) for row, frame in zip(owners, frames)]
        blocks = tuple(np.asfortranarray(np.concatenate(part)) for part in zip(*parts))
    data.tr_offsets = _offsets(lengths)
    data.tr_times, data.tr_floats, data.tr_ints = blocks


def _attach_result_curves(data: SegmentData, equities: list, where: Callable[[int], str]
                          ) -> None:
    """Every result's equity curve, checked, laid out and packed (after the trade logs)."""
    if all(equity is None for equity in equities):
        return
    known_dates: dict[int, tuple] = {}
    attach_curves(data, [None if equity is None else curve_arrays(equity, where(row), known_dates)
                         for row, equity in enumerate(equities)])


def _offsets(lengths: np.ndarray) -> np.ndarray:
    """``[0, l0, l0 + l1, ...]``: where each row's ragged part starts (and the end)."""
    out = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=out[1:])
    return out


# --------------------------------------------------------------------------------------------
# Trade logs
# --------------------------------------------------------------------------------------------
def _check_trade_columns(trades: pd.DataFrame, where: str) -> None:
    present = set(trades.columns)
    missing = [c for c in TRADE_COLUMNS if c not in present]
    if missing:
        raise ValidationError(f"{where}: trades miss columns {missing}; expected "
                              f"{list(TRADE_COLUMNS)}.")


def _trade_block(trades: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times int64 (k,2), floats float64 (k,5), ints int32 (k,2)) of a trade log.

    The blocks are column-major: each column is filled and later compressed chunk by chunk
    without a strided copy.
    """
    _check_trade_columns(trades, where)
    k = len(trades)
    times = np.empty((k, 2), np.int64, order="F")
    for j, column in enumerate(TRADE_TIME_COLUMNS):
        times[:, j] = _dates_ns(trades[column], f"trades.{column}", where)
    floats = np.empty((k, len(TRADE_FLOAT_COLUMNS)), np.float64, order="F")
    try:
        for j, column in enumerate(TRADE_FLOAT_COLUMNS):
            floats[:, j] = trades[column].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: trade prices, units, pnl and return must be numbers.") \
            from None
    ints = np.empty((k, 2), np.int32, order="F")
    ints[:, 0] = _bars_held(trades["bars_held"], where)
    ints[:, 1] = _reason_codes(trades["exit_reason"], where)
    return times, floats, ints


def _bars_held(column: pd.Series, where: str) -> np.ndarray:
    """Whole non-negative bar counts that fit an int32."""
    try:
        bars = column.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        bars = np.array([np.nan])
    if not (np.isfinite(bars) & (bars == np.round(bars)) & (bars >= 0) & (bars < 2**31)).all():
        raise ValidationError(f"{where}: trades.bars_held must be whole non-negative numbers.")
    return bars


def _dates_ns(column: pd.Series, what: str, where: str) -> np.ndarray:
    """int64 ns of a date column (aware dates as their UTC instant), every row a date."""
    if column.dtype.kind != "M" or getattr(column.dtype, "tz", None) is not None:
        try:
            column = pd.to_datetime(column)
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: {what} must hold dates.") from None
        if column.dt.tz is not None:
            column = column.dt.tz_convert("UTC").dt.tz_localize(None)
    values = column.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if (values == _NAT).any():
        row = int(np.flatnonzero(values == _NAT)[0])
        raise ValidationError(f"{where}: {what} is missing (NaT) in row {row}; every row needs "
                              "its dates.")
    return values


def _reason_codes(column: pd.Series, where: str) -> np.ndarray:
    if column.dtype.kind in "iu":
        codes = column.to_numpy(dtype=np.int64)
    else:
        found, names = pd.factorize(column, use_na_sentinel=False)  # vectorised, few names
        lookup = np.array([_REASON_CODE.get(v, -1) if isinstance(v, str) else -1
                           for v in names], np.int64)
        codes = lookup[found]
        if (codes < 0).any():
            bad = sorted({str(v) for v, c in zip(names, lookup) if c < 0})
            raise ValidationError(f"{where}: unknown trades.exit_reason {bad[:5]}; use one of "
                                  f"{list(EXIT_REASONS)}.")
    if ((codes < 0) | (codes >= len(EXIT_REASONS))).any():
        raise ValidationError(f"{where}: trades.exit_reason codes must be 0..{len(EXIT_REASONS)-1}.")
    return codes.astype(np.int32)


# --------------------------------------------------------------------------------------------
# Batch tables (run_many output)
# --------------------------------------------------------------------------------------------
def encode_batch(batch: BatchResult | pd.DataFrame, created_at_ns: int,
                 default_source: str = "demo") -> SegmentData:
    """Validate and encode a batch table (and its trades and curves), vectorised."""
    table = batch.table if isinstance(batch, BatchResult) else batch
    if not isinstance(table, pd.DataFrame):
        raise ValidationError(f"A batch must be a DataFrame or BatchResult, got "
                              f"{type(table).__name__}.")
    n = len(table)
    required = ["symbol", "strategy", "params_json", "exit_json", "start", "end", *METRICS]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise ValidationError(f"The batch table misses columns {missing}; it needs the columns "
                              "of run_many's table (see core.types.BatchResult).")
    codes = np.empty((n, len(CODE_KINDS)), np.int32)
    vocab: dict[str, list] = {}
    codes[:, 0], vocab["symbol"] = _factorize(table["symbol"], "symbol")
    for symbol in vocab["symbol"]:
        _keys.validate_symbol(symbol)
    codes[:, 1], vocab["strategy"] = _factorize(table["strategy"], "strategy")
    for strategy in vocab["strategy"]:
        _keys.check_strategy(strategy)
    codes[:, 2], vocab["params"] = _hashed_codes(table, "params_json", "params_hash",
                                                 codes[:, 1], vocab["strategy"])
    codes[:, 3], vocab["exit_rule"] = _hashed_codes(table, "exit_json", "exit_hash", None, None)
    for kind, column in _TABLE_TEXT.items():
        if column in table.columns:
            codes[:, _KIND_POS[kind]], vocab[kind] = _factorize(table[column], column)
        else:
            codes[:, _KIND_POS[kind]] = 0
            vocab[kind] = ["{}" if kind in ("costs", "settings") else ""]
    times = np.empty((n, 3), np.int64)
    times[:, 0] = _dates_ns(table["start"], "start", "Batch")
    times[:, 1] = _dates_ns(table["end"], "end", "Batch")
    times[:, 2] = created_at_ns
    if (times[:, 1] < times[:, 0]).any():
        row = int(np.argmax(times[:, 1] < times[:, 0]))
        raise ValidationError(f"Batch row {row}: end is before start.")
    param_names = _table_param_columns(table, vocab["strategy"])
    float_columns = [*FLOAT_LEAD, *METRICS, *param_names]
    floats = np.empty((n, len(float_columns)), np.float64, order="F")  # filled by column
    floats[:, 0] = _table_capital(table)
    for j, column in enumerate(float_columns[1:], start=1):
        floats[:, j] = (_numeric(table[column], column) if column in table.columns
                        else np.nan)  # a lead column older tables lack
    codes[:, _KIND_POS["scope"]], vocab["scope"] = _table_scopes(table, floats[:, 0],
                                                                default_source)
    data = SegmentData(rows=n, vocab=vocab, codes=codes, times=times,
                       float_columns=float_columns, floats=floats, param_columns=param_names)
    if isinstance(batch, BatchResult):
        if batch.trades is not None and len(batch.trades):
            _attach_batch_trades(data, batch.trades)
        if batch.curves is not None:
            attach_batch_curves(data, batch.curves)  # after the trades: the codec reads them
    return data


def _table_scopes(table: pd.DataFrame, capital: np.ndarray, default_source: str
                  ) -> tuple[np.ndarray, list]:
    """Codes into the (json, hash) scopes of a batch table's rows, each distinct one checked."""
    n = len(table)

    def texts(column: str, default: str) -> tuple[np.ndarray, list[str]]:
        if column in table.columns:
            return _factorize(table[column], column)
        return np.zeros(n, np.int32), [default]

    parts = [texts("source", ""), texts("window_json", '"full"'), texts("costs_json", "{}"),
             texts("settings_json", "{}")]
    capital_codes, capitals = pd.factorize(capital)
    key = np.stack([p[0] for p in parts] + [capital_codes.astype(np.int32)], axis=1)
    distinct, inverse = np.unique(key, axis=0, return_inverse=True)
    forms = []
    for source, window, costs, settings, cap in distinct.tolist():
        values = [parts[0][1][source] or default_source,
                  *(_load_json_text(parts[k][1][code], what) for k, code, what in
                    ((1, window, "window_json"), (2, costs, "costs_json"),
                     (3, settings, "settings_json")))]
        try:
            forms.append(_scope_form((*values[:3], float(capitals[cap]), values[3])))
        except ValidationError as exc:
            raise type(exc)(f"Batch scope: {exc}") from None
    remap, vocab = _vocab_codes(np.arange(len(forms)), forms)
    return remap[inverse.reshape(-1)], vocab


def _load_json_text(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise ValidationError(f"Batch column {what} holds {text[:80]!r}, which is not JSON.") \
            from None


def _factorize(column: pd.Series, what: str) -> tuple[np.ndarray, list[str]]:
    """(int32 code of each row, distinct texts in first-seen order) of a text column."""
    codes, uniques = pd.factorize(column, sort=False)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise ValidationError(f"Batch row {row}: {what} is missing.")
    values = uniques.tolist()
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise ValidationError(f"Batch column {what} must hold strings, got {bad[:3]!r}.")
    return codes.astype(np.int32), values


def _hashed_codes(table: pd.DataFrame, json_column: str, hash_column: str,
                  strategy_codes: np.ndarray | None, strategies: list | None
                  ) -> tuple[np.ndarray, list]:
    """Codes into (json, hash) pairs; hashes taken from the table when given, checked on a
    sample. Params are per strategy, so their vocabulary is keyed on (strategy, json)."""
    text_codes, texts = _factorize(table[json_column], json_column)
    codes, count = text_codes, len(texts)
    if strategies is not None and len(strategies) > 1:
        codes, pairs = pd.factorize(strategy_codes.astype(np.int64) * count + text_codes)
        count = len(pairs)
    first = np.unique(codes, return_index=True)[1]  # each code's first row
    unique_json = [texts[c] for c in text_codes[first].tolist()]
    if hash_column in table.columns:
        hash_codes, hashes = _factorize(table[hash_column], hash_column)
        if (hash_codes[first][codes] != hash_codes).any():
            raise ValidationError(f"Batch column {hash_column} disagrees with {json_column}: the "
                                  "same configuration has different hashes.")
        unique_hash = [hashes[c] for c in hash_codes[first].tolist()]
        check = range(0, count, max(1, count // _SAMPLE_CHECKS))
    else:
        unique_hash = [""] * count
        check = range(count)
    for u in check:
        if strategies is None:
            canon_json, canon_hash = _keys.exit_key(unique_json[u])
        else:
            canon_json, canon_hash = _keys.params_key(strategies[strategy_codes[first[u]]],
                                                      unique_json[u])
        if unique_hash[u] == "":
            unique_json[u], unique_hash[u] = canon_json, canon_hash
        elif canon_hash != unique_hash[u]:
            raise ValidationError(f"Batch {json_column} {unique_json[u][:80]!r} is not canonical "
                                  f"(hash {unique_hash[u]} != {canon_hash}); store the engine's "
                                  "canonical params and exit rules.")
    return codes.astype(np.int32), list(zip(unique_json, unique_hash))


def _table_capital(table: pd.DataFrame) -> np.ndarray:
    if "initial_capital" not in table.columns:
        return np.full(len(table), 100_000.0)
    capital = _numeric(table["initial_capital"], "initial_capital")
    if not (np.isfinite(capital) & (capital > 0)).all():
        raise ValidationError("Batch column initial_capital must be positive numbers.")
    return capital


def _numeric(column: pd.Series, what: str) -> np.ndarray:
    try:
        return column.to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError):
        raise ValidationError(f"Batch column {what} must be numeric (NaN allowed).") from None


def _table_param_columns(table: pd.DataFrame, strategies: list[str]) -> dict[str, str]:
    names: dict[str, str] = {}
    for strategy in strategies:
        expected = _keys.param_column_names(strategy)
        missing = [c for c in expected if c not in table.columns]
        if missing:
            raise ValidationError(f"The batch table misses param columns {missing} of strategy "
                                  f"{strategy!r}.")
        names.update(expected)
    return names


def _attach_batch_trades(data: SegmentData, trades: pd.DataFrame) -> None:
    if "row" not in trades.columns:
        raise ValidationError("BatchResult.trades needs a 'row' column (the table row of each "
                              "trade).")
    rows = trades["row"].to_numpy()
    if rows.dtype.kind not in "iu" or ((rows < 0) | (rows >= data.rows)).any():
        raise ValidationError(f"BatchResult.trades.row must be table rows 0..{data.rows - 1}.")
    if len(rows) > 1 and (np.diff(rows) < 0).any():
        raise ValidationError("BatchResult.trades must be sorted by row.")
    data.tr_times, data.tr_floats, data.tr_ints = _trade_block(trades, "BatchResult.trades")
    data.tr_offsets = _offsets(np.bincount(rows, minlength=data.rows))

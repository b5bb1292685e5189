"""Turn engine output (result objects, a batch table, a BatchResult) into one columnar segment.

Everything is validated here, before a byte is written (guarantee 4: bad input never damages the
store). Result lists are encoded with one light pass per result; batch tables are encoded with
vectorised pandas/numpy only (no per-row Python).
"""
from __future__ import annotations

import gc
import math
import operator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from core.canonical import canonical_json, hash_of_json
from core.errors import ValidationError
from core.store import _keys
from core.store._curves import attach_batch_curves, attach_curves, curve_arrays
from core.store._format import (CODE_KINDS, FLOAT_LEAD, METRICS,
                                TRADE_FLOAT_COLUMNS, TRADE_TIME_COLUMNS)
from core.types import EXIT_REASONS, TRADE_COLUMNS, BacktestResult, BatchResult

_NAT = np.iinfo(np.int64).min
_REASON_CODE = {name: code for code, name in enumerate(EXIT_REASONS)}
_KIND_POS = {kind: pos for pos, kind in enumerate(CODE_KINDS)}
_TABLE_TEXT = {"costs": "costs_json", "settings": "settings_json",
               "engine_version": "engine_version", "data_fingerprint": "data_fingerprint"}
_TABLE_META = {"symbol", "strategy", "params_json", "params_hash", "exit_json", "exit_hash",
               "start", "end", "initial_capital", "costs_json", "settings_json",
               "engine_version", "data_fingerprint", "row"}
_SAMPLE_CHECKS = 16


@dataclass
class SegmentData:
    """One segment, columnar, ready to write (and what a compaction merges)."""

    rows: int
    vocab: dict[str, list]  # kind -> values (hashed kinds: (json, hash) pairs)
    codes: np.ndarray  # int32 (rows, len(CODE_KINDS))
    times: np.ndarray  # int64 ns (rows, 3): start, end, created_at
    float_columns: list[str]  # initial_capital, metrics..., param columns...
    floats: np.ndarray  # float64 (rows, len(float_columns))
    param_columns: dict[str, str] = field(default_factory=dict)  # column -> bare param name
    eq_offsets: np.ndarray | None = None  # int64 (rows + 1): values of row i at [o[i], o[i+1])
    eq_date_starts: np.ndarray | None = None  # int64 (rows): where row i's dates start ...
    eq_calendar: np.ndarray | None = None  # int64 ns: ... in these distinct date arrays
    eq_values: np.ndarray | None = None  # float64, every curve (format 1; before packing)
    eq_layout: np.ndarray | None = None  # int64 (rows, 3): codec, runs, steps (_curvecodec)
    eq_runs: np.ndarray | None = None  # int64 (runs, 2): signed length, anchor bits
    eq_steps: np.ndarray | None = None  # int64: price-grid step k and residual ULPs, fused
    eq_plain: np.ndarray | None = None  # float64: values of curves kept plain
    tr_offsets: np.ndarray | None = None  # int64 (rows + 1)
    tr_times: np.ndarray | None = None  # int64 ns (trades, 2)
    tr_floats: np.ndarray | None = None  # float64 (trades, 5)
    tr_ints: np.ndarray | None = None  # int32 (trades, 2)
    bids: np.ndarray | None = None  # int64, only for compacted segments


class _Vocab:
    """Distinct values of one key kind in first-seen order, value -> code."""

    __slots__ = ("codes", "values")

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list = []

    def code(self, value: Any) -> int:
        found = self.codes.get(value)
        if found is None:
            found = self.codes[value] = len(self.values)
            self.values.append(value)
        return found


# --------------------------------------------------------------------------------------------
# Result objects
# --------------------------------------------------------------------------------------------
def encode_results(results: list, created_at_ns: int, memo: "KeyMemo | None" = None
                   ) -> SegmentData:
    """Validate and encode a list of ``BacktestResult`` (one light pass, memoised keys).

    Metrics-only lists take a columnar fast path; any other list, and any list the fast path
    rejects, goes through the per-result encoder (which names the offending result).
    """
    memo = memo or KeyMemo()
    fast = _encode_metrics_only(results, created_at_ns, memo)
    if fast is not None:
        return fast
    encoder = _ResultsEncoder(len(results), created_at_ns, memo)
    for i, result in enumerate(results):
        where = f"result #{i}"
        try:
            encoder.add(i, result, where)
        except ValidationError as exc:
            text, label = str(exc), _label(i, result)
            text = label + text[len(where):] if text.startswith(where) else f"{label}: {text}"
            raise type(exc)(text) from None
    return encoder.finish()


_METRIC_GETTER = operator.itemgetter(*METRICS)


def _encode_metrics_only(results: list, created_at_ns: int, memo: "KeyMemo"
                         ) -> SegmentData | None:
    """Columnar encoding of results without curves or trades, or None to take the slow path.

    Attributes are gathered column by column; each distinct key value (by identity for dicts)
    is validated and canonicalised once. Anything unusual (extra metrics, a curve, a bad
    value) returns None: the per-result encoder then stores it or raises the precise error.
    """
    n = len(results)
    if n < 64 or any(type(r) is not BacktestResult or r.equity is not None or
                     (r.trades is not None and (not isinstance(r.trades, pd.DataFrame) or
                                                len(r.trades))) for r in results):
        return None
    try:
        return _metrics_only_segment(results, n, created_at_ns, memo)
    except Exception:  # noqa: BLE001 - the per-result path re-validates and names the culprit
        return None


def _metrics_only_segment(results: list, n: int, created_at_ns: int, memo: "KeyMemo"
                          ) -> SegmentData | None:
    metrics = [r.metrics for r in results]
    if any(type(m) is not dict or len(m) != len(METRICS) for m in metrics):
        return None
    floats_metrics = np.fromiter(chain.from_iterable(map(_METRIC_GETTER, metrics)), np.float64,
                                 n * len(METRICS)).reshape(n, len(METRICS))
    capital = np.array([r.initial_capital for r in results], np.float64)
    if not (np.isfinite(capital) & (capital > 0)).all():
        return None
    codes = np.empty((n, len(CODE_KINDS)), np.int32)
    vocabs: dict[str, _Vocab] = {}
    symbols = [r.symbol for r in results]
    codes[:, 0], vocabs["symbol"] = _distinct_codes(symbols, symbols, memo.symbol)
    strategies = [r.strategy for r in results]
    codes[:, 1], vocabs["strategy"] = _distinct_codes(strategies, strategies, memo.strategy)
    strategy_names = vocabs["strategy"].values
    row_strategy = codes[:, 1]
    params = [r.params for r in results]
    if len(strategy_names) == 1:
        raw, distinct = _identity_codes(params)
        samples = [(0, p) for p in distinct]
        per_key = memo.params_many(strategy_names[0], distinct, "")
    else:
        raw, samples = _raw_codes([(s, id(p)) for s, p in zip(row_strategy.tolist(), params)],
                                  list(zip(row_strategy.tolist(), params)))
        per_key = [memo.params(strategy_names[strategy], value, "")
                   for strategy, value in samples]
    vocabs["params"] = _Vocab()
    remap = np.array([vocabs["params"].code((j, h)) for j, h, _ in per_key], np.int64)
    codes[:, 2] = remap[raw]
    param_values: dict[str, np.ndarray] = {}
    param_names: dict[str, str] = {}
    for (strategy, _), (_, _, columns) in zip(samples, per_key):
        for column in columns:
            if column not in param_names:
                bare = memo.bare_names[strategy_names[strategy]]
                param_names[column] = bare.get(column, column)
                param_values[column] = np.array([c.get(column, np.nan) for _, _, c in per_key],
                                                np.float64)[raw]
    codes[:, 3], vocabs["exit_rule"] = _distinct_objects(
        [r.exit_rule for r in results], lambda v: memo.exit(v, ""))
    for pos, kind in ((4, "costs"), (5, "settings")):
        codes[:, pos], vocabs[kind] = _distinct_small_dicts(
            [getattr(r, kind) for r in results], lambda v, k=kind: memo.json(v, k, ""))
    for pos, kind in ((6, "engine_version"), (7, "data_fingerprint")):
        values = [getattr(r, kind) for r in results]
        codes[:, pos], vocabs[kind] = _distinct_codes(values, values,
                                                      lambda v, k=kind: _text(v, k, ""))
    times = np.empty((n, 3), np.int64)
    for j, what in enumerate(("start", "end")):
        times[:, j] = _stamps_ns([getattr(r, what) for r in results], what)
    times[:, 2] = created_at_ns
    if (times[:, 1] < times[:, 0]).any():
        return None
    columns = [*FLOAT_LEAD, *METRICS, *param_values]
    floats = np.column_stack([capital, floats_metrics, *param_values.values()])
    return SegmentData(rows=n, vocab=_vocab_lists(vocabs), codes=codes, times=times,
                       float_columns=columns, floats=np.ascontiguousarray(floats),
                       param_columns=param_names)


def _raw_codes(keys: list, values: list) -> tuple[np.ndarray, list]:
    """Codes of distinct ``keys`` in first-seen order, and one value per distinct key."""
    samples = dict(zip(keys, values))
    order = {key: j for j, key in enumerate(samples)}
    return np.fromiter(map(order.__getitem__, keys), np.int64, len(keys)), list(samples.values())


_NS = operator.attrgetter("value")


def _stamps_ns(values: list, what: str) -> np.ndarray:
    """int64 ns of start or end dates: Timestamps (naive, or aware as UTC) in one pass, any
    other form per value."""
    if {pd.Timestamp}.issuperset(map(type, values)):  # naive or aware: .value is UTC ns
        return np.fromiter(map(_NS, values), np.int64, len(values))
    stamps, vocab = _distinct_objects(values, lambda v: _timestamp_ns(v, what, ""))
    return np.array(vocab.values, np.int64)[stamps]


def _identity_codes(values: list) -> tuple[np.ndarray, list]:
    """Codes of distinct objects (by identity) in first-seen order, and each distinct object.

    Vectorised over ``id``s (the objects are alive, so ids are unique): a batch's rows often
    hold their own dict or Timestamp objects, and a dict per row costs ~1 us per key here
    instead of a Python tuple and two dict operations.
    """
    ids = np.fromiter(map(id, values), np.int64, len(values))
    _, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(len(order), np.int64)
    rank[order] = np.arange(len(order))
    return rank[inverse.reshape(-1)], [values[i] for i in first[order].tolist()]


def _one_object_codes(values: list, canon) -> tuple[np.ndarray, "_Vocab"] | None:
    """Codes of values that are all the first object (one C-level identity pass and one
    ``canon`` call: a sweep's symbol, strategy, exit rule and engine version), else None."""
    if values and all(map(operator.is_, values, repeat(values[0]))):
        vocab = _Vocab()
        vocab.code(canon(values[0]))
        return np.zeros(len(values), np.int32), vocab
    return None


def _distinct_objects(values: list, canon) -> tuple[np.ndarray, "_Vocab"]:
    """``_distinct_codes`` keyed by object identity (dicts, lists, Timestamps)."""
    shared = _one_object_codes(values, canon)
    if shared is not None:
        return shared
    raw, samples = _identity_codes(values)
    vocab = _Vocab()
    remap = np.array([vocab.code(canon(value)) for value in samples], np.int64)
    return remap[raw].astype(np.int32), vocab


def _distinct_small_dicts(values: list, canon) -> tuple[np.ndarray, "_Vocab"]:
    """Codes of small flat dicts that are often equal but distinct objects (a costs dict per
    result), ``canon`` run once per distinct value.

    The common case - every dict equal to the first, holding only int, float and str values,
    for which equal means equal canonical JSON - costs one C-level ``count`` and no object
    per row. Otherwise dicts are grouped by their items and value types (``True == 1`` but
    they are stored differently); unhashable values (lists) and non-dicts, by repr.
    """
    first = values[0] if values else None
    if type(first) is dict and values.count(first) == len(values) and \
            {dict}.issuperset(map(type, values)) and PLAIN_VALUES.issuperset(
                map(type, chain.from_iterable(map(dict.values, values)))):
        vocab = _Vocab()
        vocab.code(canon(first))
        return np.zeros(len(values), np.int32), vocab
    try:
        keys = [(tuple(value.items()), tuple(map(type, value.values()))) for value in values]
        raw, distinct = _raw_codes(keys, values)
    except (AttributeError, TypeError):
        by_object, samples = _identity_codes(values)
        by_repr, distinct = _raw_codes(list(map(repr, samples)), samples)
        raw = by_repr[by_object]
    vocab = _Vocab()
    remap = np.array([vocab.code(canon(value)) for value in distinct], np.int64)
    return remap[raw].astype(np.int32), vocab


#: Value types whose equal values always canonicalise alike: ``14 == 14.0`` both become 14,
#: ``-0.0 == 0.0`` both 0, equal strings are equal. ``True == 1`` (and numpy scalars,
#: ``Decimal``) is why every other type is compared some other way.
PLAIN_VALUES = frozenset((int, float, str))


def plain_dict_values(dicts: list | tuple) -> tuple[tuple, list[tuple]] | None:
    """(names, each dict's values in that name order) when every item is a non-empty dict
    holding the same text names and only ``PLAIN_VALUES``, else None.

    Equal value tuples of such dicts canonicalise alike, so a memo keyed on (names, values)
    stands in for a ``repr`` or a canonicalisation per dict: one C-level ``itemgetter`` call
    per dict, whatever each dict's key order.
    """
    first = dicts[0] if len(dicts) else None
    if not (type(first) is dict and first and {dict}.issuperset(map(type, dicts))):
        return None
    names = tuple(first)
    if not ({str}.issuperset(map(type, names)) and {len(names)}.issuperset(map(len, dicts))):
        return None
    try:
        values = list(map(_values_getter(names), dicts))
    except KeyError:  # the dicts hold different names
        return None
    if not PLAIN_VALUES.issuperset(map(type, chain.from_iterable(values))):
        return None
    return names, values


def _values_getter(names: tuple):
    """A callable returning a dict's values for ``names`` as a tuple (also for one name)."""
    return operator.itemgetter(*names) if len(names) > 1 else operator.itemgetter(*names * 2)


def _distinct_codes(keys: list, values: list, canon) -> tuple[np.ndarray, "_Vocab"]:
    """Codes of ``values`` in the vocabulary of their canonical forms, ``canon`` called once per
    distinct key (keys are the values themselves, or ids for unhashable dicts)."""
    shared = _one_object_codes(values, canon)
    if shared is not None:
        return shared
    raw, samples = _raw_codes(keys, values)
    vocab = _Vocab()
    remap = np.array([vocab.code(canon(value)) for value in samples], np.int64)
    return remap[raw].astype(np.int32), vocab


class _ResultsEncoder:
    """Columnar buffers filled one result at a time."""

    def __init__(self, n: int, created_at_ns: int, memo: "KeyMemo") -> None:
        self.n = n
        self.vocabs = {kind: _Vocab() for kind in CODE_KINDS}
        self.codes = np.empty((n, len(CODE_KINDS)), np.int32)
        self.times = np.empty((n, 3), np.int64)
        self.times[:, 2] = created_at_ns
        self.metrics = np.empty((n, len(METRICS)), np.float64)
        self.capital = np.empty(n, np.float64)
        self.extra_metrics: dict[str, np.ndarray] = {}
        self.param_values: dict[str, np.ndarray] = {}
        self.param_names: dict[str, str] = {}
        self.curves = _Ragged(n)
        self.trades = _Ragged(n)
        self.memo = memo
        self.trade_columns: list[list] = []  # per trade log: its TRADE_COLUMNS arrays
        self.known_dates: dict[int, tuple] = {}  # id(DatetimeIndex) -> (index, dates ns)

    def add(self, i: int, result: Any, where: str) -> None:
        """Validate one result and write its key codes, dates, metrics and ragged parts."""
        if not isinstance(result, BacktestResult):
            raise ValidationError(f"{where}: expected a core.types.BacktestResult, got "
                                  f"{type(result).__name__}.")
        memo, vocabs, row = self.memo, self.vocabs, self.codes[i]
        symbol = memo.symbol(result.symbol)
        strategy = memo.strategy(result.strategy)
        params_json, params_hash, columns = memo.params(strategy, result.params, where)
        row[0] = vocabs["symbol"].code(symbol)
        row[1] = vocabs["strategy"].code(strategy)
        row[2] = vocabs["params"].code((params_json, params_hash))
        row[3] = vocabs["exit_rule"].code(memo.exit(result.exit_rule, where))
        row[4] = vocabs["costs"].code(memo.json(result.costs, "costs", where))
        row[5] = vocabs["settings"].code(memo.json(result.settings, "settings", where))
        row[6] = vocabs["engine_version"].code(_text(result.engine_version, "engine_version",
                                                     where))
        row[7] = vocabs["data_fingerprint"].code(_text(result.data_fingerprint,
                                                       "data_fingerprint", where))
        self.times[i, 0] = _timestamp_ns(result.start, "start", where)
        self.times[i, 1] = _timestamp_ns(result.end, "end", where)
        if self.times[i, 1] < self.times[i, 0]:
            raise ValidationError(f"{where}: end {result.end} is before start {result.start}.")
        self.capital[i] = _capital(result.initial_capital, where)
        _metrics_row(result.metrics, self.metrics[i], self.extra_metrics, i, self.n, where)
        for column, value in columns.items():
            if column not in self.param_values:
                self.param_values[column] = np.full(self.n, np.nan)
                self.param_names[column] = memo.bare_names[strategy].get(column, column)
            self.param_values[column][i] = value
        self.curves.add(i, curve_arrays(result.equity, where, self.known_dates))
        trades = _checked_trades(result.trades, where)
        if trades is not None:
            self.trades.lengths[i] = len(trades[0])
            self.trade_columns.append(trades)

    def finish(self) -> SegmentData:
        columns = [*FLOAT_LEAD, *METRICS, *self.extra_metrics, *self.param_values]
        floats = np.column_stack([self.capital, self.metrics, *self.extra_metrics.values(),
                                  *self.param_values.values()]) if self.n else \
            np.empty((0, len(columns)))
        data = SegmentData(rows=self.n, vocab=_vocab_lists(self.vocabs), codes=self.codes,
                           times=self.times, float_columns=columns,
                           floats=np.ascontiguousarray(floats), param_columns=self.param_names)
        if self.trade_columns:
            self._attach_trades(data)
        attach_curves(data, self.curves)  # after the trades: the curve codec reads them
        return data

    def _attach_trades(self, data: SegmentData) -> None:
        """Every trade log in one vectorised pass (column arrays joined, then checked once)."""
        parts = self.trade_columns
        combined = pd.DataFrame({c: _joined([p[j] for p in parts])
                                 for j, c in enumerate(TRADE_COLUMNS)}, copy=False)
        try:
            times, floats, ints = _trade_block(combined, "trades")
        except ValidationError:
            owners = np.flatnonzero(self.trades.lengths)
            for owner, part in zip(owners, parts):  # name the first offending result
                _trade_block(pd.DataFrame(dict(zip(TRADE_COLUMNS, part))), f"result #{owner}")
            raise
        data.tr_offsets = self.trades.offsets()
        data.tr_times, data.tr_floats, data.tr_ints = times, floats, ints


class KeyMemo:
    """Memo of validated symbols, strategies, params and exit rules (pure, deterministic).

    A store handle keeps one across writes: sweeps store the same parameter grid for symbol
    after symbol, so validation runs once per distinct configuration.
    """

    LIMIT = 250_000

    def __init__(self) -> None:
        self._symbols: dict[Any, str] = {}
        self._strategies: dict[Any, str] = {}
        self._params: dict[tuple[str, str], tuple[str, str, dict]] = {}
        self._by_values: dict[tuple[str, tuple], dict[tuple, tuple[str, str, dict]]] = {}
        self._exits: dict[str, tuple[str, str]] = {}
        self._json: dict[str, str] = {}
        self.bare_names: dict[str, dict[str, str]] = {}
        self._canons: dict[str, _keys.ParamsCanon] = {}  # strategy -> per-value canonicaliser
        self.last_columns: dict[str, tuple] = {}  # json column -> (inputs, codes) of last batch

    def symbol(self, symbol: Any) -> str:
        found = self._symbols.get(symbol) if isinstance(symbol, str) else None
        if found is None:
            found = self._symbols[symbol] = _keys.validate_symbol(symbol)
        return found

    def strategy(self, name: Any) -> str:
        found = self._strategies.get(name) if isinstance(name, str) else None
        if found is None:
            found = self._strategies[name] = _keys.check_strategy(name)
            self.bare_names[found] = _keys.param_column_names(found)
        return found

    def trim(self) -> None:
        """Forget everything once the memo grows past LIMIT entries (bounded memory)."""
        held = len(self._params) + len(self._exits) + len(self._json)
        if held + sum(map(len, self._by_values.values())) > self.LIMIT:
            self._params.clear()
            self._exits.clear()
            self._json.clear()
            self._by_values.clear()

    def params(self, strategy: str, params: Any, where: str) -> tuple[str, str, dict]:
        if not isinstance(params, dict):
            raise ValidationError(f"{where}: params must be a dict, got {type(params).__name__}.")
        key = (strategy, repr(params))  # cheap memo key; equal reprs mean equal values
        found = self._params.get(key)
        if found is None:
            found = self._params[key] = self._canonical(strategy, params, where)
        return found

    def params_many(self, strategy: str, values: list, where: str) -> list[tuple[str, str, dict]]:
        """``params`` of many dicts. Plain dicts of one set of names (``plain_dict_values``)
        go through a memo keyed on their values: a C-level ``itemgetter`` call per dict where
        a ``repr`` cost ~2 us on a cold cache. Other dicts: reprs and memo lookups in C-level
        passes; anything that is not a dict: ``params``, which rejects it."""
        if not all(isinstance(v, dict) for v in values):
            return [self.params(strategy, v, where) for v in values]
        plain = plain_dict_values(values)
        if plain is None:
            found = list(map(self._params.get, [(strategy, r) for r in map(repr, values)]))
            for i in [i for i, f in enumerate(found) if f is None]:
                found[i] = self.params(strategy, values[i], where)
            return found
        names, keys = plain
        memo = self._by_values.setdefault((strategy, names), {})
        found = list(map(memo.get, keys))
        for i in [i for i, f in enumerate(found) if f is None]:
            found[i] = memo[keys[i]] = self._canonical(strategy, values[i], where)
        return found

    def _canonical(self, strategy: str, params: dict, where: str) -> tuple[str, str, dict]:
        """(canonical JSON, hash, {column: float}) of a params dict: per value when the
        strategy's canonicaliser can vouch for it, else the registry's way."""
        canon = self._canons.get(strategy)
        if canon is None:
            canon = self._canons[strategy] = _keys.ParamsCanon(strategy)
        return canon.key(params) or self._registry_params(strategy, params, where)

    def _registry_params(self, strategy: str, params: dict, where: str) -> tuple[str, str, dict]:
        """The registry's own validation: the reference path, and the one naming errors."""
        try:
            canonical = _keys.canonical_params(strategy, params)
        except Exception:
            _json_text(params, "params", where)  # a value JSON cannot hold: say so first
            raise
        columns = _keys.strategies().param_columns(strategy, canonical)
        text = canonical_json(canonical)
        return text, hash_of_json(text), {c: float(v) for c, v in columns.items()}

    def exit(self, exit_rule: Any, where: str) -> tuple[str, str]:
        raw = repr(exit_rule)
        found = self._exits.get(raw)
        if found is None:
            _json_text(exit_rule, "exit_rule", where)
            found = self._exits[raw] = _keys.exit_key(exit_rule)
        return found

    def json(self, value: Any, what: str, where: str) -> str:
        """Canonical JSON of a small dict (costs, settings), memoised on its repr."""
        raw = repr(value)
        found = self._json.get(raw)
        if found is None:
            found = self._json[raw] = _json_text(value, what, where)
        return found


def _label(i: int, result: Any) -> str:
    symbol = getattr(result, "symbol", "?")
    strategy = getattr(result, "strategy", "?")
    shown = symbol if not isinstance(symbol, str) or len(symbol) <= 40 else symbol[:40] + "..."
    return f"result #{i} ({shown!r}, {strategy!r})"


def _json_text(value: Any, what: str, where: str) -> str:
    try:
        return canonical_json(value if value is not None else {})
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"{where}: {what} cannot be stored as JSON ({exc}).") from None


def _text(value: Any, what: str, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{where}: {what} must be a string, got {value!r}.")
    return value


def _timestamp_ns(value: Any, what: str, where: str) -> int:
    if type(value) is pd.Timestamp and value.tzinfo is None:
        return value.value  # nanoseconds whatever the unit
    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: {what} {value!r} is not a date.") from None
    if stamp is pd.NaT or pd.isna(stamp):
        raise ValidationError(f"{where}: {what} is missing (NaT); give the backtest's {what} date.")
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert("UTC").tz_localize(None)
    return int(stamp.as_unit("ns").value)


def _capital(value: Any, where: str) -> float:
    try:
        capital = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: initial_capital {value!r} is not a number.") from None
    if not math.isfinite(capital) or capital <= 0:
        raise ValidationError(f"{where}: initial_capital must be a positive number, got {value!r}.")
    return capital


def _metrics_row(metrics: Any, out: np.ndarray, extra: dict[str, np.ndarray], i: int, n: int,
                 where: str) -> None:
    if not isinstance(metrics, dict):
        raise ValidationError(f"{where}: metrics must be a dict of metric name -> number.")
    try:
        out[:] = [metrics[name] for name in METRICS]
    except KeyError:
        missing = [name for name in METRICS if name not in metrics]
        raise ValidationError(f"{where}: metrics missing {missing}; the engine computes every "
                              f"name in core.types.METRIC_NAMES (NaN where undefined).") from None
    except (TypeError, ValueError):
        bad = {k: metrics[k] for k in METRICS if not _is_number(metrics[k])}
        raise ValidationError(f"{where}: metrics must be numbers (NaN allowed), got {bad}.") from None
    if len(metrics) > len(METRICS):
        for name, value in metrics.items():
            if name in METRICS:
                continue
            if not isinstance(name, str) or not name.isidentifier() or not _is_number(value):
                raise ValidationError(f"{where}: extra metric {name!r}={value!r} must be a "
                                      "numeric value under an identifier name.")
            extra.setdefault(name, np.full(n, np.nan))[i] = float(value)


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


class _Ragged:
    """Per-row variable-length arrays gathered for one concatenation at the end."""

    def __init__(self, n: int) -> None:
        self.lengths = np.zeros(n, np.int64)
        self.parts: list[tuple] = []

    def add(self, i: int, arrays: tuple | None) -> None:
        if arrays is not None:
            self.lengths[i] = len(arrays[0])
            self.parts.append(arrays)

    def offsets(self) -> np.ndarray:
        out = np.zeros(len(self.lengths) + 1, np.int64)
        np.cumsum(self.lengths, out=out[1:])
        return out

    def concat(self, position: int) -> np.ndarray:
        return np.concatenate([part[position] for part in self.parts])


def _joined(parts: list) -> Any:
    """One column from many trade logs' arrays.

    pandas extension arrays (datetimes, Arrow strings, categoricals) of one dtype join with
    their own ``_concat_same_type`` (part of the ExtensionArray interface): numpy would first
    convert each small array to an object or numpy array (~25 us per trade log).
    """
    first = parts[0]
    if isinstance(first, np.ndarray):
        return np.concatenate(parts)
    kind, dtype = type(first), first.dtype
    if all(type(p) is kind and p.dtype == dtype for p in parts):
        return kind._concat_same_type(parts)
    return np.concatenate([np.asarray(p) for p in parts])


_TRADE_INDEX = pd.Index(TRADE_COLUMNS)


def _column_arrays(frame: pd.DataFrame, names: tuple[str, ...]) -> list:
    """The arrays of some columns of a small frame, without building pandas' column hash table.

    A DataFrame's first column lookup builds its column index engine (~100 us with string
    columns); the frame's blocks (``_block_arrays``) or, failing that,
    ``DataFrame._get_column_array`` (pandas >= 1.3, no Series per column) are 10-50x faster on
    the 30-row trade logs stored thousands at a time. Public ``iloc`` is the last fallback
    should a pandas release drop both. Missing names raise KeyError.
    """
    if names == TRADE_COLUMNS and frame.columns.equals(_TRADE_INDEX):
        positions = range(len(names))
    else:
        present = frame.columns.to_numpy(dtype=object)
        where = {name: j for j, name in enumerate(present)}
        positions = [where[name] for name in names]
    arrays = _block_arrays(frame, positions)
    if arrays is not None:
        return arrays
    getter = getattr(frame, "_get_column_array", None)
    if getter is None:
        return [frame.iloc[:, i].to_numpy() for i in positions]
    return [getter(i) for i in positions]


def _block_arrays(frame: pd.DataFrame, positions) -> list | None:
    """The arrays of the columns at ``positions``, read from the frame's blocks (or None).

    A trade log is 4 blocks (dates, floats, ints, reasons): rows of a 2-D numpy block are
    views, extension blocks hold one column each; ~3x cheaper than a lookup per column.
    Anything else (tz-aware or timedelta 2-D blocks, a pandas without block managers)
    returns None.
    """
    blocks = getattr(getattr(frame, "_mgr", None), "blocks", None)
    if blocks is None:
        return None
    columns: dict[int, Any] = {}
    for block in blocks:
        values, placed = block.values, block.mgr_locs.as_array.tolist()
        if values.ndim == 1:
            columns[placed[0]] = values
            continue
        if not isinstance(values, np.ndarray):
            if values.dtype.kind != "M" or getattr(values.dtype, "tz", None) is not None:
                return None
            values = np.asarray(values)  # naive datetimes: the datetime64 block itself
        columns.update(zip(placed, values))
    return [columns[i] for i in positions]


def _checked_trades(trades: Any, where: str) -> list | None:
    """The trade log's column arrays (TRADE_COLUMNS order) if it has rows, None when empty.

    Values are checked in bulk when the batch's trade logs are joined.
    """
    if trades is None:
        return None
    if not isinstance(trades, pd.DataFrame):
        raise ValidationError(f"{where}: trades must be a DataFrame with columns "
                              f"{list(TRADE_COLUMNS)}, got {type(trades).__name__}.")
    if len(trades) == 0:
        return None
    try:
        return _column_arrays(trades, TRADE_COLUMNS)
    except KeyError:
        missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
        raise ValidationError(f"{where}: trades miss columns {missing}; expected "
                              f"{list(TRADE_COLUMNS)}.") from None


def _trade_block(trades: pd.DataFrame, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times int64 (k,2), floats float64 (k,5), ints int32 (k,2)) of a trade log.

    The blocks are column-major: each column is filled and later compressed chunk by chunk
    without a strided copy.
    """
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise ValidationError(f"{where}: trades miss columns {missing}; expected "
                              f"{list(TRADE_COLUMNS)}.")
    k = len(trades)
    times = np.empty((k, 2), np.int64, order="F")
    for j, column in enumerate(TRADE_TIME_COLUMNS):
        times[:, j] = _datetime_ns(trades[column], f"trades.{column}", where)
    floats = np.empty((k, len(TRADE_FLOAT_COLUMNS)), np.float64, order="F")
    try:
        for j, column in enumerate(TRADE_FLOAT_COLUMNS):
            floats[:, j] = trades[column].to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: trade prices, units, pnl, return and bars_held must be "
                              "numbers.") from None
    ints = np.empty((k, 2), np.int32, order="F")
    ints[:, 0] = _bars_held(trades["bars_held"], where)
    ints[:, 1] = _reason_codes(trades["exit_reason"], where)
    return times, floats, ints


def _bars_held(column: pd.Series, where: str) -> np.ndarray:
    """Whole non-negative bar counts (an integer column needs only its sign and size checked)."""
    try:
        bars = column.to_numpy(dtype=None if column.dtype.kind in "iu" else np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: trade prices, units, pnl, return and bars_held must be "
                              "numbers.") from None
    whole = bars.dtype.kind in "iu" or (np.isfinite(bars).all() and (bars == np.round(bars)).all())
    if not whole or (bars < 0).any() or (bars > np.iinfo(np.int32).max).any():
        raise ValidationError(f"{where}: trades.bars_held must be whole non-negative numbers.")
    return bars


def _datetime_ns(column: pd.Series, what: str, where: str) -> np.ndarray:
    if column.dtype.kind == "M" and getattr(column.dtype, "tz", None) is None:
        values = column.to_numpy(dtype="datetime64[ns]").view(np.int64)
    else:
        try:
            parsed = pd.to_datetime(column)
        except (TypeError, ValueError):
            raise ValidationError(f"{where}: {what} must hold dates.") from None
        if getattr(parsed.dt, "tz", None) is not None:
            parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
        values = parsed.to_numpy(dtype="datetime64[ns]").view(np.int64)
    if (values == _NAT).any():
        raise ValidationError(f"{where}: {what} has NaN dates; every trade needs its dates.")
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


def _vocab_lists(vocabs: dict[str, _Vocab]) -> dict[str, list]:
    """Each kind's values; hashed kinds as (json, hash) pairs (stored as 2-element arrays)."""
    return {kind: vocab.values for kind, vocab in vocabs.items()}


# --------------------------------------------------------------------------------------------
# Batch tables (run_many output)
# --------------------------------------------------------------------------------------------
def encode_batch(batch: BatchResult | pd.DataFrame, created_at_ns: int,
                 memo: KeyMemo | None = None) -> SegmentData:
    """Validate and encode a batch table (and its trades) with vectorised operations only.

    ``memo`` (the store handle's) remembers the last batch's params and exit-rule columns: a
    sweep stores one parameter grid symbol after symbol, and a column equal to the last one
    (one vectorised comparison) reuses its checked codes and vocabulary.
    """
    table = batch.table if isinstance(batch, BatchResult) else batch
    trades = batch.trades if isinstance(batch, BatchResult) else None
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
    codes[:, 2], vocab["params"] = _remembered_codes(memo, table, "params_json", "params_hash",
                                                     codes[:, 1], vocab["strategy"])
    codes[:, 3], vocab["exit_rule"] = _remembered_codes(memo, table, "exit_json", "exit_hash",
                                                        None, None)
    for kind, column in _TABLE_TEXT.items():
        if column in table.columns:
            codes[:, _KIND_POS[kind]], vocab[kind] = _factorize(table[column], column)
        else:
            codes[:, _KIND_POS[kind]], vocab[kind] = 0, ["{}" if kind in ("costs", "settings")
                                                         else ""]
    times = np.empty((n, 3), np.int64)
    times[:, 0] = _table_dates(table["start"], "start")
    times[:, 1] = _table_dates(table["end"], "end")
    times[:, 2] = created_at_ns
    if (times[:, 1] < times[:, 0]).any():
        row = int(np.argmax(times[:, 1] < times[:, 0]))
        raise ValidationError(f"Batch row {row}: end is before start.")
    param_names = _table_param_columns(table, vocab["strategy"])
    float_columns = [*FLOAT_LEAD, *METRICS, *param_names]
    floats = np.empty((n, len(float_columns)), np.float64, order="F")  # filled by column
    floats[:, 0] = _table_capital(table)
    for j, column in enumerate(float_columns[1:], start=1):
        floats[:, j] = _numeric(table[column], column)
    data = SegmentData(rows=n, vocab=vocab, codes=codes, times=times,
                       float_columns=float_columns, floats=floats, param_columns=param_names)
    if trades is not None and len(trades):
        _attach_batch_trades(data, trades)
    curves = batch.curves if isinstance(batch, BatchResult) else None
    if curves is not None:
        attach_batch_curves(data, curves)  # after the trades: the curve codec reads them
    return data


def _factorize(column: pd.Series, what: str) -> tuple[np.ndarray, list]:
    codes, uniques = _factorized(column)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise ValidationError(f"Batch row {row}: {what} is missing.")
    values = list(uniques)
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise ValidationError(f"Batch column {what} must hold strings, got {bad[:3]!r}.")
    return codes.astype(np.int32), values


def _remembered_codes(memo: KeyMemo | None, table: pd.DataFrame, json_column: str,
                      hash_column: str, strategy_codes: np.ndarray | None,
                      strategies: list | None) -> tuple[np.ndarray, list]:
    """``_hashed_codes``, reused when the columns equal the last batch's (same strategies)."""
    if memo is None:
        return _hashed_codes(table, json_column, hash_column, strategy_codes, strategies)
    inputs = (table[json_column],
              table[hash_column] if hash_column in table.columns else None,
              None if strategy_codes is None else strategy_codes.copy(),
              None if strategies is None else list(strategies))
    last = memo.last_columns.get(json_column)
    if last is not None and _same_inputs(last[0], inputs):
        codes, pairs = last[1]
    else:
        codes, pairs = _hashed_codes(table, json_column, hash_column, strategy_codes, strategies)
        memo.last_columns[json_column] = (inputs, (codes, pairs))
    return codes.copy(), list(pairs)


def _same_inputs(last: tuple, now: tuple) -> bool:
    """Whether two batches' (json, hash, strategy codes, strategies) hold the same values."""
    json_then, hash_then, codes_then, names_then = last
    json_now, hash_now, codes_now, names_now = now
    if names_then != names_now or (hash_then is None) != (hash_now is None):
        return False
    if codes_now is not None and not np.array_equal(codes_then, codes_now):
        return False
    return _same_texts(json_then, json_now) and (hash_now is None
                                                 or _same_texts(hash_then, hash_now))


def _same_texts(then: pd.Series, now: pd.Series) -> bool:
    """Whether two text columns hold the same strings, row by row (no missing values)."""
    if len(then) != len(now):
        return False
    if isinstance(then.array, pd.arrays.ArrowStringArray) and \
            isinstance(now.array, pd.arrays.ArrowStringArray):
        a, b = pa.array(then.array), pa.array(now.array)
        return a.null_count == 0 and b.null_count == 0 and bool(pc.all(pc.equal(a, b)).as_py())
    a, b = np.asarray(then, dtype=object), np.asarray(now, dtype=object)
    return all(isinstance(v, str) for v in b) and bool((a == b).all())


def _hashed_codes(table: pd.DataFrame, json_column: str, hash_column: str,
                  strategy_codes: np.ndarray | None, strategies: list | None
                  ) -> tuple[np.ndarray, list]:
    """Codes into [json, hash] pairs; hashes taken from the table when given, checked on a sample.

    Params are per strategy, so the vocabulary is keyed on (strategy, json) for params.
    """
    text_codes, texts = _factorized(table[json_column])
    if (text_codes < 0).any():
        row = int(np.flatnonzero(text_codes < 0)[0])
        raise ValidationError(f"Batch row {row}: {json_column} is missing.")
    codes, count = text_codes, len(texts)
    if strategy_codes is not None and len(strategies) > 1:  # params are per strategy
        codes, pairs = pd.factorize(strategy_codes.astype(np.int64) * count + codes)
        count = len(pairs)
    first = _first_rows(codes, count)
    unique_json = _texts(texts, text_codes[first])
    if hash_column in table.columns:
        hash_codes, hash_uniques = _factorized(table[hash_column])
        if (hash_codes < 0).any():
            raise ValidationError(f"Batch column {hash_column} has missing hashes.")
        unique_hash = _texts(hash_uniques, hash_codes[first])
        if (hash_codes[first][codes] != hash_codes).any():
            raise ValidationError(f"Batch column {hash_column} disagrees with {json_column}: the "
                                  "same configuration has different hashes.")
        check = range(0, len(first), max(1, len(first) // _SAMPLE_CHECKS))
    else:
        unique_hash = [""] * len(first)
        check = range(len(first))
    for u in check:
        strategy = strategies[strategy_codes[first[u]]] if strategy_codes is not None else None
        canon_json, canon_hash = (_keys.params_key(strategy, unique_json[u]) if strategy
                                  else _keys.exit_key(unique_json[u]))
        if unique_hash[u] == "":
            unique_json[u], unique_hash[u] = canon_json, canon_hash
        elif canon_hash != unique_hash[u]:
            raise ValidationError(f"Batch {json_column} {unique_json[u][:80]!r} is not canonical "
                                  f"(hash {unique_hash[u]} != {canon_hash}); store the engine's "
                                  "canonical params and exit rules.")
    return codes.astype(np.int32), list(zip(unique_json, unique_hash))


def _factorized(column: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """``pd.factorize`` (codes, uniques; -1 for missing), with a fast lane for one repeated text.

    A batch's symbol, strategy, exit rule, costs, settings, engine version and fingerprint
    columns usually hold one value: one vectorised Arrow comparison confirms that ~5x faster
    than hashing every row.
    """
    values = column.array
    if isinstance(values, pd.arrays.ArrowStringArray) and len(values):
        arrow = pa.array(values)
        if arrow.null_count == 0 and pc.all(pc.equal(arrow, arrow[0])).as_py():
            return np.zeros(len(values), np.int64), pd.Index([arrow[0].as_py()], dtype=object)
    return pd.factorize(column, sort=False)


def _texts(uniques: Any, picks: np.ndarray) -> list[str]:
    """Some of factorize's uniques as Python strings (one ``tolist`` for a string column)."""
    chosen = uniques.take(picks)
    if pd.api.types.is_string_dtype(chosen.dtype) and chosen.dtype != object:
        return chosen.tolist()
    return [str(v) for v in np.asarray(chosen, dtype=object)]


def _first_rows(codes: np.ndarray, count: int) -> np.ndarray:
    """The first row of each code 0..count-1 (every code occurs: codes come from factorize)."""
    values, first = np.unique(codes, return_index=True)
    if len(values) != count:
        raise ValidationError("Batch codes do not cover their vocabulary.")
    return first.astype(np.int64)


def _table_dates(column: pd.Series, what: str) -> np.ndarray:
    """int64 ns of a date column (naive datetime64 columns, the engine's, read directly)."""
    if column.dtype.kind == "M" and getattr(column.dtype, "tz", None) is None:
        values = column.to_numpy(dtype="datetime64[ns]").view(np.int64)
        if (values == _NAT).any():
            row = int(np.flatnonzero(values == _NAT)[0])
            raise ValidationError(f"Batch row {row}: {what} is NaN/NaT; give the backtest's "
                                  "dates.")
        return values
    try:
        values = pd.to_datetime(column)
    except (TypeError, ValueError):
        raise ValidationError(f"Batch column {what} must hold dates.") from None
    if values.isna().any():
        row = int(np.flatnonzero(values.isna().to_numpy())[0])
        raise ValidationError(f"Batch row {row}: {what} is NaN/NaT; give the backtest's dates.")
    if getattr(values.dt, "tz", None) is not None:
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    return values.to_numpy(dtype="datetime64[ns]").view(np.int64)


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
    times, floats, ints = _trade_block(trades, "BatchResult.trades")
    data.tr_offsets = np.zeros(data.rows + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=data.rows), out=data.tr_offsets[1:])
    data.tr_times, data.tr_floats, data.tr_ints = times, floats, ints


def encode_any(results: Any, created_at_ns: int, memo: KeyMemo | None = None) -> SegmentData:
    """Dispatch on the input form of ``store_many`` (call it inside ``gc_paused``)."""
    if isinstance(results, (BatchResult, pd.DataFrame)):
        return encode_batch(results, created_at_ns, memo)
    if isinstance(results, BacktestResult):
        results = [results]
    if not isinstance(results, (list, tuple)):
        raise ValidationError("store_many takes a list of BacktestResult, a BatchResult or "
                              f"a batch DataFrame, got {type(results).__name__}.")
    return encode_results(list(results), created_at_ns, memo)


@contextmanager
def gc_paused():
    """Pause Python's cyclic garbage collector while a batch is encoded and written.

    Encoding 10,000 results allocates tens of thousands of small tuples, dicts and memo
    entries (none cyclic); each allocation burst triggers collections that rescan every live
    object - the caller's results included - which cost ~40% of a first batch's encode (and
    ~3 ms of each 2,000-curve batch's write). The collector resumes (if it was enabled) when
    the batch is stored; nothing is leaked.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()



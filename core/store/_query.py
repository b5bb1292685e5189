"""The ``where``/``order_by`` language of ``BacktestStore.query`` — parsed, never eval'd.

Grammar::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | "(" expr ")" | comparison
    comparison := operand ("<" | "<=" | ">" | ">=" | "==" | "=" | "!=") operand
    operand    := column | number | 'quoted text' | "quoted text"

Numeric columns are metrics, ``initial_capital`` and the ``<prefix>_<param>`` param columns (a
bare param name resolves when unambiguous); text columns compare with ``==``/``!=``; dates
(``start``, ``end``, ``created_at``) compare with quoted dates. A comparison with NaN is false.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import QueryError, did_you_mean
from core.store import _keys
from core.store._format import TIME_COLUMNS
from core.store._frames import HASH_COLUMNS, LABEL_COLUMN, TEXT_COLUMNS, label_codes

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?![A-Za-z_]))
  | (?P<string>'[^']*'|"[^"]*")
  | (?P<op><=|>=|==|!=|<|>|=)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not"}
_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
            "==": np.equal, "=": np.equal, "!=": np.not_equal}
MAX_QUERY_LENGTH = 2_000
#: Parentheses and ``not`` nested deeper than this are refused (the parser recurses on them).
MAX_NESTING = 32


@dataclass
class _Token:
    kind: str
    text: str
    pos: int


def tokenize(text: str) -> list[_Token]:
    if not isinstance(text, str):
        raise QueryError(f"where must be text, got {type(text).__name__}.")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"where is {len(text)} characters long; keep it under "
                         f"{MAX_QUERY_LENGTH}.")
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise QueryError(f"Cannot parse where at position {pos}: unexpected "
                             f"{text[pos:pos + 10]!r}. Use comparisons like "
                             "'win_rate >= 0.55' joined by and/or.")
        kind = match.lastgroup
        if kind != "space":
            word = match.group()
            if kind == "name" and word.lower() in _KEYWORDS:
                kind, word = word.lower(), word.lower()
            tokens.append(_Token(kind, word, pos))
        pos = match.end()
    return tokens


class Columns:
    """Resolves column names of a query to full-length arrays of the index."""

    def __init__(self, index, strategies: list[str] | None):
        self.index = index
        self.strategies = strategies or []
        self.vocab = index.vocab
        self._scope_labels: tuple[np.ndarray, list[str]] | None = None

    def names(self) -> list[str]:
        bare = sorted(set(self.index.param_columns.values()))
        return ["backtest_id", *TEXT_COLUMNS, LABEL_COLUMN, *HASH_COLUMNS, *TIME_COLUMNS,
                *self.index.float_columns, *bare]

    def resolve(self, name: str) -> str:
        """Canonical column name (bare param names map to their prefixed column)."""
        if name in TEXT_COLUMNS or name in HASH_COLUMNS or name in TIME_COLUMNS or \
                name in ("backtest_id", LABEL_COLUMN) or name in self.index.float_columns:
            return name
        candidates = [c for c, bare in self.index.param_columns.items() if bare == name]
        if self.strategies and len(candidates) > 1:
            allowed = set()
            for strategy in self.strategies:
                try:
                    allowed |= set(_keys.param_column_names(strategy))
                except Exception:  # noqa: BLE001 - a strategy no longer registered
                    continue
            candidates = [c for c in candidates if c in allowed]
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise QueryError(f"Column {name!r} is ambiguous: it is a parameter of several "
                             f"strategies ({', '.join(candidates)}). Use the prefixed name or "
                             "filter one strategy.")
        raise QueryError(f"Unknown column {name!r}.{did_you_mean(name, self.names())} Valid "
                         f"columns: {', '.join(self.names())}.")

    def kind(self, column: str) -> str:
        if column in TEXT_COLUMNS or column in HASH_COLUMNS or column == LABEL_COLUMN:
            return "text"
        if column in TIME_COLUMNS:
            return "date"
        return "number"

    def values(self, column: str) -> np.ndarray:
        if column == "backtest_id":
            return self.index.bids
        if column in TEXT_COLUMNS:
            return self.index.codes[TEXT_COLUMNS[column]]
        if column in HASH_COLUMNS:
            return self.index.codes[HASH_COLUMNS[column]]
        if column == LABEL_COLUMN:
            remap, _ = self._labels()
            return remap[self.index.codes["scope"]] if len(remap) else self.index.codes["scope"]
        return self.index.column(column)

    def _labels(self) -> tuple[np.ndarray, list[str]]:
        """(label code per scope code, the distinct scope labels)."""
        if self._scope_labels is None:
            self._scope_labels = label_codes(self.vocab.values["scope"])
        return self._scope_labels

    def text_code(self, column: str, value: str) -> int:
        """The code a text column holds for ``value`` (-1: never stored). A scope is named by
        its label or its hash."""
        if column == LABEL_COLUMN:
            remap, labels = self._labels()
            by_hash = self.vocab.lookup("scope", value)
            if by_hash >= 0:
                return int(remap[by_hash])
            return labels.index(value) if value in labels else -1
        kind = TEXT_COLUMNS.get(column) or HASH_COLUMNS[column]
        return self.vocab.lookup(kind, value)

    def sort_key(self, column: str, rows: np.ndarray) -> np.ndarray:
        """Numeric key that orders a column at ``rows`` (text: alphabetical rank)."""
        values = self.values(column)[rows]
        if self.kind(column) != "text":
            return values.astype(np.float64, copy=False)
        if column == LABEL_COLUMN:
            words = self._labels()[1]
        else:
            words = self.vocab.values[TEXT_COLUMNS.get(column) or HASH_COLUMNS[column]]
        words = [w[1] if isinstance(w, tuple) else w for w in words]
        rank = np.empty(len(words), np.float64)
        rank[np.argsort(np.asarray(words, dtype=object), kind="stable")] = np.arange(len(words))
        return rank[values] if len(words) else values.astype(np.float64)


class _Parser:
    def __init__(self, text: str, columns: Columns):
        self.text = text
        self.tokens = tokenize(text)
        self.pos = 0
        self.columns = columns
        self.depth = 0

    def parse(self) -> np.ndarray:
        if not self.tokens:
            raise QueryError("where is empty; write a condition like 'num_trades >= 20'.")
        mask = self._or()
        if self.pos < len(self.tokens):
            token = self.tokens[self.pos]
            raise QueryError(f"Unexpected {token.text!r} at position {token.pos} of where; join "
                             "conditions with 'and' / 'or'.")
        return mask

    def _peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> _Token:
        token = self._peek()
        if token is None:
            raise QueryError(f"where ends too early: {self.text!r}. Complete the condition.")
        self.pos += 1
        return token

    def _or(self) -> np.ndarray:
        mask = self._and()
        while (token := self._peek()) is not None and token.kind == "or":
            self.pos += 1
            mask = mask | self._and()
        return mask

    def _and(self) -> np.ndarray:
        mask = self._not()
        while (token := self._peek()) is not None and token.kind == "and":
            self.pos += 1
            mask &= self._not()
        return mask

    def _not(self) -> np.ndarray:
        token = self._peek()
        if token is None or token.kind not in ("not", "lparen"):
            return self._comparison()
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise QueryError(f"where nests parentheses or 'not' more than {MAX_NESTING} deep "
                             f"(at position {token.pos}). Write the condition flatter.")
        self.pos += 1
        if token.kind == "not":
            mask = ~self._not()
        else:
            mask = self._or()
            closing = self._take()
            if closing.kind != "rparen":
                raise QueryError(f"Expected ')' at position {closing.pos} of where, got "
                                 f"{closing.text!r}.")
        self.depth -= 1
        return mask

    def _comparison(self) -> np.ndarray:
        left = self._operand()
        op = self._take()
        if op.kind != "op":
            raise QueryError(f"Expected a comparison (< <= > >= == !=) after {left.text!r} at "
                             f"position {op.pos}, got {op.text!r}.")
        right = self._operand()
        if left.kind != "name" and right.kind != "name":
            raise QueryError(f"The comparison at position {left.pos} compares two values; one "
                             "side must be a column.")
        if left.kind != "name":  # "0.5 < win_rate" -> "win_rate > 0.5"
            left, right = right, left
            op = _Token("op", {"<": ">", "<=": ">=", ">": "<", ">=": "<="}.get(op.text, op.text),
                        op.pos)
        return self._compare(left, op.text, right)

    def _operand(self) -> _Token:
        token = self._take()
        if token.kind not in ("name", "number", "string"):
            raise QueryError(f"Expected a column or a value at position {token.pos} of where, "
                             f"got {token.text!r}.")
        return token

    def _compare(self, left: _Token, op: str, right: _Token) -> np.ndarray:
        column = self.columns.resolve(left.text)
        kind = self.columns.kind(column)
        values = self.columns.values(column)
        if right.kind == "name":
            other = self.columns.resolve(right.text)
            if kind != "number" or self.columns.kind(other) != "number":
                raise QueryError(f"Only numeric columns can be compared with each other "
                                 f"({column} {op} {other}).")
            return _numeric_compare(values, op, self.columns.values(other))
        if kind == "text":
            if op not in ("==", "=", "!="):
                raise QueryError(f"Text column {column!r} supports == and != only.")
            if right.kind != "string":
                raise QueryError(f"Compare text column {column!r} with a quoted value, e.g. "
                                 f"{column} == 'AAPL'.")
            code = self.columns.text_code(column, right.text[1:-1])
            return (values == code) if op != "!=" else (values != code)
        if kind == "date":
            if right.kind != "string":
                raise QueryError(f"Compare date column {column!r} with a quoted date, e.g. "
                                 f"{column} >= '2020-01-01'.")
            try:
                stamp = pd.Timestamp(right.text[1:-1])
            except (TypeError, ValueError):
                raise QueryError(f"{right.text} is not a date (use 'YYYY-MM-DD').") from None
            if stamp.tzinfo is not None:
                stamp = stamp.tz_convert("UTC").tz_localize(None)
            return _COMPARE[op](values, _nanoseconds(stamp))
        if column == "backtest_id":
            try:
                number = int(right.text.strip("'\""))
            except ValueError:
                raise QueryError(f"backtest_id compares with an id like '1042', got "
                                 f"{right.text}.") from None
            return _COMPARE[op](values, number)
        if right.kind != "number":
            raise QueryError(f"Numeric column {column!r} compares with a number, got "
                             f"{right.text}.")
        return _numeric_compare(values, op, _number(right.text))


def _number(text: str) -> float:
    """A number of a where expression; beyond float range it is refused, not read as inf."""
    value = float(text)
    if not np.isfinite(value):
        shown = text if len(text) <= 24 else f"{text[:12]}...({len(text)} characters)"
        raise QueryError(f"The number {shown} in where is out of range; use a finite number "
                         "such as 0.55 or 1e6.")
    return value


def _numeric_compare(values: np.ndarray, op: str, other) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        mask = _COMPARE[op](values, other)
        if op == "!=":  # NaN != x is True in IEEE; a comparison with NaN is false here
            mask &= ~np.isnan(values)
            if isinstance(other, np.ndarray):
                mask &= ~np.isnan(other)
    return mask


def evaluate(where: str, columns: Columns) -> np.ndarray:
    """Boolean mask over every index row for a where expression."""
    return np.asarray(_Parser(where, columns).parse(), dtype=bool)


def order_rows(rows: np.ndarray, order_by: str | None, columns: Columns,
               limit: int | None) -> np.ndarray:
    """Rows sorted by a column (``-name`` descending, NaN last), cut to ``limit``."""
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
            raise QueryError(f"limit must be a non-negative whole number, got {limit!r}.")
    if order_by:
        if not isinstance(order_by, str):
            raise QueryError(f"order_by must be a column name, got {order_by!r}.")
        descending = order_by.startswith("-")
        name = order_by.lstrip("-+").strip()
        column = columns.resolve(name)
        key = columns.sort_key(column, rows)
        if descending:
            key = -key  # NaN stays NaN: numpy sorts it last either way
        if limit is not None and limit < len(rows) // 4:
            part = np.argpartition(key, limit)[:limit] if limit else np.empty(0, np.int64)
            rows, key = rows[part], key[part]
        rows = rows[np.argsort(key, kind="stable")]
    return rows if limit is None else rows[:limit]


def _nanoseconds(stamp: pd.Timestamp) -> int:
    """A Timestamp as integer nanoseconds since the epoch, exact even outside the years
    datetime64[ns] can hold (1677-2262): Python ints compare with stored int64 times."""
    return int(stamp.as_unit("us").asm8.view("i8")) * 1000 + stamp.nanosecond

"""Scopes of stored rows: encoding a write's scopes, and the rule for rows stored before them.

Segments written before format 4 hold no scope and no definition column. Their rows get the
scope their recorded start, costs, capital and settings imply (docs/store.md, "Scope"):

- source: the data source recorded in the manifest when the store was upgraded (the one
  configured then);
- window: ``full`` when the row starts at the earliest start stored for its symbol (it ran on
  all the data there was), else the explicit window of its recorded start and end;
- costs, capital, settings: as recorded;
- definition: ``""`` (built-ins; rule strategies stored then are an older definition).

The rule needs each symbol's earliest start over those rows: the upgrade records it in the
manifest, so the answer never changes as new rows arrive.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import StoreCorruptionError
from core.canonical import hash_of_json
from core.scope import canonical_window, lenient_scope, scope_json
from core.store._format import CODE_KINDS, LEGACY_CODE_KINDS

_START = 0  # column of the start date in the times block


@dataclass(frozen=True)
class LegacyScopes:
    """How the rows of pre-scope segments get their scope (see the module docstring)."""

    source: str
    first_start: dict[str, int]  # symbol -> earliest start (ns) of the pre-scope rows

    def to_manifest(self) -> dict:
        return {"source": self.source, "first_start": dict(sorted(self.first_start.items()))}

    @classmethod
    def from_manifest(cls, doc: dict) -> "LegacyScopes | None":
        info = doc.get("legacy_scopes")
        if not isinstance(info, dict):
            return None
        return cls(str(info.get("source", "")), {str(k): int(v) for k, v in
                                                  dict(info.get("first_start", {})).items()})

    def scope_codes(self, vocab: dict, codes: np.ndarray, times: np.ndarray,
                    capital: np.ndarray) -> tuple[list, np.ndarray]:
        """(scope vocabulary of (json, hash) pairs, local scope code per row) of a segment."""
        rows = len(codes)
        symbols = np.array([self.first_start.get(s, np.iinfo(np.int64).min)
                            for s in vocab["symbol"]], np.int64)
        start, end = times[:, _START], times[:, 1]
        full = start <= symbols[codes[:, 0]] if len(symbols) else np.ones(rows, bool)
        costs = codes[:, LEGACY_CODE_KINDS.index("costs")].astype(np.int64)
        settings = codes[:, LEGACY_CODE_KINDS.index("settings")].astype(np.int64)
        key = np.stack([costs, settings, capital.astype(np.float64).view(np.int64),
                        full.astype(np.int64), np.where(full, 0, start), np.where(full, 0, end)],
                       axis=1) if rows else np.empty((0, 6), np.int64)
        distinct, inverse = np.unique(key, axis=0, return_inverse=True)
        entries: dict[str, int] = {}
        remap = np.empty(len(distinct), np.int32)
        for i, (c, s, cap, is_full, lo, hi) in enumerate(distinct.tolist()):
            window = "full" if is_full else canonical_window((pd.Timestamp(lo), pd.Timestamp(hi)))
            scope = lenient_scope(self.source, window, _parsed(vocab["costs"][c]),
                                  float(np.int64(cap).view(np.float64)),
                                  _parsed(vocab["settings"][s]))
            text = scope_json(scope)
            remap[i] = entries.setdefault(text, len(entries))
        local = remap[inverse.reshape(-1)] if rows else np.empty(0, np.int32)
        return [[text, hash_of_json(text)] for text in entries], local.astype(np.int32)


def with_scope_columns(vocab: dict, codes: np.ndarray, read_stats, legacy: LegacyScopes | None
                       ) -> tuple[dict, np.ndarray]:
    """A segment's vocabulary and code block with every CODE_KINDS column (pre-scope segments
    gain their scope and an empty definition). ``read_stats()`` gives (times, capital)."""
    if "scope" in vocab:
        return vocab, codes
    if legacy is None:
        raise StoreCorruptionError("A segment written before scopes is listed by a manifest "
                                   "without the upgrade's scope rule; reopen the store for "
                                   "writing to upgrade it.")
    times, capital = read_stats()
    scopes, local = legacy.scope_codes(vocab, codes, times, capital)
    out = np.zeros((len(codes), len(CODE_KINDS)), np.int32)
    for j, kind in enumerate(LEGACY_CODE_KINDS):
        out[:, CODE_KINDS.index(kind)] = codes[:, j]
    out[:, CODE_KINDS.index("scope")] = local
    return {**vocab, "scope": scopes, "definition": [""]}, out


def first_starts(parts) -> dict[str, int]:
    """Each symbol's earliest start over ``parts``: (symbol vocabulary, symbol codes, starts)."""
    out: dict[str, int] = {}
    for symbols, codes, starts in parts:
        if not len(codes):
            continue
        lowest = np.full(len(symbols), np.iinfo(np.int64).max, np.int64)
        np.minimum.at(lowest, codes, starts)
        for symbol, value in zip(symbols, lowest.tolist()):
            if value != np.iinfo(np.int64).max:
                out[symbol] = min(value, out.get(symbol, value))
    return out


def _parsed(text: str):
    try:
        return json.loads(text) if text else {}
    except json.JSONDecodeError:
        return {}

"""BacktestStore: the one Zarr v3 store of every backtest (see docs/store.md).

Writes: validate and encode -> write one immutable segment aside -> under the writer lock, append
it to a fresh copy of the manifest and replace the manifest atomically (the commit point).
Reads: a lean in-memory index of the current manifest, refreshed whenever the manifest changes
(checked on every call), so a long-lived handle always sees other processes' commits. Where the
store lives (a local folder or an fsspec URL) is the backend's business (``_backend``).
"""
from __future__ import annotations

import functools
import json
import os
import threading
import time
import warnings
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
import zarr

from core import scope as scopes
from core.errors import NotFoundError, StoreCorruptionError, StoreError, ValidationError
from core.scope import complete_scope
from core.store import _keys
from core.store._backend import (Backend, CommitCounter, check_version, crash_point,
                                 empty_manifest, open_backend)
from core.store._encode import KeyMemo, encode_any
from core.store._segdata import SegmentData
from core.store._format import (CODE_KINDS, FORMAT_NAME, FORMAT_VERSION, KEY_KINDS, METRICS,
                                ROOT_ATTR, WRITE_LEVEL)
from core.store._index import GlobalVocab, Index, legacy_first_starts, load_segments
from core.store._scopes import LegacyScopes
from core.store._segment import new_segment_name, write_segment
from core.store import _details, _frames, _maintenance, _query

DEFAULT_URL = "data/backtests/store.zarr"
MODES = ("r", "r+", "a")
#: Files a store's backend may create at its root before the manifest exists.
OWN_ROOT_FILES = {".lock", "commits.seq", "zarr.json"}
COUNTER_TRUST_S = 1.0  # a local handle also checks the manifest itself at least this often
_ROW_MISSES_BEFORE_WARM = 3
_MEMO_LIMIT = 65_536


def _retry_after_swap(method):
    """Retry a read once when it failed because a compaction swapped segments under it.

    A compaction deletes the segments it replaced right after its manifest swap; a read that
    began just before the swap may find them gone. If the manifest changed meanwhile, the
    handle refreshes and reads again; real damage still raises.
    """
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except StoreCorruptionError:
            if self._closed or self._backend.manifest_token() == self._token:
                raise
            self.refresh(force=True)
            return method(self, *args, **kwargs)
    return wrapper


class BacktestStore:
    """Every stored backtest, keyed by (symbol, strategy, params, exit rule, scope, strategy
    definition): see docs/store.md.

    ``mode="r"`` opens read-only; ``"r+"``/``"a"`` create the store when it is missing. A handle
    is safe to share between threads; any number of processes may read and write one store.
    """

    def __init__(self, url: str | os.PathLike = DEFAULT_URL, mode: str = "r+", *,
                 lock_dir: str | None = None, refresh_interval: float | None = None,
                 default_scope: dict | None = None):
        if mode not in MODES:
            raise ValidationError(f"Unknown store mode {mode!r}; use 'r' (read) or 'r+' (write).")
        self.url = os.fspath(url)
        self.mode = mode
        #: what lookups mean without a scope, and the source of rows that name none
        self.default_scope = (complete_scope(default_scope, scopes.default_scope())
                              if default_scope is not None else scopes.default_scope())
        self._default_hash = scopes.scope_hash(self.default_scope)
        self._backend: Backend = open_backend(self.url, writable=mode != "r", lock_dir=lock_dir)
        self._refresh_interval = (refresh_interval if refresh_interval is not None
                                  else self._backend.refresh_interval)
        self._guard = threading.RLock()
        self._vocab = GlobalVocab()
        self._index: Index | None = None
        self._manifest: dict = {}
        self._token: object = None
        self._counter: CommitCounter | None = None  # see _current
        self._count: int | None = None
        self._trusted_until = 0.0
        self._checked_at = 0.0
        self._row_misses = 0
        #: canonical hashes by the ``repr`` of what was given: equal reprs mean equal values
        #: (``14`` and ``14.0``, ``True`` and ``1`` differ)
        self._hash_memo: dict[tuple, str] = {}
        self._json_copiers: dict[str, dict[int, Any]] = {kind: {} for kind in CODE_KINDS}
        self._write_memo = KeyMemo()
        self._stamps: dict[bool, dict[int, pd.Timestamp]] = {False: {}, True: {}}
        self._category_cache: dict[tuple, tuple[int, pd.CategoricalDtype]] = {}
        self._chunks = _details.ChunkCache()  # decoded curve/trade chunks
        self._closed = False
        self._zstore = self._backend.zarr_store()
        self._open_root()
        self.refresh(force=True)

    # ------------------------------------------------------------------ opening / refreshing
    def _open_root(self) -> None:
        doc, _ = self._backend.read_manifest()
        if doc is None:
            if self.mode == "r":
                raise StoreError(f"No backtest store at {self.url!r}. Open it with mode='r+' to "
                                 "create one, or check the path (setting HINDSIGHT_STORE).")
            self._refuse_foreign_files()
            self._create()
        self._check_root_attrs()
        if self.mode != "r" and doc is not None and doc.get("format_version", 0) < FORMAT_VERSION:
            self._migrate()

    def _create(self) -> None:
        with self._backend.lock():
            doc, _ = self._backend.read_manifest()
            if doc is not None:
                return
            self._refuse_foreign_files()
            root = zarr.open_group(store=self._zstore, mode="a", zarr_format=3)
            if ROOT_ATTR not in root.attrs:
                root.attrs[ROOT_ATTR] = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
            self._backend.write_manifest(empty_manifest())

    def _refuse_foreign_files(self) -> None:
        """Never turn a folder holding other files into a store."""
        foreign = [n for n in self._backend.entries() if n not in OWN_ROOT_FILES]
        if foreign:
            raise StoreError(f"{self.url!r} is not empty ({', '.join(foreign[:5])}) and is not "
                             "a Hindsight backtest store; nothing was written. Choose a new or "
                             "empty folder for the store (setting HINDSIGHT_STORE).")

    def _migrate(self) -> None:
        """Bring an older store's manifest to this format: one atomic manifest replacement
        (segments stay as they are), so a crash leaves the old or the new manifest.

        Format 4 records the facts the scope rule of older rows needs (``_scopes``).
        """
        with self._backend.lock():
            doc = self._fresh_manifest()
            if doc.get("format_version", 0) < FORMAT_VERSION:
                doc.setdefault("retired", [])
                if LegacyScopes.from_manifest(doc) is None:
                    doc["legacy_scopes"] = self._legacy_rule(doc).to_manifest()
                self._write_manifest(doc)

    def _legacy_rule(self, doc: dict) -> LegacyScopes:
        """The scope rule of the rows of pre-scope segments: recorded in the manifest by the
        upgrade, or worked out the same way for a store opened read-only before it."""
        return LegacyScopes.from_manifest(doc) or LegacyScopes(
            self.default_scope["source"], legacy_first_starts(self._zstore, doc["segments"]))

    def _check_root_attrs(self) -> None:
        try:
            root = zarr.open_group(store=self._zstore, mode="r", zarr_format=3)
            info = root.attrs.get(ROOT_ATTR)
        except Exception as exc:  # noqa: BLE001 - missing/garbage root metadata
            raise StoreCorruptionError(f"The root metadata (zarr.json) of the backtest store "
                                       f"{self.url!r} cannot be read ({exc}).") from exc
        if not isinstance(info, dict) or info.get("format") != FORMAT_NAME:
            raise StoreError(f"{self.url!r} is a Zarr store but not a Hindsight backtest store.")
        check_version(info.get("format_version"), self.url)

    def refresh(self, force: bool = False) -> bool:
        """Pick up commits of other handles/processes now; True when something changed."""
        with self._guard:
            self._check_open()
            self._checked_at = time.monotonic()
            if not force and self._index is not None and self._manifest_unchanged():
                return False
            counter = self._backend.commit_counter()
            count = counter.value() if counter else None  # read before the manifest it vouches for
            doc, token = self._backend.read_manifest()
            if doc is None:
                raise StoreError(f"The manifest of {self.url!r} disappeared; the store was removed.")
            check_version(doc.get("format_version"), self.url)
            known = {seg.name: seg for seg in (self._index.segments if self._index else [])}
            legacy = self._legacy_rule(doc) if doc["format_version"] < 4 or \
                "legacy_scopes" in doc else None
            segments = load_segments(self._zstore, doc["segments"], known, self._vocab, legacy)
            self._index = Index(segments, doc.get("tombstones", []), self._vocab)
            self._manifest, self._token = doc, token
            self._trust_counter(counter, count)
            self._row_misses = 0
            return True

    def _current(self) -> Index:
        """The index of the current manifest, reloaded when another handle committed.

        Local stores: nothing committed since the last check costs one read of the shared
        commit counter (``_backend.CommitCounter``). The manifest itself (``os.stat``) is
        checked when the counter changed, is odd or missing, and at least once a second,
        which also catches a manifest replaced by other means (an older Hindsight writer, a
        restored backup).
        """
        index = self._index
        if index is not None and not self._refresh_interval:
            counter = self._counter
            count = counter.value() if counter is not None else None
            if count is not None and count == self._count and not count & 1 and \
                    time.monotonic() < self._trusted_until:
                return index
            if self._manifest_unchanged():
                return index
        elif index is not None and \
                time.monotonic() - self._checked_at < self._refresh_interval:
            return index  # an object store's manifest is read at most this often by lookups
        self.refresh()
        return self._index

    def _manifest_unchanged(self) -> bool:
        """True when the manifest is still the loaded one (the counter is trusted again)."""
        counter = self._backend.commit_counter()
        count = counter.value() if counter else None  # read before the manifest it vouches for
        if self._backend.manifest_token() != self._token:
            return False
        self._trust_counter(counter, count)
        return True

    def _trust_counter(self, counter: CommitCounter | None, count: int | None) -> None:
        """Remember the counter value read before the manifest check that vouched for it."""
        self._counter, self._count = counter, count
        self._trusted_until = time.monotonic() + COUNTER_TRUST_S

    def close(self) -> None:
        """Release cached data; the handle cannot be used afterwards."""
        with self._guard:
            self._index = None
            self._closed = True

    def __enter__(self) -> "BacktestStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"The store handle for {self.url!r} is closed; open a new one.")

    def _check_writable(self) -> None:
        if self.mode == "r":
            raise StoreError(f"The store {self.url!r} was opened read-only (mode='r'); open it "
                             "with mode='r+' to write.")

    # ------------------------------------------------------------------ writing
    def store_backtest(self, result) -> str:
        """Store one engine result as one atomic segment; returns its backtest id."""
        return self.store_many([result])[0]

    def store_many(self, results) -> list[str]:
        """Store many results as ONE atomic batch (all visible, or none after a crash).

        Accepts a list of ``BacktestResult``, a ``BatchResult`` (its trades become the rows'
        trade logs) or run_many's batch DataFrame. Returns the new backtest ids in input order.
        """
        self._check_open()
        self._check_writable()
        self._write_memo.trim()
        data = encode_any(results, time.time_ns() // 1000 * 1000, self._write_memo,
                          self.default_scope["source"])
        if data.rows == 0:
            return []
        bid0 = self._commit_segment(data)
        return [str(b) for b in range(bid0, bid0 + data.rows)]

    def _commit_segment(self, data: SegmentData, level: int = WRITE_LEVEL) -> int:
        name = new_segment_name()
        write_segment(self._zstore, name, data, level)
        with self._guard, self._backend.lock():
            crash_point("locked")
            doc = self._fresh_manifest()
            bid0 = int(doc["next_bid"])
            doc["segments"].append({"name": name, "rows": data.rows, "bid0": bid0,
                                    "created_at": int(data.times[0, 2]) if data.rows else 0})
            doc["next_bid"] = bid0 + data.rows
            self._write_manifest(doc)
        return bid0

    def _fresh_manifest(self) -> dict:
        return self._backend.current_manifest()

    def _write_manifest(self, doc: dict) -> None:
        self._backend.commit(doc)
        self._checked_at = float("-inf")  # this handle's next call sees its own commit

    def delete_backtest(self, bid: str | int | Iterable[str | int]) -> int:
        """Delete one backtest id or a list of them (tombstones); returns how many were deleted."""
        self._check_writable()
        bids = list(dict.fromkeys(_bid_list(bid)))
        with self._guard, self._backend.lock():
            self.refresh(force=True)
            index = self._index
            rows = index.rows_of_bids(np.asarray(bids, np.int64))
            missing = [b for b, r in zip(bids, rows) if r < 0 or not index.alive[r]]
            if missing:
                raise NotFoundError(f"No stored backtest with id(s) {missing[:10]}; nothing was "
                                    "deleted. List ids with store.get_all_stats().")
            doc = self._fresh_manifest()
            doc["tombstones"] = sorted(set(doc.get("tombstones", [])) | set(bids))
            notes = doc.get("notes", {})
            for b in bids:
                notes.pop(str(b), None)
            self._write_manifest(doc)
        return len(bids)

    def set_note(self, bid: str | int, note: str | None = None,
                 tags: Iterable[str] | None = None) -> None:
        """Set the editable note and/or tags of a backtest (None leaves a field unchanged)."""
        self.set_notes({bid: {"note": note, "tags": tags}})

    def set_notes(self, notes: Mapping[str | int, Mapping[str, Any]]) -> None:
        """Set the notes and/or tags of many backtests in one commit, all or none:
        ``{id: {"note": text, "tags": [...]}}`` (a field left out or None stays unchanged)."""
        self._check_writable()
        changes = []
        for bid, fields in notes.items():
            (number,) = _bid_list(bid)
            unknown = sorted(set(fields) - {"note", "tags"})
            if unknown:
                raise ValidationError(f"Backtest {number}: unknown note fields {unknown}; "
                                      "use 'note' and 'tags'.")
            note, tags = fields.get("note"), fields.get("tags")
            if note is not None:
                _check_text(note, "A note")
            changes.append((number, note, _clean_tags(tags) if tags is not None else None))
        with self._guard, self._backend.lock():
            self.refresh(force=True)
            for number, _, _ in changes:
                self._require_live_row(number)
            doc = self._fresh_manifest()
            for number, note, tag_list in changes:
                entry = doc.setdefault("notes", {}).setdefault(str(number),
                                                               {"note": "", "tags": []})
                if note is not None:
                    entry["note"] = note
                if tag_list is not None:
                    entry["tags"] = tag_list
                if not entry["note"] and not entry["tags"]:
                    doc["notes"].pop(str(number))
            self._write_manifest(doc)

    def compact(self, grace_s: float = _maintenance.RETIRE_GRACE_S) -> dict:
        """Merge small segments (dropping deleted rows) and clean leftovers; returns a summary.

        Replaced segments stay readable for ``grace_s`` seconds (readers in other processes
        may still be reading them) and are removed by a later compaction.
        """
        self._check_writable()
        with self._guard:
            self.refresh(force=True)
            index = self._index
            damaged = {s.name for s in index.damaged} | {
                s.name for s in index.readable if s.bad_rows is not None}
            summary = _maintenance.compact(self._backend, self._zstore, damaged, grace_s,
                                           LegacyScopes.from_manifest(self._manifest))
            self.refresh(force=True)
            return {**summary, "segments": len(self._manifest["segments"])}

    def verify(self) -> dict:
        """Check every checksum and structure; a report naming each damaged segment."""
        return _maintenance.verify(self._backend, self._zstore)

    # ------------------------------------------------------------------ key canonicalisation
    def _key(self, symbol, strategy, params, exit_rule, scope) -> tuple[str, ...]:
        """(symbol, strategy, params hash, exit hash, scope hash, definition) of a key given
        in any accepted form; the definition is the strategy's current one."""
        _check_names(symbol, strategy)
        return (symbol, strategy, self._params_hash(strategy, params), self._exit_hash(exit_rule),
                self._scope_hash(scope, allow_all=False), _keys.definition_of(strategy))

    def _key_codes(self, *key) -> tuple[int, ...] | None:
        """Global codes of a key given in any accepted form, None when some part was never
        stored."""
        known = self._vocab.codes
        codes = tuple(known[kind].get(part, -1) for kind, part in zip(KEY_KINDS, self._key(*key)))
        return None if min(codes) < 0 else codes

    def scopes(self) -> dict[str, dict]:
        """The scopes of the stored backtests (not of deleted ones): ``{hash: scope dict}``."""
        return self._hashed_values("scope")

    def exit_rules(self) -> dict[str, list]:
        """The exit rules of the stored backtests (not of deleted ones): ``{hash: rule list}``."""
        return self._hashed_values("exit_rule")

    def _hashed_values(self, kind: str) -> dict:
        """A hashed vocabulary's values that a live row uses, by hash, parsed (no table is
        built: cheap at any size)."""
        with self._guard:
            index = self._current()
            values = self._vocab.values[kind]
            used = np.zeros(len(values), bool)
            used[index.codes[kind][index.alive]] = True
            return {value[1]: json.loads(value[0]) for value, live in zip(values, used) if live}

    def scope_hash(self, scope=None) -> str | None:
        """The hash of a scope as lookups take it (None: every scope, for ``"all"``)."""
        return self._scope_hash(scope, allow_all=True)

    def _scope_hash(self, scope, allow_all: bool) -> str | None:
        """``None``/``"default"``: the default scope; ``"all"``: None (every scope, where
        allowed); a 16-hex hash; a dict or JSON text of scope fields (the rest default)."""
        if scope is None or (isinstance(scope, str) and scope == "default"):
            return self._default_hash
        if isinstance(scope, str) and scope == scopes.ALL_SCOPES:
            if allow_all:
                return None
            raise ValidationError("A lookup needs one scope, not 'all'; use query(scope='all') "
                                  "to list every scope.")
        if isinstance(scope, str) and _is_hash(scope):
            return scope
        if isinstance(scope, str):
            scope = _keys._load_json(scope, "scope")
        if not isinstance(scope, dict):
            raise ValidationError(f"A scope is 'default', 'all', a scope hash or a dict of "
                                  f"{', '.join(scopes.SCOPE_FIELDS)}; got {scope!r}.")
        raw = ("scope", repr(scope))
        found = self._hash_memo.get(raw)
        if found is None:
            found = scopes.scope_hash(complete_scope(scope, self.default_scope))
            _bounded_put(self._hash_memo, raw, found)
        return found

    def _params_hash(self, strategy: str, params) -> str:
        """The canonical hash of ``params`` for ``strategy`` (memoised per ``repr``)."""
        raw = (strategy, repr(params))
        found = self._hash_memo.get(raw)
        if found is None:
            found = _keys.params_key(_keys.check_strategy(strategy), params)[1]
            _bounded_put(self._hash_memo, raw, found)
        return found

    def _exit_hash(self, exit_rule) -> str:
        """The canonical hash of an exit rule (memoised per ``repr``)."""
        raw = ("", repr(exit_rule))
        found = self._hash_memo.get(raw)
        if found is None:
            found = _keys.exit_key(exit_rule)[1]
            _bounded_put(self._hash_memo, raw, found)
        return found

    # ------------------------------------------------------------------ reading
    @_retry_after_swap
    def get_stats(self, symbol: str, strategy: str, params=None, exit_rule=None,
                  scope=None) -> dict | None:
        """Stats of the latest stored backtest of this exact key in ``scope`` (default: the
        store's default scope), or None."""
        with self._guard:
            index = self._current()
            codes = self._key_codes(symbol, strategy, params, exit_rule, scope)
            row = -1 if codes is None else index.find_latest(codes)
            if index.damaged or index.has_bad_rows:
                self._check_suspects(index, self._key(symbol, strategy, params, exit_rule, scope),
                                     int(index.bids[row]) if row >= 0 else 0)
            return None if row < 0 else self._stats_dict(index, row)

    def _check_suspects(self, index: Index, key: tuple, found_bid: int) -> None:
        suspect = index.suspect_segment(key, found_bid)
        if suspect is not None:
            raise StoreCorruptionError(
                f"The latest backtest of {key[0]} {key[1]} may sit in damaged segment "
                f"{suspect.name!r}; it is not served. Run store.verify() for the report.")

    @_retry_after_swap
    def history(self, symbol: str, strategy: str, params=None, exit_rule=None,
                scope=None) -> pd.DataFrame:
        """Every live stored version of a key, oldest first (metric drift across re-runs)."""
        with self._guard:
            index = self._current()
            codes = self._key_codes(symbol, strategy, params, exit_rule, scope)
            rows = np.empty(0, np.int64) if codes is None else index.find_versions(codes)
            return self._frame(index, rows)

    @_retry_after_swap
    def bulk_get_stats(self, keys, scope=None) -> pd.DataFrame:
        """Latest stats of many keys in one scope: one row per key found (input order).

        ``keys``: a list of (symbol, strategy, params, exit_rule) tuples or a DataFrame with those
        columns (``params``/``exit_rule`` as dicts or JSON, or ``params_hash``/``exit_hash``; a
        ``scope_hash`` column overrides ``scope`` per row).
        """
        with self._guard:
            index = self._current()
            codes = self._bulk_codes(keys, self._scope_hash(scope, allow_all=False))
            rows = index.find_many(codes[(codes >= 0).all(axis=1)])
            return self._frame(index, rows)

    def _bulk_codes(self, keys, scope_hash: str) -> np.ndarray:
        """Global codes (-1 where never stored) of many keys, one row per key."""
        if isinstance(keys, pd.DataFrame):
            return self._frame_codes(keys, scope_hash)
        keys = list(keys)
        if not keys:
            return np.empty((0, len(KEY_KINDS)), np.int64)
        if not all(type(key) is tuple and len(key) == 4 for key in keys):
            keys = [_key_parts(i, key) for i, key in enumerate(keys)]
        symbols, strategies, params, exit_rules = zip(*keys)
        for symbol, strategy in set(zip(symbols, strategies)):
            _check_names(symbol, strategy)
        exit_of = {id(e): e for e in exit_rules}  # keys often share one exit rule object
        exit_of = {ident: self._exit_hash(e) for ident, e in exit_of.items()}
        return self._hash_columns(symbols, strategies, self._params_hashes(strategies, params),
                                  list(map(exit_of.__getitem__, map(id, exit_rules))),
                                  [scope_hash] * len(keys))

    def _params_hashes(self, strategies, params) -> list[str]:
        """``_params_hash`` of many (strategy, params) pairs: one memo probe each, computed
        only for the ones the memo does not hold."""
        raws = list(zip(strategies, map(repr, params)))
        found = list(map(self._hash_memo.get, raws))
        for i in [i for i, value in enumerate(found) if value is None]:
            found[i] = self._params_hash(strategies[i], params[i])
        return found

    def _hash_columns(self, symbols, strategies, params_hashes, exit_hashes, scope_hashes
                      ) -> np.ndarray:
        """(keys, len(KEY_KINDS)) global codes of key columns given as sequences of names and
        hashes; the definition is each strategy's current one."""
        lookup = self._vocab.lookup_many
        current = {s: _keys.definition_of(s) for s in set(strategies)}
        return np.array([lookup("symbol", symbols), lookup("strategy", strategies),
                         lookup("params", params_hashes), lookup("exit_rule", exit_hashes),
                         lookup("scope", scope_hashes),
                         lookup("definition", [current[s] for s in strategies])],
                        np.int64).reshape(len(KEY_KINDS), -1).T

    def _frame_codes(self, keys: pd.DataFrame, scope_hash: str) -> np.ndarray:
        missing = [c for c in ("symbol", "strategy") if c not in keys.columns]
        if missing:
            raise ValidationError(f"Key DataFrame misses columns {missing}.")
        n = len(keys)
        strategies = keys["strategy"].tolist()
        if "params_hash" in keys.columns:
            params_hashes = keys["params_hash"].tolist()
        else:
            column = keys["params"] if "params" in keys.columns else [None] * n
            params_hashes = [self._params_hash(s, p) for s, p in zip(strategies, column)]
        if "exit_hash" in keys.columns:
            exit_hashes = keys["exit_hash"].tolist()
        else:
            column = keys["exit_rule"] if "exit_rule" in keys.columns else [None] * n
            exit_hashes = [self._exit_hash(e) for e in column]
        scope_hashes = (keys["scope_hash"].tolist() if "scope_hash" in keys.columns
                        else [scope_hash] * n)
        return self._hash_columns(keys["symbol"].tolist(), strategies, params_hashes,
                                  exit_hashes, scope_hashes)

    @_retry_after_swap
    def get_all_stats(self, include_history: bool = False) -> pd.DataFrame:
        """Every stored backtest (latest version per key unless include_history) as a table."""
        with self._guard:
            index = self._current()
            rows = self._visible_rows(index, include_history)
            return self._frame(index, rows)

    @_retry_after_swap
    def query(self, symbol=None, strategy=None, exit_rule=None, params=None, where: str | None
              = None, order_by: str | None = None, limit: int | None = None,
              include_history: bool = False, scope=None) -> pd.DataFrame:
        """Filter, sort and cut the latest backtests; metrics AND numeric params are filterable.

        ``symbol``/``strategy``: a name or a list; ``exit_rule``/``params``: one exact value
        (params need a single strategy); ``scope``: the default scope unless given (``"all"``:
        every scope); ``where``: e.g. ``"win_rate >= 0.55 and rsi_period <= 20"``;
        ``order_by``: a column, ``-`` prefix for descending (NaN last).
        """
        with self._guard:
            index = self._current()
            mask = self._visible_mask(index, include_history)
            scope_hash = self._scope_hash(scope, allow_all=True)
            if scope_hash is not None:
                mask &= self._hash_filter(index, "scope", scope_hash)
            strategies = _as_list(strategy)
            mask &= self._code_filter(index, "symbol", _as_list(symbol))
            mask &= self._code_filter(index, "strategy", strategies)
            if exit_rule is not None:
                mask &= self._hash_filter(index, "exit_rule", self._exit_hash(exit_rule))
            if params is not None:
                if not strategies or len(strategies) != 1:
                    raise ValidationError("query(params=...) needs exactly one strategy: params "
                                          "are validated against that strategy's parameters.")
                mask &= self._hash_filter(index, "params",
                                          self._params_hash(strategies[0], params))
            columns = _query.Columns(index, strategies)
            if where is not None and not (isinstance(where, str) and not where.strip()):
                mask &= _query.evaluate(where, columns)
            rows = np.flatnonzero(mask)
            rows = _query.order_rows(rows, order_by, columns, limit)
            return self._frame(index, rows, compact_params=bool(strategies))

    @_retry_after_swap
    def count(self, include_history: bool = False) -> int:
        """Number of stored backtests (latest per key unless include_history)."""
        with self._guard:
            index = self._current()
            return int(index.alive.sum()) if include_history else len(index.latest_rows())

    @_retry_after_swap
    def get_detailed_results(self, bid: str | int) -> dict:
        """Stats + params + exit rule + ``equity`` Series (None when not stored) + ``trades``."""
        (number,) = _bid_list(bid)
        with self._guard:
            index = self._current()
            row = self._require_live_row(number)
            stats = self._stats_dict(index, row)
            seg, local = index.locate(row)
            equity, trades = _details.read_curve_and_trades(seg, local, self._chunks)
            stats["equity"] = equity
            stats["trades"] = trades
            return stats

    def _require_live_row(self, number: int) -> int:
        index = self._index
        row = index.row_of_bid(number)
        if row < 0:
            damaged = index.damaged_segment_of_bid(number)
            if damaged is not None:
                raise damaged.error
            raise NotFoundError(f"No stored backtest with id {number!r}. List ids with "
                                "store.get_all_stats().")
        if not index.alive[row]:
            raise NotFoundError(f"Backtest {number!r} was deleted.")
        self._check_damage(index, np.array([row]))
        return row

    # ------------------------------------------------------------------ helpers
    def _visible_rows(self, index: Index, include_history: bool) -> np.ndarray:
        rows = np.flatnonzero(index.alive) if include_history else index.latest_rows()
        return self._check_damage(index, rows, skip=True)

    def _visible_mask(self, index: Index, include_history: bool) -> np.ndarray:
        return (index.alive if include_history else index.latest_mask()).copy()

    def _code_filter(self, index: Index, kind: str, values: list | None) -> np.ndarray | bool:
        if not values:
            return True
        codes = [self._vocab.lookup(kind, v) for v in values]
        codes = [c for c in codes if c >= 0]
        if len(codes) == 1:
            return index.codes[kind] == codes[0]
        return np.isin(index.codes[kind], codes)

    def _hash_filter(self, index: Index, kind: str, key_hash: str) -> np.ndarray:
        return index.codes[kind] == self._vocab.lookup(kind, key_hash)

    def _check_damage(self, index: Index, rows: np.ndarray, skip: bool = False) -> np.ndarray:
        """Raise (or drop, when ``skip``) rows known to sit in damaged chunks."""
        if not index.has_bad_rows or not len(rows):
            return rows
        bad = index.damaged_rows()[rows]
        if not bad.any():
            return rows
        seg, _ = index.locate(int(rows[np.argmax(bad)]))
        message = (f"Backtest data in segment {seg.name!r} failed its checksum or is missing; "
                   "run store.verify() for the report.")
        if skip:
            warnings.warn(f"{int(bad.sum())} damaged backtest(s) left out. {message}",
                          RuntimeWarning, stacklevel=4)
            return rows[~bad]
        raise StoreCorruptionError(message)

    def _stats_dict(self, index: Index, row: int) -> dict:
        """The stats dict of a live row; raises when the row sits in damaged data.

        The first few rows of a snapshot read their chunks; later ones warm the index (every
        stat column decoded once) and read cached columns.
        """
        if index.has_bad_rows:
            self._check_damage(index, np.array([row]))
        if not index.warm:
            self._row_misses += 1
            if self._row_misses > _ROW_MISSES_BEFORE_WARM:
                index.warm_up()
                if index.has_bad_rows:  # damage found while warming
                    self._check_damage(index, np.array([row]))
        return _frames.stats_dict(self, index, row, index.stat_row(row, self._chunks))

    def _frame(self, index: Index, rows: np.ndarray, compact_params: bool = False) -> pd.DataFrame:
        """A stats table of ``rows``; rows whose data turns out damaged are left out (warned)."""
        index.warm_up()
        rows = self._check_damage(index, rows, skip=True)
        return _frames.stats_frame(self, index, rows, compact_params)

    def _categories(self, kind: str, values: list, part: int | None) -> pd.CategoricalDtype:
        """Categorical dtype over a vocabulary (cached until the vocabulary grows)."""
        cached = self._category_cache.get((kind, part))
        if cached is None or cached[0] != len(values):
            items = values if part is None else [value[part] for value in values]
            dtype = pd.CategoricalDtype(pd.Index(items, dtype=_frames.STR))
            cached = self._category_cache[(kind, part)] = (len(values), dtype)
        return cached[1]

    def _notes(self) -> dict:
        return self._manifest.get("notes", {})

    def _timestamp(self, ns: int, utc: bool = False) -> pd.Timestamp:
        """A Timestamp for ``ns`` (shared: Timestamps are immutable and dates repeat a lot)."""
        stamps = self._stamps[utc]
        found = stamps.get(ns)
        if found is None:
            if len(stamps) > 65_536:
                stamps.clear()
            found = stamps[ns] = pd.Timestamp(ns, tz="UTC" if utc else None)
        return found

    def _json(self, kind: str, code: int) -> Any:
        """Parsed canonical JSON of a vocabulary entry; callers get a fresh copy each time."""
        copier = self._json_copiers[kind].get(code)
        if copier is None:
            copier = self._json_copier(kind, code)
        return copier()

    def _json_copier(self, kind: str, code: int):
        """A callable returning a fresh copy of a vocabulary entry's parsed JSON (cached).

        The entries are flat dicts (params, costs, settings) or lists of flat dicts (exit
        rules), so a copy of each dict is a full copy; parsing once and copying is ~10x
        cheaper than parsing per call.
        """
        value = self._vocab.values[kind][code]
        parsed = json.loads(value[0] if isinstance(value, tuple) else value)
        if isinstance(parsed, dict):
            copier = parsed.copy
        elif isinstance(parsed, list):
            copier = functools.partial(_copy_list, parsed)
        else:
            copier = functools.partial(_same, parsed)
        self._json_copiers[kind][code] = copier
        return copier

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.count()} backtests"
        return f"BacktestStore({self.url!r}, mode={self.mode!r}, {state})"


def open_store(url: str | os.PathLike = DEFAULT_URL, mode: str = "r", **options) -> BacktestStore:
    """Open (mode 'r') or open-or-create (mode 'r+') a backtest store at a path or fsspec URL."""
    return BacktestStore(url, mode=mode, **options)


def _bid_list(bid) -> list[int]:
    items = [bid] if isinstance(bid, (str, int, np.integer)) else list(bid)
    out = []
    for item in items:
        try:
            number = int(item)
        except (TypeError, ValueError):
            raise NotFoundError(f"{item!r} is not a backtest id (ids look like '1042').") from None
        if isinstance(item, float) or number <= 0:
            raise NotFoundError(f"{item!r} is not a backtest id (ids look like '1042').")
        out.append(number)
    return out


def _check_text(value: Any, what: str) -> None:
    """Text a manifest can hold: a str that encodes as UTF-8 (no lone surrogate)."""
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text, got {type(value).__name__}.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValidationError(f"{what} holds a character that cannot be stored "
                              f"({value[exc.start:exc.end]!r} at position {exc.start}, a lone "
                              "surrogate); remove it and save again.") from None


def _clean_tags(tags: Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        tags = [t for t in tags.split(",")]
    out = []
    for tag in tags:
        _check_text(tag, f"The tag {tag!r}")
        tag = tag.strip()
        if len(tag) > 64 or "," in tag:
            raise ValidationError(f"Tag {tag[:70]!r} must be at most 64 characters, no commas.")
        if tag and tag not in out:
            out.append(tag)
    return out


def _key_parts(i: int, key) -> tuple:
    """(symbol, strategy, params, exit_rule) of a 3- or 4-item key, else a clear error."""
    if not isinstance(key, (tuple, list)) or len(key) not in (3, 4):
        raise ValidationError(f"Key #{i} must be (symbol, strategy, params, exit_rule), "
                              f"got {key!r}.")
    return (*key, None) if len(key) == 3 else tuple(key)


def _is_hash(text: str) -> bool:
    return len(text) == 16 and all(c in "0123456789abcdef" for c in text)


def _check_names(symbol, strategy) -> None:
    if not isinstance(symbol, str) or not isinstance(strategy, str):
        raise ValidationError(f"symbol and strategy must be names, got {symbol!r}, "
                              f"{strategy!r}.")


def _as_list(value) -> list | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _copy_list(items: list) -> list:
    return [item.copy() if isinstance(item, dict) else item for item in items]


def _same(value):
    return value


def _bounded_put(memo: dict, key, value) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


__all__ = ["BacktestStore", "open_store", "DEFAULT_URL", "METRICS", "CODE_KINDS"]

"""The in-memory index of a store snapshot: key codes, backtest ids, lazily cached columns.

Rebuilt (reusing every already-loaded immutable segment) whenever the manifest changes.
Lookups binary-search a sorted key-hash array; columns are decoded once per segment and kept
contiguous (queries run at numpy speed) as the rows of (columns, rows) blocks: codes, times,
floats, so one backtest's values are one strided gather per block.
"""
from __future__ import annotations

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
import operator
import warnings
from dataclasses import dataclass, field

import numpy as np

from core.errors import StoreCorruptionError
from core.store._format import (CODE_KINDS, FLOAT_LEAD, HASHED_KINDS, KEY_KINDS,
                                LEGACY_CODE_KINDS, METRICS, TIME_COLUMNS)
from core.store._details import ChunkCache, read_stat_row
from core.store._scopes import LegacyScopes, first_starts, with_scope_columns
from core.store._segment import SegmentReader, open_segments

_MASK = (1 << 64) - 1
_MULT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5,
         0x85EBCA77C2B2AE63, 0xD6E8FEB86659FD93)
_FINAL = 0xFF51AFD7ED558CCD
#: Lookups of a snapshot answered by scanning the key columns before it sorts them.
SCANS_BEFORE_SORT = 2
#: Threads decoding stat columns when an index warms up.
DECODE_THREADS = 2
_FLAGGING = threading.Lock()  # guards the creation of a segment's damaged-row flags


def key_hash_scalar(codes: tuple[int, ...]) -> int:
    """The key hash of one KEY_KINDS code tuple (matches the array form; unrolled: masking
    the XOR of the products equals XOR-ing the masked products)."""
    s, t, p, e, c, d = codes
    h = ((s * _MULT[0]) ^ (t * _MULT[1]) ^ (p * _MULT[2]) ^ (e * _MULT[3]) ^ (c * _MULT[4])
         ^ (d * _MULT[5])) & _MASK
    h ^= h >> 31
    h = (h * _FINAL) & _MASK
    return h ^ (h >> 29)


def key_hash_rows(codes: np.ndarray) -> np.ndarray:
    """The key hash of each row of a (keys, len(KEY_KINDS)) array of non-negative codes (the array form
    of ``key_hash_scalar``; unsigned array arithmetic wraps without a warning)."""
    h = np.zeros(len(codes), np.uint64)
    for j in range(codes.shape[1]):  # column by column: each a contiguous row of a code block
        h ^= codes[:, j].astype(np.uint64) * _MULT_ROW[j]
    h ^= h >> np.uint64(31)
    h *= np.uint64(_FINAL)
    h ^= h >> np.uint64(29)
    return h


_MULT_ROW = np.array(_MULT, np.uint64)


class GlobalVocab:
    """Append-only vocabularies shared by all segments of one open handle."""

    def __init__(self) -> None:
        self.values: dict[str, list] = {kind: [] for kind in CODE_KINDS}
        self.codes: dict[str, dict] = {kind: {} for kind in CODE_KINDS}

    def remap(self, kind: str, local: list) -> np.ndarray:
        """Global codes for a segment's local vocabulary (hashed kinds are keyed by hash)."""
        codes, values = self.codes[kind], self.values[kind]
        out = np.empty(len(local), np.int32)
        hashed = kind in HASHED_KINDS
        for i, value in enumerate(local):
            key = value[1] if hashed else value
            found = codes.get(key)
            if found is None:
                found = codes[key] = len(values)
                values.append(tuple(value) if hashed else value)
            out[i] = found
        return out

    def lookup(self, kind: str, key: str) -> int:
        return self.codes[kind].get(key, -1)

    def lookup_many(self, kind: str, keys) -> list[int]:
        """Codes of many keys at once (-1 where unknown), as a list (callers stack columns
        into one array: one conversion instead of one per column)."""
        return list(map(self.codes[kind].get, keys, itertools.repeat(-1)))

@dataclass
class LoadedSegment:
    """A committed segment with its key codes mapped to global codes."""

    name: str
    entry: dict
    reader: SegmentReader | None
    error: StoreCorruptionError | None
    rows: int
    bids: np.ndarray
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # kind -> global int32 codes
    code_block: np.ndarray | None = None  # (kinds, rows) int32; ``codes`` are its rows
    key_ok: np.ndarray | None = None  # rows whose key codes could be read
    float_pos: dict[str, int] = field(default_factory=dict)
    blocks: dict[str, np.ndarray] = field(default_factory=dict)  # cached column -> values
    bad_rows: np.ndarray | None = None  # rows inside damaged chunks
    suspect_keys: tuple[set, set, set, set] | None = None  # keys a damaged part may hold

    @property
    def bid_range(self) -> tuple[int, int]:
        return bid_range(self.entry)


def bid_range(entry: dict) -> tuple[int, int]:
    """(first, last) backtest id a manifest entry covers."""
    lo = int(entry.get("bid_min", entry.get("bid0", 0)))
    return lo, int(entry.get("bid_max", entry.get("bid0", 0) + int(entry["rows"]) - 1))


def entry_bids(entry: dict, reader: SegmentReader | None) -> np.ndarray:
    if "bid0" in entry:
        return np.arange(entry["bid0"], entry["bid0"] + entry["rows"], dtype=np.int64)
    return reader.read("bids").astype(np.int64)


def load_segments(zstore, entries: list[dict], known: dict[str, LoadedSegment],
                  vocab: GlobalVocab, legacy: LegacyScopes | None) -> list[LoadedSegment]:
    """LoadedSegment per manifest entry, reusing ``known`` ones (segments are immutable).

    Rows of segments written before scopes get theirs by the ``legacy`` rule (``_scopes``).
    """
    missing = [e["name"] for e in entries if e["name"] not in known]
    opened = open_segments(zstore, missing) if missing else {}
    out = []
    for entry in entries:
        seg = known.get(entry["name"])
        if seg is None:
            seg = _load_segment(entry, opened[entry["name"]], vocab, legacy)
        out.append(seg)
    return out


def _load_segment(entry: dict, opened, vocab: GlobalVocab, legacy: LegacyScopes | None
                  ) -> LoadedSegment:
    rows = int(entry["rows"])
    if isinstance(opened, StoreCorruptionError):
        return _damaged_segment(entry, opened)
    reader: SegmentReader = opened
    try:
        if reader.rows != rows:
            raise StoreCorruptionError(f"Segment {entry['name']!r} holds {reader.rows} rows, the "
                                       f"manifest says {rows}.")
        bids = entry_bids(entry, reader)
        local_codes, key_ok = _read_codes(reader)
        attrs_vocab, local_codes = with_scope_columns(
            reader.attrs["vocab"], local_codes, lambda: legacy_stats(reader), legacy)
    except StoreCorruptionError as exc:
        return _damaged_segment(entry, exc, reader.attrs)
    block = np.empty((len(CODE_KINDS), rows), np.int32)
    every = bool(key_ok.all())
    for j, kind in enumerate(CODE_KINDS):
        mapping = vocab.remap(kind, attrs_vocab[kind])
        column = local_codes[:, j]
        if every:
            _map_codes(mapping, column, block[j])
        else:
            block[j] = np.where(key_ok, mapping[np.where(key_ok, column, 0)], -1)
    seg = LoadedSegment(name=entry["name"], entry=entry, reader=reader, error=None, rows=rows,
                        bids=bids, codes=dict(zip(CODE_KINDS, block)), code_block=block,
                        key_ok=key_ok,
                        float_pos={c: j for j, c in enumerate(reader.attrs["float_columns"])})
    if not key_ok.all():
        seg.bad_rows = ~key_ok
        seg.suspect_keys = _vocab_keys(reader.attrs)
        _warn(StoreCorruptionError(f"Segment {seg.name!r}: {int((~key_ok).sum())} rows have "
                                   "damaged key columns and are left out. Run store.verify()."))
    return seg


def _map_codes(mapping: np.ndarray, column: np.ndarray, out: np.ndarray) -> None:
    """Global codes of a local code column into ``out``; a plain copy when local codes are
    global already (the first segment a handle loads, e.g. a compacted store): twice as fast."""
    n = len(mapping)
    if n and mapping[0] == 0 and mapping[-1] == n - 1 and (n < 2 or bool(
            (mapping[1:] > mapping[:-1]).all())) and int(column.max(initial=0)) < n \
            and int(column.min(initial=0)) >= 0:
        out[:] = column
    else:
        np.take(mapping, column, out=out)


def _damaged_segment(entry: dict, error: StoreCorruptionError,
                     attrs: dict | None = None) -> LoadedSegment:
    _warn(error)
    attrs = attrs or getattr(error, "segment_attrs", None)
    return LoadedSegment(name=entry["name"], entry=entry, reader=None, error=error, rows=0,
                         bids=np.empty(0, np.int64), suspect_keys=_vocab_keys(attrs))


def _vocab_keys(attrs: dict | None) -> tuple[set, set, set, set] | None:
    """(symbols, strategies, params hashes, exit hashes) a segment's vocabulary names."""
    try:
        vocab = attrs["vocab"]
        return (set(vocab["symbol"]), set(vocab["strategy"]),
                {v[1] for v in vocab["params"]}, {v[1] for v in vocab["exit_rule"]})
    except (TypeError, KeyError, IndexError):
        return None


def _warn(error: StoreCorruptionError) -> None:
    warnings.warn(str(error), RuntimeWarning, stacklevel=4)


def legacy_first_starts(zstore, entries: list[dict]) -> dict[str, int]:
    """Each symbol's earliest start over the segments written before scopes (their rule's
    fact); unreadable segments are left out (verify() reports them)."""
    opened = open_segments(zstore, [e["name"] for e in entries]) if entries else {}
    parts = []
    for reader in opened.values():
        if isinstance(reader, StoreCorruptionError) or "scope" in reader.attrs["vocab"]:
            continue
        try:
            parts.append((reader.attrs["vocab"]["symbol"], reader.read("codes", (slice(None), 0)),
                          reader.read("times", (slice(None), 0))))
        except StoreCorruptionError:
            continue
    return first_starts(parts)


def legacy_stats(reader: SegmentReader) -> tuple[np.ndarray, np.ndarray]:
    """(times block, initial capital) of a segment written before scopes (their rule's input)."""
    capital = reader.attrs["float_columns"].index("initial_capital")
    return reader.read("times"), reader.read("floats", (slice(None), capital))


def _read_codes(reader: SegmentReader) -> tuple[np.ndarray, np.ndarray]:
    """The segment's code block; rows in damaged chunks are flagged instead of failing all."""
    try:
        return reader.read("codes"), np.ones(reader.rows, bool)
    except StoreCorruptionError:
        pass
    kinds = len(CODE_KINDS) if "scope" in reader.attrs["vocab"] else len(LEGACY_CODE_KINDS)
    out = np.zeros((reader.rows, kinds), np.int32)
    ok = np.ones(reader.rows, bool)
    step = reader.chunk_rows("codes")
    for j in range(kinds):
        for lo in range(0, reader.rows, step):
            hi = min(reader.rows, lo + step)
            try:
                out[lo:hi, j] = reader.read("codes", (slice(lo, hi), j))
            except StoreCorruptionError:
                ok[lo:hi] = False
    if not ok.any():
        raise reader.damaged(ValueError("every key chunk failed its checksum or is missing"))
    return out, ok


class Index:
    """Global view of one manifest version: rows of every readable segment in manifest order."""

    def __init__(self, segments: list[LoadedSegment], tombstones: list[int], vocab: GlobalVocab):
        self.vocab = vocab
        self.segments = segments
        self.damaged = [s for s in segments if s.error is not None]
        readable = [s for s in segments if s.error is None]
        self.readable = readable
        sizes = np.array([s.rows for s in readable], np.int64)
        self.starts = np.zeros(len(readable) + 1, np.int64)
        np.cumsum(sizes, out=self.starts[1:])
        self.n = int(self.starts[-1])
        self.bids = _concat([s.bids for s in readable], np.int64)
        #: (kinds, rows) int32 global codes; one backtest's codes are one strided gather
        self.code_block = (readable[0].code_block if len(readable) == 1 else
                           np.concatenate([s.code_block for s in readable], axis=1) if readable
                           else np.empty((len(CODE_KINDS), 0), np.int32))
        self.codes = dict(zip(CODE_KINDS, self.code_block))
        key_ok = _concat([s.key_ok for s in readable], bool)
        tomb = np.asarray(sorted(tombstones), np.int64)
        self.alive = key_ok & ~np.isin(self.bids, tomb) if len(tomb) else key_ok
        self._bid_order = None if _strictly_increasing(self.bids) else np.argsort(self.bids)
        self._key_index: tuple[np.ndarray, np.ndarray] | None = None  # built on demand
        self._scans = 0  # lookups answered by a scan (see find_latest)
        self._latest: np.ndarray | None = None
        self._latest_mask: np.ndarray | None = None
        self.columns: dict[str, np.ndarray] = {}
        self.param_columns: dict[str, str] = {}
        for seg in readable:
            self.param_columns.update(seg.reader.attrs.get("param_columns", {}))
        #: in table order: metrics (and any other stat), param columns, FLOAT_LEAD
        self.float_columns = _table_order(_union([list(s.float_pos) for s in readable]),
                                          self.param_columns)
        self.stat_names = [*TIME_COLUMNS, *self.float_columns]  # what a stats dict reads
        self.warm = False  # every stat column decoded and cached in the two blocks below
        self.time_block: np.ndarray | None = None  # (3, rows) int64 ns, once warm
        self.float_block: np.ndarray | None = None  # (float columns, rows) float64, once warm
        #: the float block as a DataFrame, shared by tables of every row (see _frames)
        self.float_frame = None
        #: some rows sit in damaged chunks (found while loading keys or columns)
        self.has_bad_rows = any(seg.bad_rows is not None for seg in readable)
        self.stat_layout = StatLayout(self.stat_names, self.param_columns)

    # -- keys ---------------------------------------------------------------------------------
    def _sorted_keys(self) -> tuple[np.ndarray, np.ndarray]:
        """(key hashes sorted, their rows): live rows by key hash, a key's versions in id
        order (built on first use)."""
        if self._key_index is None:
            rows = np.flatnonzero(self.alive)
            keys = self.code_block[:len(KEY_KINDS)]
            hashes = key_hash_rows((keys if len(rows) == self.n else keys[:, rows]).T)
            order = np.argsort(hashes)  # quicksort; runs of equal hashes are put in id order
            sorted_hash = hashes[order]
            ties = np.flatnonzero(sorted_hash[1:] == sorted_hash[:-1])
            if len(ties):
                in_run = np.zeros(len(order), bool)
                in_run[ties] = in_run[ties + 1] = True
                at = np.flatnonzero(in_run)
                order[at] = order[at][np.lexsort((self.bids[rows[order[at]]], sorted_hash[at]))]
            self._key_index = sorted_hash, rows[order]
        return self._key_index

    def _candidates(self, codes: tuple[int, ...]) -> np.ndarray:
        """Rows whose key hash equals that of ``codes``, oldest version first."""
        sorted_hash, sorted_rows = self._sorted_keys()
        h = np.uint64(key_hash_scalar(codes))
        lo = np.searchsorted(sorted_hash, h, side="left")
        hi = np.searchsorted(sorted_hash, h, side="right")
        return sorted_rows[lo:hi]

    def _matching(self, rows: np.ndarray, codes: tuple[int, ...]) -> np.ndarray:
        """The rows of ``rows`` whose key codes equal ``codes`` (hash collisions dropped)."""
        keep = (self.code_block[:len(KEY_KINDS), rows] == np.array(codes)[:, None]).all(axis=0)
        return rows[keep]

    def find_latest(self, codes: tuple[int, ...]) -> int:
        """Global row of the newest live version of a key, or -1.

        The first lookups of a snapshot scan the key columns instead of sorting every key
        hash: a process that opens the store for one answer never pays for the sort.
        """
        if self._key_index is None and self._scans < SCANS_BEFORE_SORT:
            self._scans += 1
            match = self.alive & (self.code_block[:len(KEY_KINDS)]
                                  == np.array(codes)[:, None]).all(axis=0)
            rows = np.flatnonzero(match)
            return int(rows[np.argmax(self.bids[rows])]) if len(rows) else -1
        rows = self._matching(self._candidates(codes), codes)
        return int(rows[-1]) if len(rows) else -1

    def find_versions(self, codes: tuple[int, ...]) -> np.ndarray:
        """Global rows of every live version of a key, oldest first."""
        return self._matching(self._candidates(codes), codes)

    def find_many(self, codes: np.ndarray) -> np.ndarray:
        """Rows of the newest live version of each key of a (keys, len(KEY_KINDS)) code array, in input
        order; keys not stored are left out."""
        if not len(codes):
            return np.empty(0, np.int64)
        sorted_hash, sorted_rows = self._sorted_keys()
        hashes = key_hash_rows(codes)
        at = np.searchsorted(sorted_hash, hashes, side="right") - 1
        rows = sorted_rows[np.maximum(at, 0)] if len(sorted_rows) else np.full(len(codes), -1)
        hit = (at >= 0) & (sorted_hash[np.maximum(at, 0)] == hashes) if len(sorted_rows) \
            else np.zeros(len(codes), bool)
        hit[hit] = (self.code_block[:len(KEY_KINDS), rows[hit]].T == codes[hit]).all(axis=1)
        for i in np.flatnonzero(~hit & (at >= 0)):  # a collision or a miss: check exactly
            rows[i] = self.find_latest(tuple(int(c) for c in codes[i]))
            hit[i] = rows[i] >= 0
        return rows[hit].astype(np.int64)

    def latest_rows(self) -> np.ndarray:
        """Rows that are the newest live version of their key, in commit order."""
        if self._latest is None:
            h, rows = self._sorted_keys()
            last = np.ones(len(h), bool)
            last[:-1] = h[1:] != h[:-1]
            same_hash = ~last[:-1]
            if same_hash.any():
                differs = np.zeros(len(h) - 1, bool)
                for kind in KEY_KINDS:
                    col = self.codes[kind]
                    differs |= col[rows[1:]] != col[rows[:-1]]
                if (same_hash & differs).any():  # a hash collision: group exactly instead
                    return self._exact_latest()
            self._latest = np.sort(rows[last])
        return self._latest

    def latest_mask(self) -> np.ndarray:
        """Boolean mask of latest_rows() over every row (cached)."""
        if self._latest_mask is None:
            mask = np.zeros(self.n, bool)
            mask[self.latest_rows()] = True
            self._latest_mask = mask
        return self._latest_mask

    def _exact_latest(self) -> np.ndarray:
        rows = np.flatnonzero(self.alive)
        keys = [self.codes[k][rows] for k in reversed(KEY_KINDS)]
        order = np.lexsort([self.bids[rows], *keys])
        sorted_keys = np.stack([k[order] for k in keys])
        last = np.ones(len(rows), bool)
        last[:-1] = (sorted_keys[:, 1:] != sorted_keys[:, :-1]).any(axis=0)
        self._latest = np.sort(rows[order][last])
        return self._latest

    # -- ids ----------------------------------------------------------------------------------
    def row_of_bid(self, bid: int) -> int:
        """Global row of a backtest id (tombstoned ids included), -1 when unknown."""
        if self._bid_order is None:
            i = int(np.searchsorted(self.bids, bid))
            return i if i < self.n and self.bids[i] == bid else -1
        i = int(np.searchsorted(self.bids[self._bid_order], bid))
        if i < self.n and self.bids[self._bid_order[i]] == bid:
            return int(self._bid_order[i])
        return -1

    def rows_of_bids(self, bids: np.ndarray) -> np.ndarray:
        order = self._bid_order if self._bid_order is not None else None
        sorted_bids = self.bids if order is None else self.bids[order]
        pos = np.searchsorted(sorted_bids, bids)
        pos = np.minimum(pos, max(self.n - 1, 0))
        found = (self.n > 0) & (sorted_bids[pos] == bids) if self.n else np.zeros(len(bids), bool)
        rows = pos if order is None else order[pos]
        return np.where(found, rows, -1)

    def damaged_segment_of_bid(self, bid: int) -> LoadedSegment | None:
        for seg in self.damaged:
            lo, hi = seg.bid_range
            if lo <= bid <= hi:
                return seg
        return None

    def suspect_segment(self, key: tuple[str, str, str, str], newer_than: int
                        ) -> LoadedSegment | None:
        """A damaged segment that may hold a version of ``key`` newer than bid ``newer_than``.

        Used so that a lookup never silently answers with an older version (or None) when the
        latest one sits in damaged data. Segments whose vocabulary is unreadable are assumed
        to hold nothing (their loss is reported by the load warning and verify()).
        """
        for seg in self.segments:
            if seg.suspect_keys is None or seg.bid_range[1] <= newer_than:
                continue
            if all(part in names for part, names in zip(key, seg.suspect_keys)):
                return seg
        return None

    def locate(self, row: int) -> tuple[LoadedSegment, int]:
        if len(self.readable) == 1:  # a compacted store
            return self.readable[0], row
        k = int(np.searchsorted(self.starts, row, "right")) - 1
        return self.readable[k], row - int(self.starts[k])

    # -- columns ------------------------------------------------------------------------------
    def column(self, name: str) -> np.ndarray:
        """A whole column (float or time) over every row, decoded once and cached."""
        found = self.columns.get(name)
        if found is None:
            dtype = np.int64 if name in TIME_COLUMNS else np.float64
            found = _concat([_segment_column(seg, name) for seg in self.readable], dtype)
            self._keep(name, found)
        return found

    def _keep(self, name: str, values: np.ndarray) -> None:
        """Cache a column; segments keep views of it (no second copy in memory)."""
        self.columns[name] = values
        for seg, lo, hi in zip(self.readable, self.starts[:-1], self.starts[1:]):
            seg.blocks[name] = values[lo:hi]
        self.has_bad_rows = any(seg.bad_rows is not None for seg in self.readable)

    def damaged_rows(self) -> np.ndarray:
        """Rows whose data failed a checksum while loading columns (or keys)."""
        parts = [s.bad_rows if s.bad_rows is not None else np.zeros(s.rows, bool)
                 for s in self.readable]
        return _concat(parts, bool)

    def warm_up(self) -> None:
        """Decode every stat column into two row-major blocks (one row per column).

        Each column stays contiguous (queries scan it at numpy speed), and one backtest's
        values are one strided ``tolist`` per block instead of a call per column.
        """
        if not self.warm:
            self.time_block = self._block(TIME_COLUMNS, np.int64)
            self.float_block = self._block(self.float_columns, np.float64)
            self.warm = True

    def _block(self, names, dtype) -> np.ndarray:
        """Columns ``names`` as one (columns, rows) block, each segment's columns decoded on a
        few threads (the codecs release the GIL)."""
        block = np.empty((len(names), self.n), dtype)

        def fill(j: int) -> None:
            for seg, lo, hi in zip(self.readable, self.starts[:-1], self.starts[1:]):
                block[j, lo:hi] = _segment_column(seg, names[j])

        with ThreadPoolExecutor(DECODE_THREADS) as pool:
            list(pool.map(fill, range(len(names))))
        for j, name in enumerate(names):
            self._keep(name, block[j])
        return block

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(codes, times, floats, bids) of ``rows`` of a warm index, the first three as
        (columns, rows) blocks. Every row in order gives the index's own arrays (callers copy
        what they keep), else new gathered ones."""
        if len(rows) == self.n and _strictly_increasing(rows):
            return self.code_block, self.time_block, self.float_block, self.bids
        return (self.code_block.take(rows, axis=1), self.time_block.take(rows, axis=1),
                self.float_block.take(rows, axis=1), self.bids[rows])

    def stat_row(self, row: int, chunks: ChunkCache) -> list:
        """One backtest's stat_names values as Python numbers (the blocks once warm, else the
        row's time and float chunks, decoded through ``chunks``)."""
        if self.warm:
            return self.time_block[:, row].tolist() + self.float_block[:, row].tolist()
        seg, local = self.locate(row)
        times, floats = read_stat_row(seg, local, chunks)
        floats = floats.tolist()
        pos = seg.float_pos
        return [*times.tolist(), *(floats[pos[name]] if name in pos else np.nan
                                   for name in self.float_columns)]


class StatLayout:
    """Where a stats dict finds each stat value: positions in ``Index.stat_row``'s list.

    Metrics are picked with one ``itemgetter`` call (a stats dict holds them twice: at the
    top level after the lead columns such as initial capital, and under ``metrics``); param
    columns are few and kept only when not NaN (the columns of other strategies).
    """

    def __init__(self, stat_names: list[str], param_columns: dict[str, str]):
        times = len(TIME_COLUMNS)
        floats = [(pos, name) for pos, name in enumerate(stat_names) if pos >= times]
        plain = [(pos, name) for pos, name in floats if name not in param_columns]
        metrics = [(pos, name) for pos, name in plain if name not in FLOAT_LEAD]
        self.lead = tuple((name, pos) for pos, name in plain if name in FLOAT_LEAD)
        self.metric_names = tuple(name for _, name in metrics)
        self.metrics = _picker([pos for pos, _ in metrics])
        self.params = tuple((name, pos) for pos, name in floats if name in param_columns)


def _picker(positions: list[int]):
    """A callable returning the items at ``positions`` of a list, always as a tuple."""
    if len(positions) > 1:
        return operator.itemgetter(*positions)
    return lambda values: tuple(values[pos] for pos in positions)


def _segment_column(seg: LoadedSegment, name: str) -> np.ndarray:
    """One stat column of a segment (NaN for a float column the segment does not have)."""
    cached = seg.blocks.get(name)
    if cached is not None:
        return cached
    if name in TIME_COLUMNS:
        field, j, dtype = "times", TIME_COLUMNS.index(name), np.int64
    elif name in seg.float_pos:
        field, j, dtype = "floats", seg.float_pos[name], np.float64
    else:
        return np.full(seg.rows, np.nan)
    try:
        return seg.reader.read(field, (slice(None), j)).astype(dtype, copy=False)
    except StoreCorruptionError:
        return _column_by_chunks(seg, field, j, dtype)


def _column_by_chunks(seg: LoadedSegment, field: str, j: int, dtype) -> np.ndarray:
    """Load a column chunk by chunk; damaged chunks become NaN/0 and their rows are flagged."""
    out = np.zeros(seg.rows, dtype) if dtype is np.int64 else np.full(seg.rows, np.nan)
    with _FLAGGING:  # columns decode on several threads
        if seg.bad_rows is None:
            seg.bad_rows = np.zeros(seg.rows, bool)
    try:
        step = seg.reader.chunk_rows(field)
    except StoreCorruptionError as exc:  # unreadable array metadata: no row of it is served
        seg.bad_rows[:] = True
        _warn(exc)
        return out
    for lo in range(0, seg.rows, step):
        hi = min(seg.rows, lo + step)
        try:
            out[lo:hi] = seg.reader.read(field, (slice(lo, hi), j))
        except StoreCorruptionError as exc:
            seg.bad_rows[lo:hi] = True
            _warn(exc)
    return out


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    """One array of the parts (no copy for a single part: index arrays are never written)."""
    if not parts:
        return np.empty(0, dtype)
    if len(parts) == 1:
        return parts[0].astype(dtype, copy=False)
    return np.concatenate(parts).astype(dtype, copy=False)


def _strictly_increasing(values: np.ndarray) -> bool:
    return len(values) < 2 or bool((values[1:] > values[:-1]).all())


def _table_order(names: list[str], param_columns: dict[str, str]) -> list[str]:
    """Float columns as tables show them: stats, then param columns, then FLOAT_LEAD."""
    stats = [c for c in names if c not in param_columns and c not in FLOAT_LEAD]
    return [*stats, *(c for c in names if c in param_columns), *FLOAT_LEAD]


def _union(lists: list[list[str]]) -> list[str]:
    seen: dict[str, None] = {c: None for c in (*FLOAT_LEAD, *METRICS)}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return list(seen)

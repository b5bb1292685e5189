"""The in-memory index of a store snapshot: key codes, backtest ids, lazily cached columns.

Rebuilt (reusing every already-loaded immutable segment) whenever the manifest changes; a
version that only appends segments extends the previous one's sorted key index and fills its
block buffers' spare room instead of sorting and copying again. Lookups enter a sorted
key-hash array through a table of bucket bounds (bulk lookups in one compiled pass,
``_bulkfind``); columns are decoded once per segment and kept contiguous (queries run at numpy
speed) as the rows of (columns, rows) blocks: codes, times, floats, so one backtest's values
are one strided gather per block.
"""
from __future__ import annotations

import itertools
import operator
import warnings
from dataclasses import dataclass, field

import numpy as np

from core.errors import StoreCorruptionError
from core.store._format import (CODE_KINDS, FLOAT_LEAD, HASHED_KINDS, METRICS,
                                TIME_COLUMNS)
from core.store._details import ChunkCache, read_local_array, read_stat_row
from core.store._segment import SegmentReader, open_segments

_MASK = (1 << 64) - 1
_MULT = (0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5)
_FINAL = 0xFF51AFD7ED558CCD
KEY_KINDS = CODE_KINDS[:4]
_SCANS_BEFORE_SORT = 2  # lookups answered by a scan before the key index is sorted


def key_hash_scalar(codes: tuple[int, int, int, int]) -> int:
    """The key hash of one (symbol, strategy, params, exit) code tuple (matches the array form;
    unrolled: masking the XOR of the products equals XOR-ing the masked products)."""
    s, t, p, e = codes
    h = ((s * _MULT[0]) ^ (t * _MULT[1]) ^ (p * _MULT[2]) ^ (e * _MULT[3])) & _MASK
    h ^= h >> 31
    h = (h * _FINAL) & _MASK
    return h ^ (h >> 29)


def key_hash_rows(codes: np.ndarray) -> np.ndarray:
    """The key hash of each row of a (keys, 4) array of non-negative codes (the array form
    of ``key_hash_scalar``; unsigned array arithmetic wraps without a warning)."""
    h = np.bitwise_xor.reduce(codes.astype(np.uint64) * _MULT_ROW, axis=1)
    h ^= h >> np.uint64(31)
    h *= np.uint64(_FINAL)
    h ^= h >> np.uint64(29)
    return h


_MULT_ROW = np.array(_MULT, np.uint64)


def hex_words(texts: list) -> np.ndarray | None:
    """Each text of 16 lowercase hex digits as the int64 of its 8 bytes (native order: these
    are in-memory keys only), or None when any text is not one. A handful of C calls over
    the joined text instead of a call per text: each text is 16 characters exactly when
    the separators sit every 17th character (the texts hold no separator once ``fromhex``
    has read them as hex digits alone; it skips spaces, which the byte count catches).
    """
    try:
        joined = "|".join(texts)
    except TypeError:
        return None
    if len(joined) != 17 * len(texts) - 1 or joined[16::17] != "|" * (len(texts) - 1) \
            or joined != joined.lower():
        return None
    try:
        raw = bytes.fromhex(joined.replace("|", ""))
    except ValueError:
        return None
    return np.frombuffer(raw, np.int64) if len(raw) == 8 * len(texts) else None


class GlobalVocab:
    """Append-only vocabularies shared by all segments of one open handle."""

    def __init__(self) -> None:
        self.values: dict[str, list] = {kind: [] for kind in CODE_KINDS}
        self.codes: dict[str, dict] = {kind: {} for kind in CODE_KINDS}
        self._tables: dict[str, tuple[np.ndarray, int]] = {}  # see lookup_hashes

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

    def lookup_hashes(self, kind: str, hashes: list) -> np.ndarray | list[int]:
        """``lookup_many`` of a hashed kind's hashes: when every one is 16 lowercase hex
        digits (as ``stable_hash`` writes them), decoded at once and looked up as integers in
        a compiled table (a dict lookup per hash costs several cache misses: ~1 us each
        on a cold cache). Imports numba (``_bulkfind``): bulk lookups only.
        """
        words = hex_words(hashes)
        if words is None:
            return self.lookup_many(kind, hashes)
        from core.store._bulkfind import table_codes_nb

        return table_codes_nb(self._hash_table(kind), words)

    def _hash_table(self, kind: str) -> np.ndarray:
        """The table of ``kind``'s hashes as integers (``_bulkfind.table_insert_nb``), with
        the hashes added to the vocabulary since it was last used; rebuilt twice as large
        once more than half full. Hashes that are not hex text stay out of it."""
        from core.store._bulkfind import table_insert_nb

        values = self.values[kind]
        table, known = self._tables.get(kind, (None, 0))
        if table is not None and known == len(values):
            return table
        if table is None or 2 * len(values) > len(table):
            table = np.full((1 << max(10, (2 * len(values)).bit_length()), 2), -1, np.int64)
            known = 0
        new = [value[1] for value in values[known:]]
        words = hex_words(new)
        codes = np.arange(known, len(values))
        if words is None:  # some are not hex text: insert those that are
            singles = [hex_words([text]) for text in new]
            kept = [i for i, word in enumerate(singles) if word is not None]
            words, codes = np.array([singles[i][0] for i in kept], np.int64), codes[kept]
        table_insert_nb(table, words, codes)
        self._tables[kind] = table, len(values)
        return table


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
        return int(self.entry.get("bid_min", self.entry.get("bid0", 0))), int(
            self.entry.get("bid_max", self.entry.get("bid0", 0) + int(self.entry["rows"]) - 1))


def entry_bids(entry: dict, reader: SegmentReader | None) -> np.ndarray:
    if "bid0" in entry:
        return np.arange(entry["bid0"], entry["bid0"] + entry["rows"], dtype=np.int64)
    bids = read_local_array(reader, "bids")
    return (reader.read("bids") if bids is None else bids).astype(np.int64)


def load_segments(zstore, entries: list[dict], known: dict[str, LoadedSegment],
                  vocab: GlobalVocab) -> list[LoadedSegment]:
    """LoadedSegment per manifest entry, reusing ``known`` ones (segments are immutable)."""
    missing = [e["name"] for e in entries if e["name"] not in known]
    opened = open_segments(zstore, missing) if missing else {}
    out = []
    for entry in entries:
        seg = known.get(entry["name"])
        if seg is None:
            seg = _load_segment(entry, opened[entry["name"]], vocab)
        out.append(seg)
    return out


def _load_segment(entry: dict, opened, vocab: GlobalVocab) -> LoadedSegment:
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
    except StoreCorruptionError as exc:
        return _damaged_segment(entry, exc, reader.attrs)
    attrs_vocab = reader.attrs["vocab"]
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


def _read_codes(reader: SegmentReader) -> tuple[np.ndarray, np.ndarray]:
    """The segment's code block; rows in damaged chunks are flagged instead of failing all."""
    try:
        codes = read_local_array(reader, "codes")
        return (reader.read("codes") if codes is None else codes), np.ones(reader.rows, bool)
    except StoreCorruptionError:
        pass
    out = np.zeros((reader.rows, len(CODE_KINDS)), np.int32)
    ok = np.ones(reader.rows, bool)
    step = reader.chunk_rows("codes")
    for j in range(len(CODE_KINDS)):
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

    def __init__(self, segments: list[LoadedSegment], tombstones: list[int], vocab: GlobalVocab,
                 previous: Index | None = None):
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
        self._buckets: tuple[np.ndarray, int] | None = None  # _bucket_starts of the key index
        self._scans = 0
        self._latest: np.ndarray | None = None
        self._latest_mask: np.ndarray | None = None
        self.columns: dict[str, np.ndarray] = {}
        self.float_columns = _union([list(s.float_pos) for s in readable])
        self.stat_names = [*TIME_COLUMNS, *self.float_columns]  # what a stats dict reads
        self.warm = False  # every stat column decoded and cached in the two blocks below
        self.time_block: np.ndarray | None = None  # (3, rows) int64 ns, once warm
        self.float_block: np.ndarray | None = None  # (float columns, rows) float64, once warm
        self._shelves: dict[str, _Shelf] = {}  # the blocks' buffers (see _block)
        self._extends, self._grows = _reusable(previous, readable, self.float_columns)
        #: some rows sit in damaged chunks (found while loading keys or columns)
        self.has_bad_rows = any(seg.bad_rows is not None for seg in readable)
        self.param_columns: dict[str, str] = {}
        for seg in readable:
            self.param_columns.update(seg.reader.attrs.get("param_columns", {}))
        self.stat_layout = StatLayout(self.stat_names, self.param_columns)

    # -- keys ---------------------------------------------------------------------------------
    @property
    def sorted_hash(self) -> np.ndarray:
        return self._sorted_keys()[0]

    @property
    def sorted_rows(self) -> np.ndarray:
        return self._sorted_keys()[1]

    def _sorted_keys(self) -> tuple[np.ndarray, np.ndarray]:
        if self._key_index is None:
            self._key_index = self._build_key_index()
        return self._key_index

    def _build_key_index(self) -> tuple[np.ndarray, np.ndarray]:
        """Rows sorted by key hash, equal hashes (a key's versions) in id order.

        A snapshot that appends segments to one whose index was sorted extends that index
        (see ``_extended_key_index``) instead of sorting every hash again.
        """
        extends, self._extends = self._extends, None
        if extends is not None and self._bid_order is None:  # ids rise with the rows
            return self._extended_key_index(*extends)
        every = bool(self.alive.all())
        rows = np.arange(self.n) if every else np.flatnonzero(self.alive)
        keys = self.code_block[:len(KEY_KINDS)]
        hashes = key_hash_rows((keys if every else keys[:, rows]).T)
        order = np.argsort(hashes)  # quicksort; the rare equal-hash runs are fixed below
        sorted_hash = hashes[order]
        ties = np.flatnonzero(sorted_hash[1:] == sorted_hash[:-1])
        if len(ties):  # runs of equal hashes (a key's versions): order them by backtest id
            in_run = np.zeros(len(order), bool)
            in_run[ties] = in_run[ties + 1] = True
            positions = np.flatnonzero(in_run)
            run_rows = order[positions]
            order[positions] = run_rows[np.lexsort((self.bids[rows[run_rows]],
                                                    sorted_hash[positions]))]
        return sorted_hash, rows[order]

    def _extended_key_index(self, hashes: np.ndarray, rows: np.ndarray, known: int
                            ) -> tuple[np.ndarray, np.ndarray]:
        """The sorted key index of the first ``known`` rows (``hashes``, ``rows``) with the
        rows after them merged in: a merge instead of a sort (~0.2 s at a million rows).

        Rows deleted since then are dropped. The newer rows hold newer ids, so each goes
        after the older versions of its key, and a stable sort keeps their own id order.
        """
        kept = self.alive[rows]
        if not kept.all():
            hashes, rows = hashes[kept], rows[kept]
        added = known + np.flatnonzero(self.alive[known:])
        added_hashes = key_hash_rows(self.code_block[:len(KEY_KINDS), added].T)
        order = np.argsort(added_hashes, kind="stable")
        at = np.searchsorted(hashes, added_hashes[order], "right")
        return np.insert(hashes, at, added_hashes[order]), np.insert(rows, at, added[order])

    def find_latest(self, codes: tuple[int, int, int, int]) -> int:
        """Global row of the newest live version of a key, or -1.

        The first few lookups of a fresh snapshot scan the key columns (a few ms at a million
        rows) instead of sorting every key hash (~0.1 s): a process that opens the store for
        one answer never pays for the sort. A snapshot extending a sorted one merges at once
        (cheaper than a scan). Later lookups use the sorted index, entered through its bucket
        table. Python ints throughout (``item``/``tolist``): numpy scalars and calls cost
        more than the search itself.
        """
        if self._key_index is None:
            if self._extends is None and self._scans < _SCANS_BEFORE_SORT:
                self._scans += 1
                return self._scan_latest(codes)
            self._key_index = self._build_key_index()
        sorted_hash, sorted_rows = self._key_index
        h = key_hash_scalar(codes)
        starts, shift = self._bucket_table()
        bucket = h >> shift
        key_item = self.code_block.item
        for i in range(starts.item(bucket + 1) - 1, starts.item(bucket) - 1, -1):
            if sorted_hash.item(i) == h:  # equal hashes sit in id order: newest first here
                row = sorted_rows.item(i)
                if (key_item(0, row), key_item(1, row), key_item(2, row),
                        key_item(3, row)) == codes:
                    return row
        return -1

    def _bucket_table(self) -> tuple[np.ndarray, int]:
        if self._buckets is None:
            self._buckets = _bucket_starts(self._sorted_keys()[0])
        return self._buckets

    def _scan_latest(self, codes: tuple[int, int, int, int]) -> int:
        match = self.alive.copy()
        for kind, code in zip(KEY_KINDS, codes):
            match &= self.codes[kind] == code
        rows = np.flatnonzero(match)
        return int(rows[np.argmax(self.bids[rows])]) if len(rows) else -1

    def find_versions(self, codes: tuple[int, int, int, int]) -> np.ndarray:
        """Global rows of every live version of a key, oldest first."""
        h = np.uint64(key_hash_scalar(codes))
        lo = int(np.searchsorted(self.sorted_hash, h, "left"))
        hi = int(np.searchsorted(self.sorted_hash, h, "right"))
        rows = self.sorted_rows[lo:hi]
        match = np.ones(len(rows), bool)
        for kind, code in zip(KEY_KINDS, codes):
            match &= self.codes[kind][rows] == code
        rows = rows[match]
        return rows[np.argsort(self.bids[rows], kind="stable")]

    def find_gathered(self, codes: np.ndarray) -> tuple[np.ndarray, tuple]:
        """Bulk lookup on a warm index: the rows of the keys' newest live versions (keys not
        stored are left out; input order) and ``(codes, times, floats, bids, (id offsets, id
        text))`` of those rows, in one compiled pass (``_bulkfind``).

        The stored codes of each found row confirm it; after a hash collision the pass runs
        again checking the codes of every equal hash.
        """
        from core.store._bulkfind import find_gather_nb

        sorted_hash, sorted_rows = self._sorted_keys()
        starts, shift = self._bucket_table()
        args = (np.ascontiguousarray(codes, np.int64), _MULT_ROW, np.uint64(_FINAL), starts,
                shift, sorted_hash, sorted_rows, self.code_block,
                self._shelves["times"].buffer, self._shelves["floats"].buffer, self.bids)
        confirmed, rows, *gathered = find_gather_nb(*args, False)
        if not confirmed:
            confirmed, rows, *gathered = find_gather_nb(*args, True)
        block_codes, times, floats, bids, offsets, text = gathered
        return rows, (block_codes, times, floats, bids, (offsets, text))

    def latest_rows(self) -> np.ndarray:
        """Rows that are the newest live version of their key, in commit order."""
        if self._latest is None:
            h, rows = self.sorted_hash, self.sorted_rows
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
            self.time_block = self._block("times", TIME_COLUMNS, np.int64)
            self.float_block = self._block("floats", self.float_columns, np.float64)
            self.warm = True
            self._grows = None

    def _block(self, kind: str, names, dtype) -> np.ndarray:
        """Columns ``names`` as one block, segment by segment: each segment's array is
        decoded once (see ``_segment_column``) and dropped before the next.

        The block is a view of a buffer with room to grow. A snapshot that appends segments
        to a warm one fills only the new rows of that snapshot's buffer (its views never see
        them) while it has room: copying a million rows' blocks took ~60 ms per commit.
        """
        shelf, ready = _shelf_for(self._grows, kind, self.n)
        if shelf is None:
            shelf, ready = _Shelf(np.empty((len(names), self.n + self.n // 8), dtype)), 0
        block = shelf.buffer[:, :self.n]
        for seg, lo, hi in zip(self.readable, self.starts[:-1], self.starts[1:]):
            if hi <= ready:
                continue
            wholes: dict[str, np.ndarray | None] = {}
            for j, name in enumerate(names):
                block[j, lo:hi] = _segment_column(seg, name, wholes)
        shelf.filled = self.n
        self._shelves[kind] = shelf
        for j, name in enumerate(names):
            self._keep(name, block[j])
        return block

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(codes, times, floats, bids) of ``rows`` of a warm index, the first three as new
        (columns, rows) blocks. Taken from the blocks' whole buffers: numpy copies a strided
        view (a block of a buffer with room) whole before a ``take``."""
        return (self.code_block.take(rows, axis=1),
                self._shelves["times"].buffer.take(rows, axis=1),
                self._shelves["floats"].buffer.take(rows, axis=1), self.bids[rows])

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


def _segment_column(seg: LoadedSegment, name: str, wholes: dict | None = None) -> np.ndarray:
    """One stat column of a segment. With ``wholes`` (a block being built), the local
    segment's whole times or floats array is decoded once, straight from its shard files,
    and every column sliced from it: zarr's per-chunk cost was most of decoding a million
    rows' columns."""
    cached = seg.blocks.get(name)
    if cached is not None:
        return cached
    if name in TIME_COLUMNS:
        field, j, dtype = "times", TIME_COLUMNS.index(name), np.int64
    elif name in seg.float_pos:
        field, j, dtype = "floats", seg.float_pos[name], np.float64
    else:
        return np.full(seg.rows, np.nan)
    if wholes is not None:
        if seg.name not in wholes:
            wholes[seg.name] = _local_whole(seg, field)
        if wholes[seg.name] is not None:
            return wholes[seg.name][:, j].astype(dtype, copy=False)
    try:
        return seg.reader.read(field, (slice(None), j)).astype(dtype, copy=False)
    except StoreCorruptionError:
        return _column_by_chunks(seg, field, j, dtype)


def _local_whole(seg: LoadedSegment, field: str) -> np.ndarray | None:
    """A segment's whole array from its local shard files; None when not local or damaged
    (the column-by-column path then serves what is intact and flags the rest)."""
    try:
        return read_local_array(seg.reader, field)
    except StoreCorruptionError:
        return None


def _column_by_chunks(seg: LoadedSegment, field: str, j: int, dtype) -> np.ndarray:
    """Load a column chunk by chunk; damaged chunks become NaN/0 and their rows are flagged."""
    out = np.zeros(seg.rows, dtype) if dtype is np.int64 else np.full(seg.rows, np.nan)
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


def _appends_to(before: list[LoadedSegment], readable: list[LoadedSegment]) -> bool:
    """True when ``readable`` is the segments ``before`` followed by new ones: segments are
    immutable, so the earlier snapshot's rows are this one's first rows, with equal codes."""
    return len(before) <= len(readable) and all(a is b for a, b in zip(before, readable))


def _reusable(previous: Index | None, readable: list[LoadedSegment], float_columns: list[str]
              ) -> tuple[tuple | None, tuple | None]:
    """What a snapshot appending segments to ``previous`` reuses: the sorted key index
    (hashes, rows, row count; see ``_build_key_index``) and the block buffers (buffers, row
    count, for the same float columns; see ``_block``) of the latest earlier snapshots that
    built them. None for each it cannot reuse."""
    if previous is None or not _appends_to(previous.readable, readable):
        return None, None
    extends = ((*previous._key_index, previous.n) if previous._key_index is not None
               else previous._extends)
    grows = None
    if previous.float_columns == float_columns:
        grows = (previous._shelves, previous.n) if previous.warm else previous._grows
    return extends, grows


class _Shelf:
    """A block's buffer, wider than the rows it holds; ``filled`` rows of it hold data."""

    __slots__ = ("buffer", "filled")

    def __init__(self, buffer: np.ndarray):
        self.buffer, self.filled = buffer, 0


def _shelf_for(grows: tuple[dict[str, _Shelf], int] | None, kind: str, rows: int
               ) -> tuple[_Shelf | None, int]:
    """An earlier snapshot's buffer of ``kind`` and how many rows it already holds, when it
    has room for ``rows`` and no other snapshot has written past those rows."""
    if grows is None or kind not in grows[0]:
        return None, 0
    shelf, known = grows[0][kind], grows[1]
    if shelf.filled != known or shelf.buffer.shape[1] < rows:
        return None, 0
    return shelf, known


def _bucket_starts(sorted_hash: np.ndarray) -> tuple[np.ndarray, int]:
    """(starts, shift): the hashes whose top bits are ``b`` are ``sorted_hash[starts[b]:
    starts[b + 1]]``, where ``b = hash >> shift``.

    About one bucket per key, so a lookup reads two table entries and a hash or two instead
    of a ~20-step binary search through the hash array (cache misses and a numpy call).
    """
    bits = max(1, min(24, int(len(sorted_hash)).bit_length()))
    shift = 64 - bits
    counts = np.bincount((sorted_hash >> np.uint64(shift)).astype(np.intp), minlength=1 << bits)
    starts = np.zeros((1 << bits) + 1, np.int64)
    np.cumsum(counts, out=starts[1:])
    return starts, shift


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    """One array of the parts (no copy for a single part: index arrays are never written)."""
    if not parts:
        return np.empty(0, dtype)
    if len(parts) == 1:
        return parts[0].astype(dtype, copy=False)
    return np.concatenate(parts).astype(dtype, copy=False)


def _strictly_increasing(values: np.ndarray) -> bool:
    return len(values) < 2 or bool((values[1:] > values[:-1]).all())


def _union(lists: list[list[str]]) -> list[str]:
    seen: dict[str, None] = {c: None for c in (*FLOAT_LEAD, *METRICS)}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return list(seen)

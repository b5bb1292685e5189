"""The price cache: validated daily bars stored once per symbol in a local Zarr v3 hierarchy.

Layout (see docs/data.md)::

    prices.zarr/
      zarr.json                 root group (attributes: format)
      segments/<name>/          immutable float64 arrays, shape (rows, 6):
                                epoch seconds, open, high, low, close, volume
      manifest.json             which rows of which segments make up each symbol's history
      .lock                     writers take this file lock

Segments are never modified once written, so the manifest is the only mutable thing and it is
replaced atomically (write aside, fsync, ``os.replace``): a crash leaves either the old or the new
manifest, never a half-written history (at worst an unreferenced segment, removed by
``compact``). A write of many symbols is one segment and one manifest commit, so a history
update appends a small segment and a new piece; old rows are never rewritten.

Reads need no lock. Opening a Zarr array has a real cost (a few ms), so array handles and built
histories (with their fingerprint) are kept in process, bounded by ``max_cached_bytes``; both are
keyed by immutable segment names and row ranges, so they can never be stale.
"""
from __future__ import annotations

import json
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import zarr
from filelock import FileLock
from zarr.codecs import BloscCodec
from zarr.storage import LocalStore

from core.canonical import bars_fingerprint, stamp_fingerprint
from core.data.symbols import validate_symbol
from core.data.validate import BAR_COLUMNS, validate_bars
from core.errors import DataValidationError, StoreCorruptionError, StoreError, StoreVersionError

FORMAT_VERSION = 1
CHUNK_ROWS = 8192
AUTO_COMPACT_SEGMENTS = 32  # more live segments than this -> rewrite into one
_MANIFEST = "manifest.json"
_COLUMNS = pd.Index(BAR_COLUMNS)


def _empty_manifest() -> dict:
    return {"format": FORMAT_VERSION, "version": 0, "next_segment": 1, "sources": {}}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _to_rows(bars: pd.DataFrame, symbol: str) -> np.ndarray:
    """Bars -> (n, 6) float64: epoch seconds then OHLCV (seconds are exact in float64)."""
    nanoseconds = bars.index.as_unit("ns").asi8
    if (nanoseconds % 1_000_000_000).any():
        raise DataValidationError(
            f"{symbol}: the price cache stores timestamps to the second; "
            "round the bar times to whole seconds."
        )
    seconds = (nanoseconds // 1_000_000_000).astype(np.float64)
    return np.column_stack([seconds, bars[list(BAR_COLUMNS)].to_numpy(dtype=np.float64)])


def _to_frame(rows: np.ndarray, symbol: str) -> pd.DataFrame:
    """(n, 6) rows -> bars with a datetime64[ns] index, one float64 block, symbol+fingerprint."""
    index = pd.DatetimeIndex(rows[:, 0].astype(np.int64).astype("datetime64[s]")).as_unit("ns")
    index.name = "date"
    values = np.asfortranarray(rows[:, 1:])  # column-major: pandas keeps it as one block
    frame = pd.DataFrame(values, index=index, columns=_COLUMNS, copy=False)
    fingerprint = bars_fingerprint(frame)  # before attrs exist: pandas copies attrs per column
    frame.attrs["symbol"] = symbol
    return stamp_fingerprint(frame, fingerprint)


class PriceCache:
    """Bars per (source, symbol) in ``path`` (a local directory, e.g. ``data/prices.zarr``)."""

    _instances: dict[Path, PriceCache] = {}
    _instances_lock = threading.Lock()

    def __init__(self, path: str | os.PathLike, max_cached_bytes: int = 256 * 2**20):
        self.path = Path(path)
        self.max_cached_bytes = max_cached_bytes
        self._manifest_data: dict = _empty_manifest()
        self._manifest_stamp: tuple | None = None
        self._arrays: dict[str, zarr.Array] = {}
        # histories as built frames, keyed by their (immutable) pieces
        self._frames: OrderedDict[tuple, pd.DataFrame] = OrderedDict()
        self._frames_bytes = 0
        self._lock = threading.RLock()

    @classmethod
    def at(cls, path: str | os.PathLike) -> PriceCache:
        """The shared instance for ``path`` in this process (so its in-memory caches are reused)."""
        key = Path(path).absolute()
        with cls._instances_lock:
            if key not in cls._instances:
                cls._instances[key] = cls(key)
            return cls._instances[key]

    # ----------------------------------------------------------------- reading

    def manifest(self) -> dict:
        """The current manifest, re-read only when the file on disk changed."""
        file = self.path / _MANIFEST
        try:
            stat = file.stat()
        except FileNotFoundError:
            self._manifest_data, self._manifest_stamp = _empty_manifest(), None
            return self._manifest_data
        stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if stamp != self._manifest_stamp:
            try:
                data = json.loads(file.read_text())
            except (OSError, ValueError) as exc:
                raise StoreCorruptionError(
                    f"Price cache manifest {file} cannot be read ({exc}). Delete {self.path} to "
                    "rebuild the cache from the data source."
                ) from None
            if data.get("format") != FORMAT_VERSION:
                raise StoreVersionError(
                    f"Price cache {self.path} has format {data.get('format')!r}; this version "
                    f"reads format {FORMAT_VERSION}. Delete it to rebuild the cache."
                )
            self._manifest_data, self._manifest_stamp = data, stamp
        return self._manifest_data

    def sources(self) -> list[str]:
        return sorted(self.manifest()["sources"])

    def symbols(self, source: str) -> list[str]:
        """Symbols cached for ``source``, sorted."""
        return sorted(self.manifest()["sources"].get(source, {}).get("symbols", {}))

    def info(self, source: str, symbol: str) -> dict | None:
        """Stored facts about one history (rows, first, last, signature, updated, checked)."""
        entry = self.manifest()["sources"].get(source, {}).get("symbols", {}).get(symbol)
        return None if entry is None else {k: v for k, v in entry.items() if k != "pieces"}

    def source_meta(self, source: str) -> dict:
        """Free-form facts recorded for a source (e.g. the demo generator settings)."""
        return dict(self.manifest()["sources"].get(source, {}).get("meta", {}))

    def load(self, source: str, symbol: str) -> pd.DataFrame | None:
        """The cached bars of one symbol (full history) or None when it is not cached."""
        return self.load_many(source, [symbol]).get(symbol)

    def load_many(self, source: str, symbols: Iterable[str]) -> dict[str, pd.DataFrame]:
        """Cached bars for each of ``symbols`` that is cached (others are left out)."""
        symbols = list(symbols)
        try:
            return self._load_many(source, symbols)
        except FileNotFoundError:
            # A concurrent compaction removed a segment after we read the old manifest.
            self._manifest_stamp = None
            return self._load_many(source, symbols)

    def _load_many(self, source: str, symbols: list[str]) -> dict[str, pd.DataFrame]:
        entries = self.manifest()["sources"].get(source, {}).get("symbols", {})
        wanted = {s: tuple(tuple(p) for p in entries[s]["pieces"]) for s in symbols
                  if s in entries}
        with self._lock:
            missing = {key: symbol for symbol, key in wanted.items() if key not in self._frames}
            rows = self._read_rows([piece for key in missing for piece in key])
            for key, symbol in missing.items():
                parts = [rows[piece] for piece in key]
                frame = _to_frame(parts[0] if len(parts) == 1 else np.concatenate(parts), symbol)
                self._remember(key, frame)
            out = {}
            for symbol, key in wanted.items():
                self._frames.move_to_end(key)
                out[symbol] = self._frames[key].copy(deep=False)  # callers get their own attrs
            self._evict()
        return out

    def _read_rows(self, pieces: list[tuple[str, int, int]]) -> dict[tuple, np.ndarray]:
        """Rows of each piece; one read per segment when the pieces are dense in it."""
        by_segment: dict[str, list[tuple[str, int, int]]] = {}
        for piece in pieces:
            by_segment.setdefault(piece[0], []).append(piece)
        out = {}
        for segment, todo in by_segment.items():
            array = self._array(segment)
            lo, hi = min(p[1] for p in todo), max(p[2] for p in todo)
            if len(todo) > 1 and sum(p[2] - p[1] for p in todo) * 2 >= hi - lo:
                span = array[lo:hi]
                out.update({p: span[p[1] - lo:p[2] - lo] for p in todo})
            else:
                out.update({p: array[p[1]:p[2]] for p in todo})
            if any(np.isnan(out[p][:, 0]).any() for p in todo):
                # compacted away by another process after our manifest was read
                self._arrays.pop(segment, None)
                raise FileNotFoundError(segment)
        return out

    def _remember(self, key: tuple, frame: pd.DataFrame) -> None:
        self._frames[key] = frame
        self._frames_bytes += len(frame) * 8 * (len(BAR_COLUMNS) + 1)

    def _evict(self) -> None:
        while self._frames_bytes > self.max_cached_bytes and len(self._frames) > 1:
            _, frame = self._frames.popitem(last=False)
            self._frames_bytes -= len(frame) * 8 * (len(BAR_COLUMNS) + 1)

    def _array(self, segment: str) -> zarr.Array:
        if segment not in self._arrays:
            if not (self.path / "segments" / segment / "zarr.json").is_file():
                raise FileNotFoundError(segment)
            store = LocalStore(self.path, read_only=True)
            self._arrays[segment] = zarr.open_array(store, path=f"segments/{segment}", mode="r",
                                                    zarr_format=3)
        return self._arrays[segment]

    # ----------------------------------------------------------------- writing

    def put(self, source: str, bars: dict[str, pd.DataFrame],
            signatures: dict[str, object] | None = None, meta: dict | None = None) -> None:
        """Store (replace) the full history of each symbol in ``bars``, in one commit.

        Every frame is validated first: if any is bad, nothing at all is written.
        """
        clean = self._validated(bars)
        with self._writing() as manifest:
            entries = manifest["sources"].setdefault(source, {"meta": {}, "symbols": {}})
            if meta is not None:
                entries["meta"] = dict(meta)
            placed = self._write_segment(manifest, clean)
            for symbol, piece in placed.items():
                entries["symbols"][symbol] = self._entry(
                    piece, clean[symbol], (signatures or {}).get(symbol))

    def append(self, source: str, bars: dict[str, pd.DataFrame],
               signatures: dict[str, object] | None = None) -> dict[str, int]:
        """Append only bars newer than each symbol's last cached bar; returns rows appended.

        Symbols not cached yet are stored whole. Old rows are never rewritten.
        """
        clean = self._validated(bars)
        with self._writing() as manifest:
            entries = manifest["sources"].setdefault(source, {"meta": {}, "symbols": {}})
            fresh = {}
            for symbol, frame in clean.items():
                old = entries["symbols"].get(symbol)
                if old is not None:
                    frame = frame[frame.index > pd.Timestamp(old["last"])]
                if len(frame):
                    fresh[symbol] = frame
            placed = self._write_segment(manifest, fresh)
            for symbol, frame in clean.items():
                entry = entries["symbols"].get(symbol)
                if entry is None:
                    entry = entries["symbols"][symbol] = self._entry(placed[symbol], frame)
                elif symbol in placed:
                    entry["pieces"].append(list(placed[symbol]))
                    entry["rows"] += len(fresh[symbol])
                    entry["last"] = fresh[symbol].index[-1].isoformat()
                    entry["updated"] = _now()
                entry["checked"] = _now()
                if signatures and symbol in signatures:
                    entry["signature"] = signatures[symbol]
            counts = {symbol: len(fresh.get(symbol, ())) for symbol in clean}
        if self._live_segment_count() > AUTO_COMPACT_SEGMENTS:
            self.compact()
        return counts

    def drop(self, source: str, symbols: Iterable[str] | None = None) -> None:
        """Forget a source (or some of its symbols); space is reclaimed by ``compact``."""
        with self._writing() as manifest:
            if symbols is None:
                manifest["sources"].pop(source, None)
            else:
                for symbol in symbols:
                    manifest["sources"].get(source, {}).get("symbols", {}).pop(symbol, None)

    def compact(self) -> None:
        """Rewrite every live history into one segment and delete all other segments."""
        with self._writing() as manifest:
            histories = {
                (source, symbol): entry
                for source, data in manifest["sources"].items()
                for symbol, entry in data["symbols"].items()
            }
            frames = self._load_entries(histories)
            keys = list(frames)
            rows = {f"{i}": frames[key] for i, key in enumerate(keys)}
            placed = self._write_segment(manifest, rows, as_rows=True)
            for i, key in enumerate(keys):
                histories[key]["pieces"] = [placed[f"{i}"]]
        self._remove_unreferenced()

    def _load_entries(self, histories: dict) -> dict:
        rows = self._read_rows([tuple(p) for e in histories.values() for p in e["pieces"]])
        return {key: np.concatenate([rows[tuple(p)] for p in entry["pieces"]])
                for key, entry in histories.items()}

    def _validated(self, bars: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
        return {validate_symbol(s): validate_bars(frame, s) for s, frame in bars.items()}

    @staticmethod
    def _entry(piece: tuple, frame: pd.DataFrame, signature: object = None) -> dict:
        return {
            "pieces": [list(piece)],
            "rows": len(frame),
            "first": frame.index[0].isoformat(),
            "last": frame.index[-1].isoformat(),
            "signature": signature,
            "updated": _now(),  # when bars last changed
            "checked": _now(),  # when the source was last asked
        }

    def _write_segment(self, manifest: dict, bars: dict, as_rows: bool = False) -> dict:
        """Write one new immutable segment holding ``bars``; return key -> piece.

        ``bars`` maps a key to a bars frame, or to ready (n, 6) rows when ``as_rows``.
        """
        if not bars:
            return {}
        blocks = [v if as_rows else _to_rows(v, k) for k, v in bars.items()]
        data = np.concatenate(blocks) if len(blocks) > 1 else blocks[0]
        name = f"s{manifest['next_segment']:06d}-{uuid.uuid4().hex[:8]}"
        manifest["next_segment"] += 1
        store = LocalStore(self.path)
        try:
            array = zarr.create_array(
                store=store, name=f"segments/{name}", shape=data.shape,
                chunks=(min(CHUNK_ROWS, max(len(data), 1)), 6), dtype="float64",
                compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
                fill_value=np.nan,  # a chunk that vanished reads as NaN, never as prices
            )
            array[:] = data
        except Exception as exc:
            shutil.rmtree(self.path / "segments" / name, ignore_errors=True)
            raise StoreError(f"Could not write to the price cache {self.path}: {exc}") from exc
        placed, offset = {}, 0
        for symbol, block in zip(bars, blocks):
            placed[symbol] = (name, offset, offset + len(block))
            offset += len(block)
        return placed

    def _writing(self):
        return _ManifestTransaction(self)

    def _live_segment_count(self) -> int:
        return len({p[0] for data in self.manifest()["sources"].values()
                    for entry in data["symbols"].values() for p in entry["pieces"]})

    def _remove_unreferenced(self) -> None:
        with FileLock(str(self.path / ".lock")):
            self._manifest_stamp = None
            live = {p[0] for data in self.manifest()["sources"].values()
                    for entry in data["symbols"].values() for p in entry["pieces"]}
            folder = self.path / "segments"
            for child in folder.iterdir() if folder.is_dir() else ():
                if child.is_dir() and child.name not in live:
                    shutil.rmtree(child, ignore_errors=True)
                    self._arrays.pop(child.name, None)

    def _commit(self, manifest: dict) -> None:
        """Atomically replace manifest.json (write aside, fsync, rename, fsync the folder)."""
        manifest["version"] += 1
        target = self.path / _MANIFEST
        temp = self.path / f".{_MANIFEST}.{uuid.uuid4().hex[:8]}.tmp"
        with open(temp, "w") as handle:
            json.dump(manifest, handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
        directory = os.open(self.path, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def _ensure_root(self) -> None:
        if not (self.path / "zarr.json").is_file():
            self.path.mkdir(parents=True, exist_ok=True)
            zarr.open_group(LocalStore(self.path), mode="a",
                            attributes={"hindsight": "price-cache", "format": FORMAT_VERSION})


class _ManifestTransaction:
    """``with cache._writing() as manifest:`` — lock, fresh copy, commit on success only."""

    def __init__(self, cache: PriceCache):
        self.cache = cache
        self.lock: FileLock | None = None

    def __enter__(self) -> dict:
        self.cache.path.mkdir(parents=True, exist_ok=True)
        self.lock = FileLock(str(self.cache.path / ".lock"))
        self.lock.acquire()
        try:
            self.cache._ensure_root()
            self.cache._manifest_stamp = None  # re-read under the lock
            self.manifest = json.loads(json.dumps(self.cache.manifest()))
        except BaseException:
            self.lock.release()
            raise
        return self.manifest

    def __exit__(self, kind, value, traceback) -> None:
        try:
            if kind is None:
                self.cache._commit(self.manifest)
        finally:
            self.lock.release()

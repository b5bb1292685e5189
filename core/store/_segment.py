"""Write one immutable segment and read its arrays back, through zarr's public API only.

Every array is sharded; each inner chunk is pcodec-encoded (lossless) and followed by a crc32c,
and shard indexes carry a crc32c too. Arrays are opened with ``read_missing_chunks=False``, so a
missing chunk raises instead of reading as fill values: damage is always detected, never served.
"""
from __future__ import annotations

import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec
from zarr.codecs.numcodecs import PCodec

from core.errors import StoreCorruptionError
from core.store._backend import crash_point
from core.store._segdata import SegmentData
from core.store._format import (FORMAT_VERSION, RAGGED_CHUNK, RAGGED_SHARD_CHUNKS,
                                RAGGED_WRITE_CHUNK, ROW_CHUNK, SEGMENT_ATTR, SEGMENTS_DIR,
                                SHARD_CHUNKS, STAT_CHUNK, STAT_FIELDS, WRITE_LEVEL)

READ_CONFIG = {"read_missing_chunks": False, "order": "F"}  # columns decode into place
#: Every chunk is written, even one of zeros: readers refuse missing chunks (see READ_CONFIG).
WRITE_CONFIG = {"write_empty_chunks": True}
#: zarr's documented runtime setting for how many chunks its codec pipeline handles per batch:
#: its default (1) schedules every chunk on its own, which made a segment's many small
#: column chunks several times slower to write and read. Set around the store's own calls.
PIPELINE_SETTINGS = {"codec_pipeline.batch_size": 256}
#: Arrays of concatenated per-backtest values (small chunks: one backtest reads little).
RAGGED_FIELDS = ("eq_calendar", "eq_values", "eq_runs", "eq_steps", "eq_plain", "tr_times",
                 "tr_floats", "tr_ints")
#: The array holding a segment's vocabularies as JSON bytes.
VOCAB_ARRAY = "vocab"
#: pcodec level of the ragged arrays in a fresh write (see ``array_level``).
RAGGED_WRITE_LEVEL = 0
#: zstd level of the vocabulary chunk.
VOCAB_LEVEL = 1
#: Arrays of a segment, by attribute of SegmentData.
ARRAY_FIELDS = ("codes", "times", "floats", "bids", "eq_offsets", "eq_date_starts",
                "eq_calendar", "eq_values", "eq_layout", "eq_runs", "eq_steps", "eq_plain",
                "tr_offsets", "tr_times", "tr_floats", "tr_ints")
#: Arrays opened with the segment (the index needs them); the others open on first use.
EAGER_ARRAYS = ("codes", "bids")
#: Segments opened at once when a store loads (the I/O of each overlaps the others').
OPEN_THREADS = 8
_KEYS = {"name": "default", "separator": "."}


def segment_path(name: str) -> str:
    return f"{SEGMENTS_DIR}/{name}"


def new_segment_name() -> str:
    """A unique, roughly time-ordered segment folder name."""
    return f"{time.time_ns():x}-{uuid.uuid4().hex[:10]}"


def segment_attrs(data: SegmentData, vocab_bytes: int) -> dict:
    """The segment group's attributes: row count, column names and array shapes (small)."""
    arrays = {name: list(getattr(data, name).shape) for name in ARRAY_FIELDS
              if getattr(data, name) is not None}
    arrays[VOCAB_ARRAY] = [vocab_bytes]
    return {SEGMENT_ATTR: {
        "format_version": FORMAT_VERSION,
        "rows": data.rows,
        "float_columns": data.float_columns,
        "param_columns": data.param_columns,
        "arrays": arrays,
    }}


def chunk_layout(field: str, shape: tuple[int, ...], level: int
                 ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(inner chunk, shard) shapes: one column per inner chunk, many chunks per shard file.

    Per-row blocks use ROW_CHUNK rows per chunk (columns decode fast for queries), except the
    stat blocks of a compacted segment (STAT_CHUNK: one backtest's stats decode little). The
    ragged curve and trade arrays use small chunks once compacted and larger ones in a fresh
    write (fewer chunks to compress while a batch waits).
    """
    if field in RAGGED_FIELDS:
        ragged_chunk = RAGGED_WRITE_CHUNK if level == RAGGED_WRITE_LEVEL else RAGGED_CHUNK
        inner_max, per_shard = ragged_chunk, RAGGED_SHARD_CHUNKS
    elif field in STAT_FIELDS and level != WRITE_LEVEL:
        inner_max, per_shard = STAT_CHUNK, max(1, SHARD_CHUNKS * ROW_CHUNK // STAT_CHUNK)
    else:
        inner_max, per_shard = ROW_CHUNK, SHARD_CHUNKS
    inner = max(1, min(shape[0], inner_max))
    shard_rows = inner * max(1, min(per_shard, -(-shape[0] // inner)))
    if len(shape) == 1:
        return (inner,), (shard_rows,)
    return (inner, 1), (shard_rows, shape[1])


def pcodec_settings(level: int) -> dict:
    """The pcodec serializer's configuration at ``level``; level 0 (the ragged arrays of a
    fresh write) also skips pcodec's delta search, which chose no delta on them anyway."""
    return {"level": level, "delta_spec": "no_op"} if level == 0 else {"level": level}


def array_level(field: str, level: int) -> int:
    """pcodec level of one array: a fresh write (``WRITE_LEVEL``) keeps the ragged curve and
    trade arrays at ``RAGGED_WRITE_LEVEL`` (compaction packs them densely later)."""
    return RAGGED_WRITE_LEVEL if level == WRITE_LEVEL and field in RAGGED_FIELDS else level


def _write_array(zstore, path: str, field: str, values: np.ndarray, level: int) -> None:
    """One sharded, pcodec + crc32c array holding ``values``."""
    level = array_level(field, level)
    inner, shards = chunk_layout(field, values.shape, level)
    with zarr.config.set(PIPELINE_SETTINGS):
        zarr.create_array(store=zstore, name=path, data=values, chunks=inner, shards=shards,
                          serializer=PCodec(**pcodec_settings(level)),
                          compressors=[Crc32cCodec()], chunk_key_encoding=_KEYS, fill_value=0,
                          config=WRITE_CONFIG)


def _vocab_bytes(vocab: dict) -> np.ndarray:
    """The segment's vocabularies as compact JSON bytes (stored as the ``vocab`` array)."""
    return np.frombuffer(json.dumps(vocab, separators=(",", ":")).encode(), np.uint8)


def _write_vocab(zstore, path: str, raw: np.ndarray) -> None:
    """The vocabulary bytes as one zstd + crc32c chunk."""
    zarr.create_array(store=zstore, name=path, data=raw, chunks=(max(1, len(raw)),),
                      compressors=[ZstdCodec(level=VOCAB_LEVEL), Crc32cCodec()],
                      chunk_key_encoding=_KEYS, fill_value=0, config=WRITE_CONFIG)


def write_segment(zstore, name: str, data: SegmentData, level: int) -> None:
    """Write a whole segment aside (invisible until a manifest lists it)."""
    crash_point("segment_begin")
    path = segment_path(name)
    vocab = _vocab_bytes(data.vocab)
    zarr.create_group(store=zstore, path=path, attributes=segment_attrs(data, len(vocab)))
    _write_vocab(zstore, f"{path}/{VOCAB_ARRAY}", vocab)
    fields = [f for f in ARRAY_FIELDS if getattr(data, f) is not None]
    for i, field in enumerate(fields):
        if i == len(fields) // 2:
            crash_point("segment_half")
        _write_array(zstore, f"{path}/{field}", field, getattr(data, field), level)
    crash_point("segment_written")


@dataclass
class SegmentReader:
    """One committed segment: attributes now, arrays opened on first use.

    Every read or open error becomes a StoreCorruptionError naming the segment.
    """

    name: str
    attrs: dict
    zstore: object
    opened: dict[str, zarr.Array] = dataclass_field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.attrs["rows"])

    @property
    def names(self) -> list[str]:
        return list(self.attrs["arrays"])

    def has(self, field: str) -> bool:
        return field in self.attrs["arrays"]

    def array(self, field: str) -> zarr.Array:
        """An array of the segment, checked against the shape its attributes record."""
        found = self.opened.get(field)
        if found is not None:
            return found
        if not self.has(field):
            raise StoreCorruptionError(f"Segment {self.name!r} has no array {field!r}.")
        try:
            found = zarr.open_array(store=self.zstore, path=f"{segment_path(self.name)}/{field}",
                                    mode="r", zarr_format=3, config=READ_CONFIG)
        except Exception as exc:  # noqa: BLE001 - missing/garbage array metadata
            raise self.damaged(exc) from exc
        if list(found.shape) != list(self.attrs["arrays"][field]):
            raise StoreCorruptionError(f"Segment {self.name!r} array {field!r} has shape "
                                       f"{found.shape}, expected {self.attrs['arrays'][field]}.")
        self.opened[field] = found
        return found

    def read(self, field: str, selection=Ellipsis) -> np.ndarray:
        array = self.array(field)
        try:
            with zarr.config.set(PIPELINE_SETTINGS):
                return np.asarray(array[selection])
        except Exception as exc:  # noqa: BLE001 - any decode/IO failure is damage here
            raise self.damaged(exc) from exc

    def read_many(self, requests: list[tuple[str, object]]) -> list[np.ndarray]:
        """Read several (array, selection) pairs."""
        return [self.read(field, selection) for field, selection in requests]

    def chunk_rows(self, field: str) -> int:
        """Rows per inner chunk of an array: the unit zarr decodes and a checksum covers."""
        return int(self.array(field).chunks[0])

    def damaged(self, exc: BaseException) -> StoreCorruptionError:
        return StoreCorruptionError(
            f"Backtest store segment {self.name!r} is damaged ({type(exc).__name__}: "
            f"{_first_line(exc)}). Run store.verify() for a report; other segments are "
            "unaffected.")


def _first_line(exc: BaseException) -> str:
    text = str(exc)
    return text.splitlines()[0][:200] if text else ""


def open_segment(zstore, name: str) -> SegmentReader:
    """Open a committed segment: its attributes, vocabularies and key arrays."""
    try:
        group = zarr.open_group(store=zstore, path=segment_path(name), mode="r", zarr_format=3)
        attrs = group.attrs.get(SEGMENT_ATTR)
    except Exception as exc:  # noqa: BLE001 - missing/garbage metadata is damage
        raise _unopenable(name, exc) from exc
    if not isinstance(attrs, dict) or "rows" not in attrs or "arrays" not in attrs:
        raise StoreCorruptionError(f"Segment {name!r} has no valid segment attributes.")
    reader = SegmentReader(name=name, attrs=attrs, zstore=zstore)
    try:
        if reader.has(VOCAB_ARRAY):
            vocab = json.loads(reader.read(VOCAB_ARRAY).tobytes())
            reader.attrs = attrs = {**attrs, "vocab": vocab}
        for eager in EAGER_ARRAYS:
            if reader.has(eager):
                reader.array(eager)
    except Exception as exc:  # noqa: BLE001 - array damaged: keep what was readable
        error = exc if isinstance(exc, StoreCorruptionError) else _unopenable(name, exc)
        error.segment_attrs = attrs
        raise error from exc
    return reader


def _unopenable(name: str, exc: BaseException) -> StoreCorruptionError:
    return StoreCorruptionError(f"Backtest store segment {name!r} cannot be opened "
                                f"({type(exc).__name__}: {_first_line(exc)}). Run store.verify().")


def open_segments(zstore, names: list[str]) -> dict[str, SegmentReader | StoreCorruptionError]:
    """Open many segments on a few threads; a damaged one maps to its error instead of raising."""
    def one(name: str) -> SegmentReader | StoreCorruptionError:
        try:
            return open_segment(zstore, name)
        except StoreCorruptionError as exc:
            return exc

    if len(names) < 2:
        return {name: one(name) for name in names}
    with ThreadPoolExecutor(min(OPEN_THREADS, len(names))) as pool:
        return dict(zip(names, pool.map(one, names)))

"""Read one backtest's equity curve, trade log and stat row back from its segment chunks."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd

from core.store._curves import unpack_curves
from core.store._frames import trades_frame


class ChunkCache:
    """Decoded row chunks (curves, trades, stat rows) and shard indexes, least recently used
    dropped.

    A chunk is decoded whole for any slice, so a read keeps what it decoded: the next
    backtest in the same chunk (or the same one again) is a memory slice. Segments are
    immutable, so entries never go stale; the cache is bounded by bytes.
    """

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple) -> np.ndarray | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: tuple, value: np.ndarray) -> None:
        self._items[key] = value
        self._bytes += value.nbytes
        while self._bytes > self.max_bytes and len(self._items) > 1:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.nbytes


def read_curve_and_trades(seg, local: int, chunks: ChunkCache | None = None
                          ) -> tuple[pd.Series | None, pd.DataFrame]:
    """The stored equity curve (None when not stored) and trade log of one segment row."""
    reader = seg.reader
    chunks = chunks if chunks is not None else ChunkCache(0)
    spans = {}
    if reader.has("tr_offsets"):
        spans.update(_row_spans(_cached(seg, "tr_offsets"), local,
                                ("tr_times", "tr_floats", "tr_ints")))
    points = 0
    if reader.has("eq_offsets"):
        eq_offsets = _cached(seg, "eq_offsets")
        points = int(eq_offsets[local + 1] - eq_offsets[local])
        if not reader.has("eq_layout"):  # format 1: every curve's values in eq_values
            spans.update(_row_spans(eq_offsets, local, ("eq_values",)))
        elif points:
            for field, offsets in _packed_offsets(seg).items():
                spans.update(_row_spans(offsets, local, (field,)))
    values = _read_spans(seg, spans, chunks)
    trades = trades_frame(values.get("tr_times", np.empty((0, 2), np.int64)),
                          values.get("tr_floats", np.empty((0, 5))),
                          values.get("tr_ints", np.empty((0, 2), np.int32)))
    if not points:
        return None, trades
    if "eq_values" in values:
        curve = values["eq_values"]
    else:
        curve = _unpack_row(seg, local, points, values)
    start = int(_cached(seg, "eq_date_starts")[local])
    dates = _cached(seg, "eq_calendar")[start:start + points]
    if len(dates) != points:
        raise reader.damaged(ValueError("a curve's dates run past its calendar"))
    equity = pd.Series(curve, index=pd.DatetimeIndex(dates.view("datetime64[ns]")),
                       name="equity")
    return equity, trades


def read_stat_row(seg, local: int, chunks: ChunkCache) -> tuple[np.ndarray, np.ndarray]:
    """One row of a segment's stat blocks (times, floats) through the chunk cache.

    A lookup on a handle that has not decoded whole stat columns reads this way: each chunk
    decoded is kept, so the next row of the same chunk (the next details page of a sweep) is
    a memory slice.
    """
    values = _read_spans(seg, {"times": (local, local + 1), "floats": (local, local + 1)},
                         chunks)
    return values["times"][0], values["floats"][0]


def _row_spans(offsets: np.ndarray, local: int, fields: tuple[str, ...]) -> dict:
    """{field: (lo, hi)} of one row in a ragged array, or {} when the row holds nothing."""
    lo, hi = int(offsets[local]), int(offsets[local + 1])
    return {field: (lo, hi) for field in fields} if hi > lo else {}


def _packed_offsets(seg) -> dict[str, np.ndarray]:
    """Row offsets into the packed curve arrays, derived once per segment from eq_layout."""
    fields = ("eq_runs", "eq_steps", "eq_plain")
    if f"{fields[0]}_offsets" not in seg.blocks:
        layout = _cached(seg, "eq_layout")
        lengths = np.diff(_cached(seg, "eq_offsets"))
        counts = (layout[:, 1], layout[:, 2], np.where(layout[:, 0] == 0, lengths, 0))
        for field, count in zip(fields, counts):
            offsets = np.zeros(len(count) + 1, np.int64)
            np.cumsum(count, out=offsets[1:])
            seg.blocks[f"{field}_offsets"] = offsets
    return {field: seg.blocks[f"{field}_offsets"] for field in fields}


def _unpack_row(seg, local: int, points: int, values: dict) -> np.ndarray:
    """One row's curve values from its packed runs, steps (or plain values) and trade units."""
    layout = _cached(seg, "eq_layout")[local:local + 1]
    trade_floats = values.get("tr_floats")
    trade_lengths = np.array([0 if trade_floats is None else len(trade_floats)])
    try:
        return unpack_curves(np.array([points]), layout, values.get("eq_runs"),
                             values.get("eq_steps"), values.get("eq_plain"), trade_lengths,
                             trade_floats)
    except (ValueError, IndexError) as exc:
        raise seg.reader.damaged(exc) from None


def _read_spans(seg, spans: dict[str, tuple[int, int]], chunks: ChunkCache
                ) -> dict[str, np.ndarray]:
    """Rows ``lo:hi`` of each named array, from cached chunks plus one concurrent read."""
    reader = seg.reader
    plan, requests = {}, []
    for field, (lo, hi) in spans.items():
        length = int(reader.attrs["arrays"][field][0])
        step = reader.chunk_rows(field)
        parts = []
        for k in range(lo // step, (hi - 1) // step + 1):
            key = (seg.name, field, k)
            found = chunks.get(key)
            if found is None:
                parts.append((key, len(requests)))
                requests.append((field, slice(k * step, min(length, (k + 1) * step))))
            else:
                parts.append((key, found))
        plan[field] = (lo - (lo // step) * step, hi - lo, parts)
    decoded = reader.read_many(requests) if requests else []
    out = {}
    for field, (skip, size, parts) in plan.items():
        blocks = []
        for key, part in parts:
            if isinstance(part, int):
                part = decoded[part]
                chunks.put(key, part)
            blocks.append(part)
        block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        out[field] = block[skip:skip + size].copy()  # callers own their arrays, not the cache
    return out


def _cached(seg, field: str) -> np.ndarray:
    """A small whole array of a segment (offsets, calendars), read once and kept."""
    found = seg.blocks.get(field)
    if found is None:
        found = seg.blocks[field] = seg.reader.read(field)
    return found


__all__ = ["read_curve_and_trades", "read_stat_row", "ChunkCache"]

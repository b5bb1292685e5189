"""Read one backtest's equity curve and trade log back from its segment (details pages)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pandas as pd

from core.store._frames import STR
from core.types import EXIT_REASONS, TRADE_COLUMNS

_REASONS = np.asarray(EXIT_REASONS, dtype=object)


class ChunkCache:
    """Decoded row chunks of the ragged arrays (curves, trades), least recently used dropped.

    Zarr decodes whole chunks for any slice, so a details read keeps what it decoded: the
    next backtest in the same chunk (or the same one again) is a memory slice. Segments are
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
    for prefix, fields in (("eq", ("eq_values",)), ("tr", ("tr_times", "tr_floats", "tr_ints"))):
        offsets_name = f"{prefix}_offsets"
        if not reader.has(offsets_name):
            continue
        offsets = _cached(seg, offsets_name)
        lo, hi = int(offsets[local]), int(offsets[local + 1])
        if hi > lo:
            spans.update({field: (lo, hi) for field in fields})
    values = _read_spans(seg, spans, chunks)
    equity = None
    if "eq_values" in values:
        lo, hi = spans["eq_values"]
        start = int(_cached(seg, "eq_date_starts")[local])
        dates = _cached(seg, "eq_calendar")[start:start + hi - lo]
        if len(dates) != hi - lo:
            raise reader.damaged(ValueError("a curve's dates run past its calendar"))
        equity = pd.Series(values["eq_values"], index=pd.DatetimeIndex(
            dates.view("datetime64[ns]")), name="equity")
    if "tr_times" in values:
        trades = _trade_frame(values["tr_times"], values["tr_floats"], values["tr_ints"])
    else:
        trades = _trade_frame(np.empty((0, 2), np.int64), np.empty((0, 5)),
                              np.empty((0, 2), np.int32))
    return equity, trades


def _read_spans(seg, spans: dict[str, tuple[int, int]], chunks: ChunkCache
                ) -> dict[str, np.ndarray]:
    """Rows ``lo:hi`` of each named array, from cached chunks plus one concurrent read."""
    reader = seg.reader
    plan, requests = {}, []
    for field, (lo, hi) in spans.items():
        length = int(reader.attrs["arrays"][field][0])
        step = _chunk_rows(reader, field)
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


def _chunk_rows(reader, field: str) -> int:
    """Rows per (inner) chunk of a segment array: the unit zarr decodes."""
    array = reader.opened.get(field)
    if array is None:
        array = reader.array(field)
    return int(array.chunks[0])


def _cached(seg, field: str) -> np.ndarray:
    """A small whole array of a segment (offsets, calendars), read once and kept."""
    found = seg.blocks.get(field)
    if found is None:
        found = seg.blocks[field] = seg.reader.read(field)
    return found


def _trade_frame(times: np.ndarray, floats: np.ndarray, ints: np.ndarray) -> pd.DataFrame:
    columns = {
        "entry_time": times[:, 0].view("datetime64[ns]"),
        "entry_price": floats[:, 0],
        "exit_time": times[:, 1].view("datetime64[ns]"),
        "exit_price": floats[:, 1],
        "units": floats[:, 2],
        "pnl": floats[:, 3],
        "return": floats[:, 4],
        "bars_held": ints[:, 0].astype(np.int64),
        "exit_reason": pd.array(_REASONS[ints[:, 1]], dtype=STR),
    }
    return pd.DataFrame({name: columns[name] for name in TRADE_COLUMNS})



__all__ = ["read_curve_and_trades", "ChunkCache"]

"""Equity curves of a batch: checked on the way in, laid out and packed as segment arrays."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import ValidationError
from core.store import _curvecodec as codec
from core.store._format import TRADE_FLOAT_COLUMNS
from core.store._segdata import SegmentData
from core.types import BatchCurves


_UNITS = TRADE_FLOAT_COLUMNS.index("units")


class Calendars:
    """Distinct date arrays of equity curves, stored once per segment.

    Curves of one symbol and period share their dates: each distinct date array is stored once,
    with a start offset per row, which leaves only the values to store and read per curve.
    """

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []
        self.size = 0
        self._by_shape: dict[tuple[int, int, int], list[tuple[int, np.ndarray]]] = {}

    def start_of(self, dates: np.ndarray) -> int:
        """Offset of ``dates`` in the concatenated calendar (added when new)."""
        key = (len(dates), int(dates[0]), int(dates[-1]))
        for start, known in self._by_shape.get(key, ()):
            if known is dates or np.array_equal(known, dates):
                return start
        start = self.size
        self._by_shape.setdefault(key, []).append((start, dates))
        self.arrays.append(dates)
        self.size += len(dates)
        return start

    def concat(self) -> np.ndarray:
        return np.concatenate(self.arrays) if self.arrays else np.empty(0, np.int64)


def curve_arrays(equity: Any, where: str, known_dates: dict | None = None
                 ) -> tuple[np.ndarray, np.ndarray] | None:
    """(dates int64 ns, values float64) of an equity curve, checked (but for NaN/inf).

    ``known_dates`` maps ``id(index)`` -> (index, dates) for indexes already checked in this
    batch: curves of one symbol usually share one DatetimeIndex object, checked once.
    """
    if equity is None:
        return None
    if not isinstance(equity, pd.Series):
        raise ValidationError(f"{where}: equity must be a pandas Series indexed by date, got "
                              f"{type(equity).__name__}.")
    if len(equity) == 0:
        return None
    index = equity.index
    seen = known_dates.get(id(index)) if known_dates is not None else None
    if seen is not None and seen[0] is index:
        dates = seen[1]
    else:
        dates = _curve_dates(index, where)
        if known_dates is not None:
            known_dates[id(index)] = (index, dates)
    try:
        values = equity.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationError(f"{where}: equity values must be numbers.") from None
    return dates, values  # finite values are checked once per batch, in attach_curves


def _curve_dates(index: Any, where: str) -> np.ndarray:
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError(f"{where}: the equity curve's index must be a DatetimeIndex.")
    if index.hasnans:
        raise ValidationError(f"{where}: the equity curve has NaN dates; drop or fix them.")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    dates = index.as_unit("ns").asi8
    if len(dates) > 1 and not (dates[1:] > dates[:-1]).all():
        raise ValidationError(f"{where}: the equity curve's dates must be strictly increasing.")
    return dates


def attach_curves(data: SegmentData, curves: list) -> None:
    """Lay out each row's curve ((dates, values) from ``curve_arrays``, or None), each distinct
    calendar once, and pack their values.

    Call it after the trade logs are attached: the codec locates each curve's held runs from
    its trades.
    """
    parts = [(row, curve) for row, curve in enumerate(curves) if curve is not None]
    if not parts:
        return
    calendars = Calendars()
    lengths = np.zeros(data.rows, np.int64)
    data.eq_date_starts = np.zeros(data.rows, np.int64)
    for row, (dates, values) in parts:
        lengths[row] = len(values)
        data.eq_date_starts[row] = calendars.start_of(dates)
    data.eq_offsets = np.concatenate(([0], np.cumsum(lengths)))
    data.eq_calendar = calendars.concat()
    data.eq_values = np.concatenate([values for _, (_, values) in parts])
    pack_curves(data)


def attach_batch_curves(data: SegmentData, curves: Any) -> None:
    """Check a BatchCurves (shapes, dates, finite values) and pack it: no per-row Python."""
    if not isinstance(curves, BatchCurves):
        raise ValidationError("BatchResult.curves must be a core.types.BatchCurves, got "
                              f"{type(curves).__name__}.")
    values = _batch_array(curves.values, np.float64, "values")
    offsets = _batch_array(curves.offsets, np.int64, "offsets")
    starts = _batch_array(curves.date_starts, np.int64, "date_starts")
    calendar = _batch_calendar(curves.dates)
    lengths = np.diff(offsets)
    if len(offsets) != data.rows + 1 or len(starts) != data.rows or offsets[0] != 0 \
            or offsets[-1] != len(values) or (lengths < 0).any():
        raise ValidationError(f"BatchResult.curves must hold {data.rows} rows: offsets of "
                              f"length {data.rows + 1} from 0 to len(values), never decreasing, "
                              f"and one date start per row.")
    has = lengths > 0
    if ((starts[has] < 0) | (starts[has] + lengths[has] > len(calendar))).any():
        raise ValidationError("BatchResult.curves.date_starts point past the end of its dates.")
    block = np.zeros(len(calendar), np.int64)  # increasing stretches of the calendar
    np.cumsum(calendar[1:] <= calendar[:-1], out=block[1:])
    if (block[starts[has]] != block[starts[has] + lengths[has] - 1]).any():
        raise ValidationError("BatchResult.curves: a curve's dates must be strictly increasing.")
    data.eq_offsets = offsets
    data.eq_date_starts = np.where(has, starts, 0)
    data.eq_calendar = calendar
    data.eq_values = values
    pack_curves(data)


def _batch_array(values: Any, dtype: type, what: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or not (array.dtype.kind in "iuf" if dtype is np.float64
                               else array.dtype.kind in "iu"):
        kind = "numbers" if dtype is np.float64 else "whole numbers"
        raise ValidationError(f"BatchResult.curves.{what} must be a 1-D array of {kind}.")
    return np.ascontiguousarray(array, dtype=dtype)


def _batch_calendar(dates: Any) -> np.ndarray:
    """The curves' dates as int64 ns (naive, no NaT)."""
    array = np.asarray(dates)
    if array.ndim != 1 or array.dtype.kind != "M":
        raise ValidationError("BatchResult.curves.dates must be a 1-D datetime64 array.")
    array = array.astype("datetime64[ns]")
    if np.isnat(array).any():
        raise ValidationError("BatchResult.curves.dates has NaN dates; drop or fix them.")
    return array.view(np.int64)


def pack_curves(data: SegmentData) -> None:
    """Replace ``data.eq_values`` (every curve's values) by the codec's lossless packed arrays."""
    if data.eq_values is None:
        return
    lengths = np.diff(data.eq_offsets)
    if data.tr_offsets is not None:
        trade_lengths = np.diff(data.tr_offsets)
        found = codec.trade_positions(lengths, data.eq_date_starts, data.eq_calendar,
                                      trade_lengths, data.tr_times[:, :2])
        positions = [found[:, 0], found[:, 1]]
        units = data.tr_floats[:, _UNITS]
    else:
        trade_lengths = np.zeros(data.rows, np.int64)
        positions = [np.empty(0, np.int64)] * 2
        units = np.empty(0)
    try:
        packed = codec.encode(data.eq_values, lengths, trade_lengths, *positions, units)
    except codec.NonFiniteValue as bad:  # checked while packing: no extra pass over the values
        row = int(np.searchsorted(data.eq_offsets, bad.position, side="right")) - 1
        raise ValidationError(f"result #{row}: equity values must be finite numbers (found "
                              "NaN/inf).") from None
    data.eq_layout = packed.layout
    data.eq_runs, data.eq_steps, data.eq_plain = (  # an empty array is not written
        part if len(part) else None for part in (packed.runs, packed.steps, packed.plain))
    data.eq_values = None


def unpack_curves(lengths: np.ndarray, layout: np.ndarray, runs: np.ndarray | None,
                  steps: np.ndarray | None, plain: np.ndarray | None, trade_lengths: np.ndarray,
                  trade_floats: np.ndarray | None) -> np.ndarray:
    """Every curve's values from the packed arrays (ValueError when they disagree: damage).

    Arrays a segment did not write (nothing to hold) are given as None.
    """
    packed = codec.PackedCurves(
        layout=layout, runs=runs if runs is not None else np.empty((0, 2), np.int64),
        steps=steps if steps is not None else np.empty(0, np.int64),
        plain=plain if plain is not None else np.empty(0))
    units = trade_floats[:, _UNITS] if trade_floats is not None else np.empty(0)
    return codec.decode(lengths, packed, trade_lengths, units)

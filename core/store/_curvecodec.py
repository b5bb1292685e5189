"""Lossless equity-curve codec: flat runs and price-grid steps instead of raw float64 values.

The engine's equity is ``cash`` while flat and ``cash + units * close[t]`` while holding a
position. With prices on a tick grid (cents), each in-market value is its run's first value
(the anchor) plus ``q * k`` for an integer ``k`` and ``q = units * tick``, up to float rounding.
So a curve is stored as runs located from its trade log - a flat run (length, value) between
trades, one held run (length, anchor) per trade, in trade order - and, per held point, ``k``
and the residual between the true float64 bits and ``anchor + q * k`` in ULPs. The residual is
int64 arithmetic modulo 2**64, so decoding is bit exact as long as both sides compute
``anchor + q * k`` with the same numpy operations (:func:`_grid_values`). A curve that does not
fit (prices off the grid, a flat stretch that moves, trades that do not line up with it) keeps
its plain float64 values; every point is checked against its reconstruction as it is packed.

Stored integers are fused so that one backtest reads few chunks: a run is one signed length
(``len`` flat, ``~len`` held) next to its anchor bits, and a step is ``k * STEP_BASE + ulps``
(pcodec finds that multiple structure: as small as two separate columns). Packing is one
compiled pass over the points (``_curvepack``); decoding is vectorised numpy over all curves
of a batch or segment (ragged index arithmetic, no loop over curves or runs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Tick of each grid code: code ``d`` means prices on a ``10**-d`` grid; 0 means plain values.
TICKS = np.array([0.0, 0.1, 0.01, 0.001, 0.0001])
PLAIN = 0
CENTS = 2
#: A curve whose residuals exceed this many ULPs is off the grid: it is cheaper kept plain.
ULP_LIMIT = 1 << 16
#: A stored step is ``k * STEP_BASE + ulps`` with ``|ulps| <= ULP_LIMIT``.
STEP_BASE = 2 * ULP_LIMIT + 1
#: |k| is clipped here: ``k * STEP_BASE`` stays inside int64 (a clipped k widens the residual).
K_LIMIT = float(1 << 45)


class NonFiniteValue(ValueError):
    """A curve value is NaN or infinite (``position`` in the concatenated values)."""

    def __init__(self, position: int):
        super().__init__(f"non-finite curve value at position {position}")
        self.position = position


@dataclass
class PackedCurves:
    """The stored form of a set of curves (rows may have no curve: length 0)."""

    layout: np.ndarray  # int64 (rows, 3): codec (PLAIN or a grid code), runs, steps of each row
    runs: np.ndarray  # int64 (runs, 2): signed length (len flat, ~len held), anchor bits
    steps: np.ndarray  # int64 (steps,): k * STEP_BASE + residual ULPs of each held point
    plain: np.ndarray  # float64: the values of PLAIN rows, concatenated


def starts_of(lengths: np.ndarray) -> np.ndarray:
    """Exclusive cumulative sum: where each ragged part starts."""
    out = np.zeros(len(lengths), np.int64)
    np.cumsum(lengths[:-1], out=out[1:])
    return out


def ragged_index(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for every (s, n), without a Python loop.

    One array and one cumulative sum: ones, with a jump where each part begins.
    """
    lengths = np.asarray(lengths, np.int64)
    nonempty = lengths > 0
    starts, lengths = np.asarray(starts, np.int64)[nonempty], lengths[nonempty]
    out = np.ones(int(lengths.sum()), np.int64)
    if len(out):
        jumps = starts.copy()
        jumps[1:] -= starts[:-1] + lengths[:-1] - 1
        out[starts_of(lengths)] = jumps
        np.cumsum(out, out=out)
    return out


def trade_positions(lengths: np.ndarray, date_starts: np.ndarray, calendar: np.ndarray,
                    trade_lengths: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of each time in its row's curve dates (``searchsorted`` left, clipped to [0, n]).

    Row i owns ``trade_lengths[i]`` times (or rows of times), after those of earlier rows.
    A row's dates are ``calendar[start:start + n]`` and the calendar is a concatenation of
    increasing blocks. Dates are replaced by their rank among the calendar's distinct dates
    and each block is shifted past the previous one, which makes the whole calendar one
    increasing key: one ``searchsorted`` answers every trade of every curve.
    """
    if len(times) == 0 or len(calendar) == 0:
        return np.zeros(times.shape, np.int64)
    trade_rows = np.repeat(np.arange(len(lengths)), trade_lengths)
    start = date_starts[trade_rows]
    n = lengths[trade_rows]
    if times.ndim == 2:  # several times per trade (entry and exit): one search for all
        start, n = start[:, None], n[:, None]
    block = np.zeros(len(calendar), np.int64)
    np.cumsum(calendar[1:] <= calendar[:-1], out=block[1:])
    if block[-1] == 0:  # one increasing calendar (run_many's one symbol): search it directly
        return np.clip(np.searchsorted(calendar, times) - start, 0, n)
    distinct = np.unique(calendar)
    width = len(distinct) + 1
    keys = block * width + np.searchsorted(distinct, calendar)
    first = block[np.minimum(start, len(calendar) - 1)]
    found = np.searchsorted(keys, first * width + np.searchsorted(distinct, times)) - start
    return np.clip(found, 0, n)


def _grid_values(anchor: np.ndarray, q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``anchor + q * k`` as float64: the one reconstruction both encode and decode use.

    ``k`` is converted to float64 first (exact: |k| <= 2**52), so integer k (decode) and the
    same k held as float (encode) give identical bits.
    """
    out = np.multiply(q, k if k.dtype == np.float64 else k.astype(np.float64))
    return np.add(anchor, out, out=out)


def encode(values: np.ndarray, lengths: np.ndarray, trade_lengths: np.ndarray,
           entry_pos: np.ndarray, exit_pos: np.ndarray, units: np.ndarray,
           code: int = CENTS) -> PackedCurves:
    """Pack curves (``values`` split by ``lengths``) using their trades' positions and units.

    ``entry_pos``/``exit_pos`` index each trade's entry and exit in its row's curve (trades of
    row i are the ``trade_lengths[i]`` ones after those of earlier rows): the position is held
    over ``[entry, exit)`` and the value is flat from ``exit`` to the next entry. Rows whose
    packing would not be exact keep their plain values; a NaN or infinite value raises
    NonFiniteValue. The loop is compiled (``_curvepack``, imported here so that readers never
    load numba).
    """
    from core.store._curvepack import pack_nb

    entry_pos, exit_pos = np.asarray(entry_pos, np.int64), np.asarray(exit_pos, np.int64)
    held = int(np.maximum(exit_pos - entry_pos, 0).sum())  # most steps the rows can hold
    layout, runs, steps, plain, bad = pack_nb(
        np.ascontiguousarray(values, np.float64), np.asarray(lengths, np.int64),
        np.asarray(trade_lengths, np.int64), entry_pos, exit_pos, np.asarray(units, np.float64),
        float(TICKS[code]), code, ULP_LIMIT, STEP_BASE, K_LIMIT,
        np.empty(min(held, len(values)), np.int64))
    if bad >= 0:
        raise NonFiniteValue(int(bad))
    return PackedCurves(layout, runs, steps, plain)


def decode(lengths: np.ndarray, packed: PackedCurves, trade_lengths: np.ndarray,
           units: np.ndarray) -> np.ndarray:
    """The curves' float64 values, concatenated (the inverse of :func:`encode`).

    ``trade_lengths``/``units`` are the rows' trade logs as at encode time. Inconsistent
    arrays (damage) raise ValueError.
    """
    lengths = np.asarray(lengths, np.int64)
    layout, runs, steps = packed.layout, packed.runs, packed.steps
    rows = len(lengths)
    if layout.shape != (rows, 3) or runs.ndim != 2 or runs.shape[1] != 2 or steps.ndim != 1:
        raise ValueError("curve layout arrays have the wrong shape")
    code = layout[:, 0]
    grid = (code != PLAIN) & (lengths > 0)
    plain_rows = (code == PLAIN) & (lengths > 0)
    if (layout[:, 1].sum() != len(runs) or layout[:, 2].sum() != len(steps)
            or int(lengths[plain_rows].sum()) != len(packed.plain)
            or ((code < 0) | (code >= len(TICKS))).any() or (layout[~grid, 1:] != 0).any()):
        raise ValueError("curve layout disagrees with the stored runs, steps and values")
    if not grid.any():
        return packed.plain.copy()
    held_run = runs[:, 0] < 0
    run_len = np.where(held_run, ~runs[:, 0], runs[:, 0])
    anchor_bits = runs[:, 1]
    run_row = np.repeat(np.arange(rows), layout[:, 1])
    trade_lengths = np.asarray(trade_lengths, np.int64)
    if len(trade_lengths) != rows or int(trade_lengths.sum()) != len(units):
        raise ValueError("the trade logs do not match the curves' rows")
    if ((run_len <= 0) & ~held_run).any() or (
            np.bincount(run_row, weights=run_len, minlength=rows)[grid] != lengths[grid]).any() \
            or (np.bincount(run_row[held_run], minlength=rows)[grid] != trade_lengths[grid]).any():
        raise ValueError("curve runs do not add up to the curve lengths and trade logs")
    h_len = run_len[held_run]
    if int(h_len.sum()) != len(steps):
        raise ValueError("curve steps disagree with the held runs")
    bits = np.repeat(anchor_bits, run_len)
    if len(steps):
        q = units[np.repeat(grid, trade_lengths)] * TICKS[code[run_row[held_run]]]
        k = np.floor_divide(steps + ULP_LIMIT, STEP_BASE)
        ulps = steps - k * STEP_BASE
        grid_bits = _grid_values(np.repeat(anchor_bits[held_run].view(np.float64), h_len),
                                 np.repeat(q, h_len), k).view(np.int64)
        np.add(grid_bits, ulps, out=grid_bits)  # int64 wraps: the exact inverse
        bits[ragged_index(starts_of(run_len)[held_run], h_len)] = grid_bits
    if not plain_rows.any():
        return bits.view(np.float64)
    out = np.empty(int(lengths.sum()), np.int64)
    grid_points = np.repeat(grid, lengths)
    out[grid_points] = bits
    out[~grid_points] = packed.plain.view(np.int64)
    return out.view(np.float64)


__all__ = ["NonFiniteValue", "PackedCurves", "encode", "decode", "trade_positions", "ragged_index",
           "starts_of"]

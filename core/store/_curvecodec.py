"""Lossless equity-curve codec: flat runs and price-grid steps instead of raw float64 values.

The engine's equity is ``cash`` while flat and ``cash + units * close[t]`` while holding a
position. With prices on a tick grid (cents), each in-market value is its run's first value
(the anchor) plus ``q * k`` for an integer ``k`` and ``q = units * tick``, up to float rounding.
So a curve is stored as runs located from its trade log - (length, trade index or -1 when flat,
anchor bits) - and, per in-market point, ``k`` and the residual between the true float64 bits
and ``anchor + q * k`` in ULPs. The residual is int64 arithmetic modulo 2**64, so decoding is
bit exact as long as both sides compute ``anchor + q * k`` with the same numpy operations
(:func:`_grid_values`). A curve that does not fit (prices off the grid, a flat stretch that
moves, overlapping trades) keeps its plain float64 values; every encode is decoded and compared
bit for bit before it is accepted, per curve.

Everything is vectorised over all curves of a batch or segment (ragged index arithmetic, no
loop over curves or runs).
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
#: |k| beyond this is not exactly representable as float64 steps.
K_LIMIT = float(1 << 52)


@dataclass
class PackedCurves:
    """The stored form of a set of curves (rows may have no curve: length 0)."""

    layout: np.ndarray  # int64 (rows, 3): codec (PLAIN or a grid code), runs, steps of each row
    runs: np.ndarray  # int64 (runs, 3): length, trade index in the row's log (-1 flat), anchor bits
    steps: np.ndarray  # int64 (steps, 2): k and residual ULPs of each in-market point
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
                    trade_rows: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Index of each time in its row's curve dates (``searchsorted`` left, clipped to [0, n]).

    A row's dates are ``calendar[start:start + n]`` and the calendar is a concatenation of
    increasing blocks. Dates are replaced by their rank among the calendar's distinct dates and
    each block is shifted past the previous one, which makes the whole calendar one increasing
    key: one ``searchsorted`` answers every trade of every curve.
    """
    if len(times) == 0 or len(calendar) == 0:
        return np.zeros(len(times), np.int64)
    block = np.zeros(len(calendar), np.int64)
    np.cumsum(calendar[1:] <= calendar[:-1], out=block[1:])
    distinct = np.unique(calendar)
    width = len(distinct) + 1
    keys = block * width + np.searchsorted(distinct, calendar)
    start = date_starts[trade_rows]
    n = lengths[trade_rows]
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


def _row_any(flags: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per ragged part: whether any of its flags is set (False for empty parts)."""
    out = np.zeros(len(lengths), bool)
    nonempty = lengths > 0
    if flags.size and nonempty.any():
        out[nonempty] = np.logical_or.reduceat(flags, starts_of(lengths)[nonempty])
    return out


def encode(values: np.ndarray, lengths: np.ndarray, trade_lengths: np.ndarray,
           entry_pos: np.ndarray, exit_pos: np.ndarray, units: np.ndarray,
           code: int = CENTS) -> PackedCurves:
    """Pack curves (``values`` split by ``lengths``) using their trades' positions and units.

    ``entry_pos``/``exit_pos`` index each trade's entry and exit in its row's curve (trades of
    row i are the ``trade_lengths[i]`` ones after those of earlier rows): the position is held
    over ``[entry, exit)`` and the value is flat from ``exit`` to the next entry. Rows whose
    packing would not be exact fall back to plain values.
    """
    lengths = np.asarray(lengths, np.int64)
    ok, runs, steps, run_row = _pack(values, lengths, trade_lengths, entry_pos, exit_pos, units,
                                     code)
    while True:
        packed = _assemble(values, lengths, ok, runs, steps, run_row, code)
        decoded = decode(lengths, packed, trade_lengths, units).view(np.int64)
        if np.array_equal(decoded, values.view(np.int64)):
            return packed
        ok &= ~_row_any(decoded != values.view(np.int64), lengths)  # e.g. a flat run that moves


def _pack(values, lengths, trade_lengths, entry_pos, exit_pos, units, code):
    """(rows that fit, runs, steps, row of each run): the packing before rows are dropped."""
    rows = len(lengths)
    trade_lengths = np.asarray(trade_lengths, np.int64)
    trade_row = np.repeat(np.arange(rows), trade_lengths)
    trade_index = np.arange(len(trade_row)) - np.repeat(starts_of(trade_lengths), trade_lengths)
    with np.errstate(all="ignore"):
        q_all = units * TICKS[code]
    a = np.asarray(entry_pos, np.int64)
    b = np.asarray(exit_pos, np.int64)
    # a trade opened and closed on one bar holds nothing but still splits the flat run
    steps_ok = np.isfinite(q_all) & (q_all != 0)
    valid = (a <= b) & (a < lengths[trade_row]) & ((a == b) | steps_ok)
    ok = lengths > 0
    # Held spans of one row must not overlap; a row whose spans do is kept plain.
    held = np.flatnonzero(valid)
    same_row = trade_row[held[1:]] == trade_row[held[:-1]]
    ok[trade_row[held[1:]][same_row & (a[held[1:]] < b[held[:-1]])]] = False
    runs, steps, run_row = _runs_and_steps(values, lengths, ok, trade_row, trade_index,
                                           valid & ok[trade_row], a, b, q_all)
    return ok, runs, steps, run_row


def _runs_and_steps(values, lengths, ok, trade_row, trade_index, valid, a, b, q_all):
    """Runs (flat, held, flat, ... per ok row) and the steps of the held points.

    Rows found not to fit are cleared in ``ok``; their runs and steps are dropped later.
    """
    rows = len(lengths)
    held = np.flatnonzero(valid)
    h_row = trade_row[held]
    per_row = np.bincount(h_row, minlength=rows)[ok]
    ok_rows = np.flatnonzero(ok)
    items = 2 * per_row + 1  # flat, held, flat, held, ..., flat
    item_start = starts_of(items)
    rank = np.zeros(rows, np.int64)
    rank[ok_rows] = np.arange(len(ok_rows))
    w = np.arange(len(held)) - np.repeat(starts_of(per_row), per_row)
    first = item_start[rank[h_row]] + 2 * w
    ha, hb = a[held], b[held]
    prev_b = np.zeros(len(held), np.int64)
    if len(held) > 1:
        prev_b[1:] = np.where(h_row[1:] == h_row[:-1], hb[:-1], 0)
    last_b = np.zeros(rows, np.int64)
    is_last = np.ones(len(held), bool)
    is_last[:-1] = h_row[1:] != h_row[:-1]
    last_b[h_row[is_last]] = hb[is_last]
    n_items = int(items.sum())
    item_len = np.empty(n_items, np.int64)
    item_trade = np.full(n_items, -1, np.int64)
    item_len[first] = ha - prev_b
    item_len[first + 1] = hb - ha
    item_trade[first + 1] = trade_index[held]
    item_len[item_start + items - 1] = lengths[ok_rows] - last_b[ok_rows]
    q_item = np.zeros(n_items)
    q_item[first + 1] = q_all[held]
    keep = item_len > 0
    run_len, run_trade, run_q = item_len[keep], item_trade[keep], q_item[keep]
    run_row = np.repeat(ok_rows, items)[keep]

    grid_values = values if len(ok_rows) == rows else values[np.repeat(ok, lengths)]
    bits = grid_values.view(np.int64)
    run_start = starts_of(run_len)
    anchor_bits = bits[run_start] if len(run_start) else np.empty(0, np.int64)
    held_run = run_trade >= 0

    # flat runs end where they start (a cheap early test; the decode check sees every point)
    moved = (bits[run_start + run_len - 1] != anchor_bits) & ~held_run
    ok[run_row[moved]] = False

    # held runs: k and residual ULPs per point, written straight into the steps block
    h_len = run_len[held_run]
    v = grid_values[ragged_index(run_start[held_run], h_len)]
    anchor = np.repeat(anchor_bits[held_run].view(np.float64), h_len)
    q = np.repeat(run_q[held_run], h_len)
    with np.errstate(all="ignore"):
        kf = np.rint(np.divide(np.subtract(v, anchor), q))
    np.clip(kf, -K_LIMIT, K_LIMIT, out=kf)  # a clipped k only widens the residual
    steps = np.empty((len(v), 2), np.int64)
    steps[:, 0] = kf
    np.subtract(v.view(np.int64), _grid_values(anchor, q, kf).view(np.int64), out=steps[:, 1])
    far = np.add(steps[:, 1], ULP_LIMIT).view(np.uint64) > 2 * ULP_LIMIT  # |ulps| > limit
    if far.any():
        ok[run_row[held_run][_row_any(far, h_len)]] = False
    runs = np.stack([run_len, run_trade, anchor_bits], axis=1)
    return runs, steps, run_row


def _assemble(values, lengths, ok, runs, steps, run_row, code) -> PackedCurves:
    """Drop the runs and steps of rows that fell back to plain; lay out the row table."""
    rows = len(lengths)
    keep_run = ok[run_row]
    held_run = runs[:, 1] >= 0
    keep_step = np.repeat(keep_run[held_run], runs[held_run, 0])
    if not keep_run.all():
        runs, run_row = runs[keep_run], run_row[keep_run]
        steps = steps[keep_step]
        held_run = held_run[keep_run]
    layout = np.zeros((rows, 3), np.int64)
    layout[ok, 0] = code
    layout[:, 1] = np.bincount(run_row, minlength=rows)
    layout[:, 2] = np.bincount(run_row[held_run], weights=runs[held_run, 0],
                               minlength=rows).astype(np.int64)
    plain_rows = ~ok & (lengths > 0)
    if plain_rows.all() or not plain_rows.any():
        plain = values.copy() if plain_rows.any() else np.empty(0)
    else:
        plain = values[np.repeat(plain_rows, lengths)]
    return PackedCurves(layout=layout, runs=np.ascontiguousarray(runs),
                        steps=np.ascontiguousarray(steps), plain=plain)


def decode(lengths: np.ndarray, packed: PackedCurves, trade_lengths: np.ndarray,
           units: np.ndarray) -> np.ndarray:
    """The curves' float64 values, concatenated (the inverse of :func:`encode`).

    ``trade_lengths``/``units`` are the rows' trade logs as at encode time. Inconsistent
    arrays (damage) raise ValueError.
    """
    lengths = np.asarray(lengths, np.int64)
    layout, runs, steps = packed.layout, packed.runs, packed.steps
    rows = len(lengths)
    if layout.shape != (rows, 3) or runs.ndim != 2 or steps.ndim != 2:
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
    run_len, run_trade, anchor_bits = runs[:, 0], runs[:, 1], runs[:, 2]
    run_row = np.repeat(np.arange(rows), layout[:, 1])
    if (run_len <= 0).any() or (np.bincount(run_row, weights=run_len, minlength=rows)
                                 [grid] != lengths[grid]).any():
        raise ValueError("curve runs do not add up to the curve lengths")
    held_run = run_trade >= 0
    trade_lengths = np.asarray(trade_lengths, np.int64)
    if len(trade_lengths) != rows or int(trade_lengths.sum()) != len(units):
        raise ValueError("the trade logs do not match the curves' rows")
    h_row, h_trade = run_row[held_run], run_trade[held_run]
    if (h_trade >= trade_lengths[h_row]).any():
        raise ValueError("a curve run points past its trade log")
    q = units[starts_of(trade_lengths)[h_row] + h_trade] * TICKS[code[h_row]]
    h_len = run_len[held_run]
    if int(h_len.sum()) != len(steps):
        raise ValueError("curve steps disagree with the held runs")
    bits = np.repeat(anchor_bits, run_len)
    if len(steps):
        grid_values = _grid_values(np.repeat(anchor_bits[held_run].view(np.float64), h_len),
                                   np.repeat(q, h_len), steps[:, 0])
        grid_bits = grid_values.view(np.int64)
        np.add(grid_bits, steps[:, 1], out=grid_bits)  # int64 wraps: the exact inverse
        bits[ragged_index(starts_of(run_len)[held_run], h_len)] = grid_bits
    if not plain_rows.any():
        return bits.view(np.float64)
    out = np.empty(int(lengths.sum()), np.int64)
    grid_points = np.repeat(grid, lengths)
    out[grid_points] = bits
    out[~grid_points] = packed.plain.view(np.int64)
    return out.view(np.float64)


__all__ = ["PackedCurves", "encode", "decode", "trade_positions", "ragged_index", "starts_of"]

"""An independent numpy packer for the curve codec: the compiled packer must match it exactly.

It was the store's packer before the compiled loop (``core.store._curvepack``): a dozen
vectorised passes over ragged index arrays, then a full decode to drop the rows that did not
round-trip. Its packing (layout, runs, steps, plain values) is the golden output; trade
positions are checked against a plain per-trade ``searchsorted``.
"""
from __future__ import annotations

import numpy as np

from core.store._curvecodec import (CENTS, K_LIMIT, STEP_BASE, TICKS, ULP_LIMIT, PackedCurves,
                                    _grid_values, decode, ragged_index, starts_of)


def _row_any(flags: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per ragged part: whether any of its flags is set (False for empty parts)."""
    out = np.zeros(len(lengths), bool)
    nonempty = lengths > 0
    if flags.size and nonempty.any():
        out[nonempty] = np.logical_or.reduceat(flags, starts_of(lengths)[nonempty])
    return out


def reference_encode(values, lengths, trade_lengths, entry_pos, exit_pos, units, code=CENTS
                     ) -> PackedCurves:
    """Pack every row; rows failing the bit-for-bit decode check go plain."""
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
    """(rows that fit, runs, steps, row of each run): the packing before rows are dropped.

    Every trade of a packed row is one held run, in order; a row with a trade that does not
    line up (reversed, past the curve's end, overlapping the previous one) is kept plain.
    """
    rows = len(lengths)
    trade_lengths = np.asarray(trade_lengths, np.int64)
    trade_row = np.repeat(np.arange(rows), trade_lengths)
    with np.errstate(all="ignore"):
        q_all = units * TICKS[code]
    a = np.asarray(entry_pos, np.int64)
    b = np.asarray(exit_pos, np.int64)
    # a trade opened and closed on one bar holds nothing but still splits the flat run
    fits = (a <= b) & (a < lengths[trade_row]) & ((a == b) | (np.isfinite(q_all) & (q_all != 0)))
    fits[1:] &= (trade_row[1:] != trade_row[:-1]) | (a[1:] >= b[:-1])
    ok = lengths > 0
    ok[trade_row[~fits]] = False
    take = ok[trade_row]
    runs, steps, run_row = _runs_and_steps(values, lengths, ok, trade_row[take], a[take],
                                           b[take], q_all[take])
    return ok, runs, steps, run_row


def _runs_and_steps(values, lengths, ok, t_row, a, b, q_trade):
    """Runs (flat, held, flat, ... per ok row) and the steps of the held points.

    ``t_row``, ``a``, ``b``, ``q_trade`` describe every trade of the ok rows. Rows found not
    to fit are cleared in ``ok``; their runs and steps are dropped later.
    """
    rows = len(lengths)
    ok_rows = np.flatnonzero(ok)
    per_row = np.bincount(t_row, minlength=rows)[ok_rows]
    items = 2 * per_row + 1  # flat, held, flat, held, ..., flat
    item_start = starts_of(items)
    rank = np.zeros(rows, np.int64)
    rank[ok_rows] = np.arange(len(ok_rows))
    w = np.arange(len(t_row)) - np.repeat(starts_of(per_row), per_row)
    first = item_start[rank[t_row]] + 2 * w
    prev_b = np.zeros(len(t_row), np.int64)
    if len(t_row) > 1:
        prev_b[1:] = np.where(t_row[1:] == t_row[:-1], b[:-1], 0)
    last_b = np.zeros(rows, np.int64)
    is_last = np.ones(len(t_row), bool)
    is_last[:-1] = t_row[1:] != t_row[:-1]
    last_b[t_row[is_last]] = b[is_last]
    n_items = int(items.sum())
    item_len = np.empty(n_items, np.int64)
    is_held = np.zeros(n_items, bool)
    item_len[first] = a - prev_b
    item_len[first + 1] = b - a
    is_held[first + 1] = True
    item_len[item_start + items - 1] = lengths[ok_rows] - last_b[ok_rows]
    keep = (item_len > 0) | is_held  # empty flat runs go, every trade's held run stays
    run_len, held_run = item_len[keep], is_held[keep]
    run_row = np.repeat(ok_rows, items)[keep]

    grid_values = values if len(ok_rows) == rows else values[np.repeat(ok, lengths)]
    bits = grid_values.view(np.int64)
    run_start = starts_of(run_len)
    anchor_bits = np.zeros(len(run_len), np.int64)
    nonempty = run_len > 0
    anchor_bits[nonempty] = bits[run_start[nonempty]]

    # flat runs end where they start (a cheap early test; the decode check sees every point)
    moved = (bits[run_start[~held_run] + run_len[~held_run] - 1] != anchor_bits[~held_run])
    ok[run_row[~held_run][moved]] = False

    # held runs: k and residual ULPs per point, fused into one int64 per point
    h_len = run_len[held_run]
    v = grid_values[ragged_index(run_start[held_run], h_len)]
    anchor = np.repeat(anchor_bits[held_run].view(np.float64), h_len)
    q = np.repeat(q_trade, h_len)
    with np.errstate(all="ignore"):
        kf = np.rint(np.divide(np.subtract(v, anchor), q))
    np.clip(kf, -K_LIMIT, K_LIMIT, out=kf)  # a clipped k only widens the residual
    ulps = np.subtract(v.view(np.int64), _grid_values(anchor, q, kf).view(np.int64))
    far = np.add(ulps, ULP_LIMIT).view(np.uint64) > 2 * ULP_LIMIT  # |ulps| > ULP_LIMIT
    if far.any():
        ok[run_row[held_run][_row_any(far, h_len)]] = False
    steps = kf.astype(np.int64)
    np.multiply(steps, STEP_BASE, out=steps)
    np.add(steps, ulps, out=steps)
    runs = np.stack([np.where(held_run, ~run_len, run_len), anchor_bits], axis=1)
    return runs, steps, run_row


def _assemble(values, lengths, ok, runs, steps, run_row, code) -> PackedCurves:
    """Drop the runs and steps of rows that fell back to plain; lay out the row table."""
    rows = len(lengths)
    keep_run = ok[run_row]
    held_run = runs[:, 0] < 0
    held_len = ~runs[held_run, 0]
    if not keep_run.all():
        steps = steps[np.repeat(keep_run[held_run], held_len)]
        held_len = held_len[keep_run[held_run]]
        runs, run_row = runs[keep_run], run_row[keep_run]
        held_run = held_run[keep_run]
    layout = np.zeros((rows, 3), np.int64)
    layout[ok, 0] = code
    layout[:, 1] = np.bincount(run_row, minlength=rows)
    layout[:, 2] = np.bincount(run_row[held_run], weights=held_len, minlength=rows)
    plain_rows = ~ok & (lengths > 0)
    if plain_rows.all() or not plain_rows.any():
        plain = values.copy() if plain_rows.any() else np.empty(0)
    else:
        plain = values[np.repeat(plain_rows, lengths)]
    return PackedCurves(layout=layout, runs=np.ascontiguousarray(runs), steps=steps,
                        plain=plain)


def reference_positions(lengths, date_starts, calendar, trade_rows, times) -> np.ndarray:
    """Each time's ``searchsorted`` in its own row's dates, one row at a time."""
    out = np.zeros(len(times), np.int64)
    for j, (row, time) in enumerate(zip(trade_rows, times)):
        start = date_starts[row]
        out[j] = np.searchsorted(calendar[start:start + lengths[row]], time)
    return out

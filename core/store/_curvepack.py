"""The curve codec's packing loop, compiled: one pass over every point of a batch's curves.

It packs and checks each point once. It reconstructs a held point as ``anchor + q * k`` with
one IEEE multiply and one add, exactly the numpy operations of ``_curvecodec._grid_values``
that decoding uses (numba does not fuse them into an FMA without fastmath; the codec tests
compare its output bit for bit with numpy's). Writers only import it: readers never load numba.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _same_bits(bits, lo, hi, anchor):
    """Whether ``bits[lo:hi]`` all equal ``anchor`` (an OR of XORs, without an early exit)."""
    diff = 0
    for t in range(lo, hi):
        diff |= bits[t] ^ anchor
    return diff == 0


@njit(cache=True, nogil=True)
def pack_nb(values, lengths, trade_lengths, entry_pos, exit_pos, units, tick, code,
            ulp_limit, step_base, k_limit, steps):
    """(layout, runs, steps, plain, first non-finite point or -1) of the curves.

    See ``_curvecodec.encode`` for the format. A row is packed when every trade lines up
    (entry <= exit, entry inside the curve, not before the previous exit, a finite non-zero
    step unless the trade holds no bar), every flat stretch keeps its first value's bits (a
    finite one) and every held point is within ``ulp_limit`` ULPs of its grid value; any other
    row keeps its values plain. A non-finite value always sends its row plain, where the
    copy finds it. ``steps`` is the caller's output buffer, with room for every step the rows
    can hold; runs and plain values go to buffers sized for the worst case (untouched pages
    cost no memory). Each array returned is the filled start of its buffer.
    """
    rows = lengths.shape[0]
    bits = values.view(np.int64)
    layout = np.zeros((rows, 3), np.int64)
    runs = np.empty((2 * entry_pos.shape[0] + rows, 2), np.int64)
    plain = np.empty(values.shape[0], np.float64)
    rebuilt = np.empty(1, np.float64)
    rebuilt_bits = rebuilt.view(np.int64)
    n_runs = 0
    n_steps = 0
    n_plain = 0
    first_bad = -1
    p = 0
    first_trade = 0
    for row in range(rows):
        n = lengths[row]
        m = trade_lengths[row]
        if n == 0:
            first_trade += m
            continue
        runs_before = n_runs
        steps_before = n_steps
        ok = True
        prev_b = 0
        for j in range(first_trade, first_trade + m):
            a = entry_pos[j]
            b = exit_pos[j]
            q = units[j] * tick
            if a > b or a >= n or a < prev_b or (a < b and not (np.isfinite(q) and q != 0.0)):
                ok = False
                break
            if a > prev_b:  # the flat run before this trade
                anchor_bits = bits[p + prev_b]
                if not (np.isfinite(values[p + prev_b])
                        and _same_bits(bits, p + prev_b + 1, p + a, anchor_bits)):
                    ok = False
                    break
                runs[n_runs, 0] = a - prev_b
                runs[n_runs, 1] = anchor_bits
                n_runs += 1
            runs[n_runs, 0] = ~(b - a)  # the held run, even when it holds no bar
            runs[n_runs, 1] = bits[p + a] if b > a else 0
            n_runs += 1
            anchor = values[p + a]
            for t in range(p + a, p + b):
                k = np.rint((values[t] - anchor) / q)
                if not (np.isfinite(values[t]) and k == k):
                    ok = False
                    break
                k = min(max(k, -k_limit), k_limit)  # a clipped k only widens the residual
                rebuilt[0] = anchor + q * k
                ulps = bits[t] - rebuilt_bits[0]
                if ulps > ulp_limit or ulps < -ulp_limit:
                    ok = False
                    break
                steps[n_steps] = np.int64(k) * step_base + ulps
                n_steps += 1
            if not ok:
                break
            prev_b = b
        if ok and n > prev_b:  # the flat run after the last trade
            anchor_bits = bits[p + prev_b]
            ok = np.isfinite(values[p + prev_b]) and _same_bits(bits, p + prev_b + 1, p + n,
                                                                anchor_bits)
            runs[n_runs, 0] = n - prev_b
            runs[n_runs, 1] = anchor_bits
            n_runs += 1
        if ok:
            layout[row, 0] = code
            layout[row, 1] = n_runs - runs_before
            layout[row, 2] = n_steps - steps_before
        else:
            n_runs = runs_before
            n_steps = steps_before
            for t in range(p, p + n):
                if first_bad < 0 and not np.isfinite(values[t]):
                    first_bad = t
                plain[n_plain] = values[t]
                n_plain += 1
        p += n
        first_trade += m
    return layout, runs[:n_runs], steps[:n_steps], plain[:n_plain], first_bad

"""Numba simulation kernels: one bar-by-bar state machine shared by single runs and grids.

``simulate_nb`` runs one backtest over plain arrays: signals are crossings evaluated on the fly
(``entry``/``exit`` series, optional second series, level, direction), the trade side is a
flag (+1 long, -1 short), the exit rule is the vector from ``core.exits.exit_vector`` and
metrics are accumulated as running sums, so a grid cell needs no equity array. It records the
equity curve and the trade log only when given non-empty output arrays. ``grid_metrics_nb``
runs many cells in parallel (``prange``) over one symbol. Conventions (fills, costs, exit order
within a bar) are in docs/engine.md.
"""
from __future__ import annotations

import os

import numpy as np
from numba import njit, prange

from core.metrics import N_METRICS, finish_metrics_nb

# Exit reason codes: index into core.types.EXIT_REASONS.
SIGNAL, STOP_LOSS, TAKE_PROFIT, TRAILING_STOP, TIME_STOP, ATR_STOP, END_OF_DATA = range(7)

#: Columns of the integer / float trade records written by the kernels.
TRADE_INT_FIELDS = ("entry_bar", "exit_bar", "reason", "bars_held")
TRADE_FLOAT_FIELDS = ("entry_price", "exit_price", "units", "pnl", "return")

#: Columns of a grid cell's rule row: entry series row, entry other row (-1: none), entry
#: level, entry direction, the same four for the exit, then the side (+1 long, -1 short).
RULE_FIELDS = ("entry_series", "entry_other", "entry_level", "entry_dir",
               "exit_series", "exit_other", "exit_level", "exit_dir", "side")


@njit(cache=True, nogil=True)
def crossed_nb(x, y, level, direction, t):
    """True if ``x - y`` (``x`` alone when ``y`` is empty) crosses ``level`` at bar t."""
    if t < 1:
        return False
    if y.shape[0] > 0:
        prev = x[t - 1] - y[t - 1]
        cur = x[t] - y[t]
    else:
        prev = x[t - 1]
        cur = x[t]
    if direction < 0:
        return prev >= level and cur < level
    return prev <= level and cur > level


@njit(cache=True, nogil=True, error_model="numpy")  # x / 0 is IEEE (a short can zero equity)
def simulate_nb(
    open_, high, low, close,
    entry_x, entry_y, entry_level, entry_dir,
    exit_x, exit_y, exit_level, exit_dir,
    side, exit_vec, atr,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
    equity_out, trades_int, trades_float, metrics_out,
):
    """Simulate one all-in backtest, long (``side`` +1) or short (-1); return the trade count.

    ``exit_vec`` = (signal on, stop pct, target pct, trail pct, time bars, atr mult, atr
    period), NaN where absent; ``atr`` is the ATR series for the atr stop (empty if none);
    ``borrow`` is a short's fee per bar held as a fraction of the position's value at the close;
    ``days`` (calendar span) and ``periods_per_year`` (bars per year) annualise the metrics.
    Stop, target and trailing levels are kept multiplied by ``side`` so that one comparison
    serves both sides (a short's stop above the entry becomes a level below, as a long's).
    """
    n = close.shape[0]
    record_equity = equity_out.shape[0] > 0
    max_records = trades_int.shape[0]
    signal_on = exit_vec[0] == 1.0
    stop_pct = exit_vec[1]
    target_pct = exit_vec[2]
    trail_pct = exit_vec[3]
    time_bars = exit_vec[4]
    atr_mult = exit_vec[5]
    has_stop = stop_pct == stop_pct
    has_target = target_pct == target_pct
    has_trail = trail_pct == trail_pct
    has_time = time_bars == time_bars
    has_atr = atr_mult == atr_mult
    short = side < 0
    charges_borrow = short and borrow > 0.0  # a short without a fee skips the per-bar charge
    entry_factor = 1.0 + side * slippage  # every fill moves against the trader
    exit_factor = 1.0 - side * slippage
    adverse = high if short else low  # the extreme that moves against the position
    favorable = low if short else high

    cash = initial
    units = 0.0
    in_market = False
    pending_entry = False
    pending_exit = False
    entry_bar = 0
    entry_price = 0.0
    cost_basis = 0.0
    sale = 0.0  # a short's proceeds at entry
    mark_base = 0.0  # equity = mark_base + mark_units * close while in the market
    mark_units = 0.0
    fees = 0.0  # a short's borrow fees so far
    stop_level = 0.0  # these four are side x price: stop, target, the best price since entry
    target_level = 0.0  # (a long's highest high, a short's lowest low) and the atr stop
    extreme = 0.0
    atr_level = np.nan

    prev_equity = initial
    peak_equity = initial
    worst_drawdown = 0.0
    ret_count = 0
    ret_sum = 0.0
    ret_sumsq = 0.0
    down_sumsq = 0.0
    n_trades = 0
    wins = 0
    trade_ret_sum = 0.0
    gross_win = 0.0
    gross_loss = 0.0
    held_sum = 0
    best = -np.inf
    worst = np.inf

    t = 0
    while t < n:
        if not in_market and not pending_entry:
            # Flat: equity stays at cash (returns exactly 0, drawdown unchanged) until the
            # next entry crossing, so scan for it in a tight loop.
            s = t
            while s < n - 1 and not crossed_nb(entry_x, entry_y, entry_level, entry_dir, s):
                s += 1
            if record_equity:
                equity_out[t:s + 1] = cash
            first = t if t > 0 else 1
            if s >= first:
                ret_count += s - first + 1
            prev_equity = cash
            pending_entry = s < n - 1
            t = s + 1
            continue
        if pending_entry:
            pending_entry = False
            fill = open_[t] * entry_factor
            size = (cash - fixed) / (fill * (1.0 + commission))
            if whole_shares:
                size = np.floor(size)
            if size > 0:
                units = size
                cost_basis = units * fill * (1.0 + commission) + fixed
                cash -= cost_basis
                in_market = True
                entry_bar = t
                entry_price = fill
                if short:
                    sale = units * fill * (1.0 - commission) - fixed
                    mark_base = cash + cost_basis + sale
                    mark_units = -units
                    fees = 0.0
                else:
                    mark_base = cash
                    mark_units = units
                stop_level = side * fill * (1.0 - side * stop_pct)
                target_level = side * fill * (1.0 + side * target_pct)
                extreme = side * fill
                atr_level = side * fill - atr_mult * atr[t - 1] if has_atr else np.nan

        exit_price = 0.0
        reason = -1
        if in_market:
            if pending_exit:
                exit_price = open_[t]
                reason = SIGNAL
            elif has_time and t >= entry_bar + time_bars:
                exit_price = open_[t]
                reason = TIME_STOP
            elif t > entry_bar or stop_on_entry_bar:
                level = -np.inf
                level_reason = -1
                if has_stop:
                    level = stop_level
                    level_reason = STOP_LOSS
                if has_trail:
                    trail_level = extreme * (1.0 - side * trail_pct)
                    if trail_level > level:
                        level = trail_level
                        level_reason = TRAILING_STOP
                if has_atr and atr_level > level:
                    level = atr_level
                    level_reason = ATR_STOP
                gap = t > entry_bar
                signed_open = side * open_[t]
                if gap and level_reason >= 0 and signed_open <= level:
                    exit_price = open_[t]
                    reason = level_reason
                elif gap and has_target and signed_open >= target_level:
                    exit_price = open_[t]
                    reason = TAKE_PROFIT
                elif level_reason >= 0 and side * adverse[t] <= level:
                    exit_price = side * level
                    reason = level_reason
                elif has_target and side * favorable[t] >= target_level:
                    exit_price = side * target_level
                    reason = TAKE_PROFIT
        pending_exit = False
        held = t - entry_bar
        if in_market and reason < 0 and t == n - 1:
            exit_price = close[t]
            reason = END_OF_DATA
            held += 1
        if charges_borrow and in_market and (reason < 0 or reason == END_OF_DATA):
            fee = units * close[t] * borrow  # held through this close
            fees += fee
            mark_base -= fee

        if reason >= 0:
            fill = exit_price * exit_factor
            if short:
                pnl = sale - (units * fill * (1.0 + commission) + fixed) - fees
                cash += cost_basis + pnl
            else:
                proceeds = units * fill * (1.0 - commission) - fixed
                cash += proceeds
                pnl = proceeds - cost_basis
            trade_return = pnl / cost_basis
            if n_trades < max_records:
                trades_int[n_trades, 0] = entry_bar
                trades_int[n_trades, 1] = t
                trades_int[n_trades, 2] = reason
                trades_int[n_trades, 3] = held
                trades_float[n_trades, 0] = entry_price
                trades_float[n_trades, 1] = fill
                trades_float[n_trades, 2] = units
                trades_float[n_trades, 3] = pnl
                trades_float[n_trades, 4] = trade_return
            n_trades += 1
            if trade_return > 0:
                wins += 1
            trade_ret_sum += trade_return
            if pnl > 0:
                gross_win += pnl
            elif pnl < 0:
                gross_loss -= pnl
            held_sum += held
            best = max(best, trade_return)
            worst = min(worst, trade_return)
            in_market = False
            units = 0.0
        elif in_market:
            extreme = max(extreme, side * favorable[t])

        equity = mark_base + mark_units * close[t] if in_market else cash
        if record_equity:
            equity_out[t] = equity
        if t > 0:
            r = equity / prev_equity - 1.0
            ret_count += 1
            ret_sum += r
            ret_sumsq += r * r
            down = min(r, 0.0)  # branch-free: the sign of r is unpredictable
            down_sumsq += down * down
        prev_equity = equity
        peak_equity = max(peak_equity, equity)  # branch-free running drawdown
        worst_drawdown = min(worst_drawdown, equity / peak_equity - 1.0)

        if t < n - 1:
            if in_market:
                if signal_on and crossed_nb(exit_x, exit_y, exit_level, exit_dir, t):
                    pending_exit = True
            elif crossed_nb(entry_x, entry_y, entry_level, entry_dir, t):
                pending_entry = True
        t += 1

    finish_metrics_nb(
        metrics_out, n, prev_equity, initial, days, periods_per_year,
        ret_count, ret_sum, ret_sumsq, down_sumsq, worst_drawdown,
        n_trades, wins, trade_ret_sum, gross_win, gross_loss, held_sum, best, worst,
    )
    return n_trades


@njit(cache=True, nogil=True)
def _cell_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
    equity_out, trades_int, trades_float, metrics_out,
):
    """Run grid cell ``cell`` (params row = cell // n_exits, exit rule = cell % n_exits)."""
    rule = rules[cell // n_exits]
    e = cell % n_exits
    empty = series[0, :0]
    entry_y = series[int(rule[1])] if rule[1] >= 0 else empty
    exit_y = series[int(rule[5])] if rule[5] >= 0 else empty
    atr = series[atr_rows[e]] if atr_rows[e] >= 0 else empty
    return simulate_nb(
        open_, high, low, close,
        series[int(rule[0])], entry_y, rule[2], rule[3],
        series[int(rule[4])], exit_y, rule[6], rule[7],
        rule[8], exit_vecs[e], atr,
        commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
        periods_per_year,
        equity_out, trades_int, trades_float, metrics_out,
    )


@njit(cache=True, nogil=True)
def grid_metrics_serial_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
):
    """``grid_metrics_nb`` on one thread (for forked children, see ``parallel_allowed``)."""
    n_exits = exit_vecs.shape[0]
    n_cells = rules.shape[0] * n_exits
    out = np.empty((n_cells, N_METRICS))
    no_equity = np.empty(0)
    no_int = np.empty((0, 4), dtype=np.int64)
    no_float = np.empty((0, 5))
    for cell in range(n_cells):
        _cell_nb(
            open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
            commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
            periods_per_year,
            no_equity, no_int, no_float, out[cell],
        )
    return out


_PARALLEL_PID: list[int] = []


def parallel_allowed() -> bool:
    """False in a process forked from one that already ran a parallel kernel.

    Numba's OpenMP threading layer cannot be used again after ``fork()`` (the child would be
    terminated), so such a child runs grids on one thread instead.
    """
    if not _PARALLEL_PID:
        _PARALLEL_PID.append(os.getpid())
    return _PARALLEL_PID[0] == os.getpid()


@njit(cache=True, parallel=True, nogil=True)
def grid_metrics_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
):
    """Metrics (cells x N_METRICS) for every params row x exit rule, in parallel."""
    n_exits = exit_vecs.shape[0]
    n_cells = rules.shape[0] * n_exits
    out = np.empty((n_cells, N_METRICS))
    no_equity = np.empty(0)
    for cell in prange(n_cells):
        no_int = np.empty((0, 4), dtype=np.int64)
        no_float = np.empty((0, 5))
        _cell_nb(
            open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
            commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
            periods_per_year,
            no_equity, no_int, no_float, out[cell],
        )
    return out


#: Trade slots per cell in the one-pass grid; cells that traded more often are re-run.
TRADE_SLOTS = 256
_MAX_SLOT_ROWS = 2_000_000  # bounds the one-pass buffers (~144 MB)
_FEW_CELLS = 64


def grid_metrics_and_trades(*args):
    """(metrics, trades_int, trades_float) of every cell, trades in cell order.

    One parallel pass records up to ``TRADE_SLOTS`` trades per cell; only the cells that
    traded more often are re-run into exactly sized slots.
    """
    n_cells = args[5].shape[0] * args[6].shape[0]
    n_bars = args[3].shape[0]
    cap = min(TRADE_SLOTS, n_bars, max(1, _MAX_SLOT_ROWS // max(n_cells, 1)))
    if not parallel_allowed():
        metrics = grid_metrics_serial_nb(*args)
        return (metrics, *_rerun_trades(args, metrics[:, 0].astype(np.int64),
                                        np.arange(n_cells, dtype=np.int64)))
    metrics, slots_int, slots_float = grid_metrics_trades_nb(*args, cap)
    counts = metrics[:, 0].astype(np.int64)
    fits = counts <= cap
    if fits.all():
        keep = (np.arange(cap) < counts[:, None]).ravel()
        return metrics, slots_int[keep], slots_float[keep]
    keep = ((np.arange(cap) < counts[:, None]) & fits[:, None]).ravel()
    over_int, over_float = _rerun_trades(args, counts, np.flatnonzero(~fits))
    from_slots = np.repeat(fits, counts)  # per final row: does its cell come from the slots?
    trades_int = np.empty((counts.sum(), 4), dtype=np.int64)
    trades_float = np.empty((counts.sum(), 5))
    trades_int[from_slots], trades_float[from_slots] = slots_int[keep], slots_float[keep]
    trades_int[~from_slots], trades_float[~from_slots] = over_int, over_float
    return metrics, trades_int, trades_float


def _rerun_trades(args, counts, cells):
    """Trades of ``cells`` (in that order), each into slots sized from ``counts``."""
    offsets = np.zeros(len(cells) + 1, dtype=np.int64)
    np.cumsum(counts[cells], out=offsets[1:])
    # A parallel launch costs more than a few cells (thread wake-up), so few run on one thread.
    few = len(cells) < _FEW_CELLS
    kernel = grid_trades_nb if parallel_allowed() and not few else grid_trades_serial_nb
    return kernel(*args, cells, offsets)


def grid_metrics(*args):
    """Run ``grid_metrics_nb`` in parallel where allowed, else its one-thread twin."""
    kernel = grid_metrics_nb if parallel_allowed() else grid_metrics_serial_nb
    return kernel(*args)


@njit(cache=True, parallel=True, nogil=True)
def grid_metrics_trades_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year, cap,
):
    """Metrics and, in the same pass, up to ``cap`` trades per cell (cell i owns rows
    ``i * cap`` onwards). A cell whose ``num_trades`` exceeds ``cap`` has a truncated log."""
    n_exits = exit_vecs.shape[0]
    n_cells = rules.shape[0] * n_exits
    out = np.empty((n_cells, N_METRICS))
    trades_int = np.empty((n_cells * cap, 4), dtype=np.int64)
    trades_float = np.empty((n_cells * cap, 5))
    no_equity = np.empty(0)
    for cell in prange(n_cells):
        lo = cell * cap
        _cell_nb(
            open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
            commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
            periods_per_year,
            no_equity, trades_int[lo:lo + cap], trades_float[lo:lo + cap], out[cell],
        )
    return out, trades_int, trades_float


@njit(cache=True, parallel=True, nogil=True)
def grid_trades_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
    cells, offsets,
):
    """Trade records of ``cells``; ``cells[i]`` fills rows ``offsets[i]:offsets[i + 1]``."""
    n_exits = exit_vecs.shape[0]
    n_run = cells.shape[0]
    trades_int = np.empty((offsets[n_run], 4), dtype=np.int64)
    trades_float = np.empty((offsets[n_run], 5))
    no_equity = np.empty(0)
    for i in prange(n_run):
        scratch = np.empty(N_METRICS)
        cell = cells[i]
        lo = offsets[i]
        hi = offsets[i + 1]
        _cell_nb(
            open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
            commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
            periods_per_year,
            no_equity, trades_int[lo:hi], trades_float[lo:hi], scratch,
        )
    return trades_int, trades_float


@njit(cache=True, nogil=True)
def grid_trades_serial_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
    cells, offsets,
):
    """``grid_trades_nb`` on one thread."""
    n_exits = exit_vecs.shape[0]
    n_run = cells.shape[0]
    trades_int = np.empty((offsets[n_run], 4), dtype=np.int64)
    trades_float = np.empty((offsets[n_run], 5))
    no_equity = np.empty(0)
    scratch = np.empty(N_METRICS)
    for i in range(n_run):
        cell = cells[i]
        lo = offsets[i]
        hi = offsets[i + 1]
        _cell_nb(
            open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
            commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
            periods_per_year,
            no_equity, trades_int[lo:hi], trades_float[lo:hi], scratch,
        )
    return trades_int, trades_float


@njit(cache=True, nogil=True)
def grid_equity_nb(
    open_, high, low, close, series, rules, exit_vecs, atr_rows,
    commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
    periods_per_year,
):
    """Equity curves (cells x bars) of every cell, on one thread.

    Only batches that keep their curves run it; one thread keeps it usable in forked children
    without a parallel twin, and the store's encoding of the curves is the slower step anyway.
    """
    n_exits = exit_vecs.shape[0]
    n_cells = rules.shape[0] * n_exits
    out = np.empty((n_cells, close.shape[0]))
    no_int = np.empty((0, 4), dtype=np.int64)
    no_float = np.empty((0, 5))
    scratch = np.empty(N_METRICS)
    for cell in range(n_cells):
        _cell_nb(
            open_, high, low, close, series, rules, exit_vecs, atr_rows, cell, n_exits,
            commission, fixed, slippage, borrow, initial, whole_shares, stop_on_entry_bar, days,
            periods_per_year,
            out[cell], no_int, no_float, scratch,
        )
    return out

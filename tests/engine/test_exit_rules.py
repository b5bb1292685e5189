"""Hand-computed 6-8 bar cases for every exit rule and the within-bar order (docs/engine.md).

Entries and exits are placed by hand: the kernel is driven with a series that crosses below 0.5
exactly at the chosen signal bars, so each case is about the exit convention alone. A crossing
needs a previous bar, so every case gets a copy of its first bar in front ("bar -1"); bar numbers
below are those of the listed bars.
"""
from __future__ import annotations

import numpy as np
import pytest

from core.exits import canonical_exit_rule, exit_vector
from core.indicators import atr
from core.kernels import simulate_nb
from core.metrics import N_METRICS
from core.types import EXIT_REASONS

from . import reference

# bar:      0    1    2    3    4    5   6   7
OPEN = [100, 100, 101, 107, 107, 95, 92, 93]
HIGH = [101, 102, 106, 108, 109, 96, 94, 95]
LOW = [99, 98, 97, 106, 100, 90, 91, 92]
CLOSE = [100, 101, 104, 107, 101, 92, 93, 94]


def signal_series(n, bars):
    """1.0 everywhere except 0.0 at ``bars``: crosses below 0.5 exactly there."""
    x = np.ones(n)
    x[list(bars)] = 0.0
    return x


def run(exit_rule, entries=(0,), exits=(), ohlc=(OPEN, HIGH, LOW, CLOSE), stop_on_entry_bar=True,
        costs=(0.0, 0.0, 0.0), initial=100_000.0, whole_shares=False, direction="long",
        borrow_rate=0.0):
    """Trades as (exit_bar, exit_price, reason, bars_held) plus the full trade arrays."""
    o, h, lo, c = (np.asarray([a[0], *a], dtype=float) for a in ohlc)
    n = len(c)
    entries = [b + 1 for b in entries]
    exits = [b + 1 for b in exits]
    rule = canonical_exit_rule(exit_rule)
    vec = exit_vector(rule)
    atr_series = atr(h, lo, c, int(vec[6])) if vec[6] == vec[6] else np.empty(0)
    trades_int = np.empty((n, 4), dtype=np.int64)
    trades_float = np.empty((n, 5))
    equity = np.empty(n)
    count = simulate_nb(
        o, h, lo, c,
        signal_series(n, entries), np.empty(0), 0.5, -1.0,
        signal_series(n, exits), np.empty(0), 0.5, -1.0,
        -1.0 if direction == "short" else 1.0, vec, atr_series,
        costs[0], costs[1], costs[2], borrow_rate / 252, initial, whole_shares,
        stop_on_entry_bar, 10.0, 252.0, equity, trades_int, trades_float, np.empty(N_METRICS),
    )
    # The independent reference loop must agree on every hand case too.
    ref_equity, ref_trades = reference.simulate(
        list(o), list(h), list(lo), list(c),
        [i in entries for i in range(n)], [i in exits for i in range(n)], rule,
        {"commission": costs[0], "fixed": costs[1], "slippage_bps": costs[2] * 1e4,
         "borrow_rate": borrow_rate},
        initial, whole_shares, stop_on_entry_bar, direction)
    summary = [
        (int(trades_int[i, 1]) - 1, round(float(trades_float[i, 1]), 10),
         EXIT_REASONS[trades_int[i, 2]], int(trades_int[i, 3]))
        for i in range(count)
    ]
    assert summary == [(t["exit_bar"] - 1, round(t["exit_price"], 10), t["exit_reason"],
                        t["bars_held"]) for t in ref_trades]
    np.testing.assert_allclose(equity, ref_equity, rtol=1e-12)
    return summary, trades_int[:count], trades_float[:count], equity[1:]


def test_signal_exit_fills_at_next_open():
    assert run(None, exits=(3,))[0] == [(4, 107.0, "signal", 3)]


def test_open_trade_is_marked_at_last_close_as_end_of_data():
    summary, _, floats, equity = run(None)
    assert summary == [(7, 94.0, "end_of_data", 7)]  # entry bar 1 .. last close of bar 7
    assert equity[-1] == pytest.approx(100_000 * 94 / 100)


def test_stop_loss_gap_fills_at_the_open():
    # entry 100, level 96; bar 5 opens at 95 <= 96 -> fills at min(open, level) = 95
    assert run({"type": "stop_loss", "pct": 0.04})[0] == [(5, 95.0, "stop_loss", 4)]


def test_stop_loss_inside_the_bar_fills_at_the_level():
    # level 97.5; bar 2 opens at 101 and its low 97 touches it
    assert run({"type": "stop_loss", "pct": 0.025})[0] == [(2, 97.5, "stop_loss", 1)]


def test_stop_on_entry_bar_option():
    # level 98.5: the entry bar's low (98) touches it; with the option off, bar 2 does.
    rule = {"type": "stop_loss", "pct": 0.015}
    assert run(rule, stop_on_entry_bar=True)[0] == [(1, 98.5, "stop_loss", 0)]
    assert run(rule, stop_on_entry_bar=False)[0] == [(2, 98.5, "stop_loss", 1)]


def test_take_profit_inside_the_bar_fills_at_the_level():
    assert run({"type": "take_profit", "pct": 0.05})[0] == [(2, 105.0, "take_profit", 1)]


def test_take_profit_gap_fills_at_the_open():
    # level 106.5: bar 2's high is 106; bar 3 opens at 107 -> max(open, level) = 107
    assert run({"type": "take_profit", "pct": 0.065})[0] == [(3, 107.0, "take_profit", 2)]


def test_stop_first_when_stop_and_target_touch_the_same_bar():
    rule = [{"type": "stop_loss", "pct": 0.025}, {"type": "take_profit", "pct": 0.05}]
    assert run(rule)[0] == [(2, 97.5, "stop_loss", 1)]  # bar 2: low 97, high 106


def test_trailing_stop_follows_highs_of_completed_bars():
    # peak 100 -> 102 (bar 1) -> 106 (bar 2) -> 108 (bar 3); level on bar 4 = 108 * 0.95
    assert run({"type": "trailing_stop", "pct": 0.05})[0] == [(4, 102.6, "trailing_stop", 3)]


def test_time_stop_exits_at_open_of_entry_bar_plus_n():
    assert run({"type": "time_stop", "bars": 3})[0] == [(4, 107.0, "time_stop", 3)]
    assert run({"type": "time_stop", "bars": 10})[0] == [(7, 94.0, "end_of_data", 7)]


def test_atr_stop_level_from_entry_fill_and_signal_bar_atr():
    # True ranges: bar 0 (after bar -1) 2, bar 1 4, bar 2 9, bar 3 max(2, |108-104|,
    # |106-104|) = 4. ATR(2) seeds at bar 1 with (2 + 4) / 2 = 3, then (3 + 9) / 2 = 6 at
    # bar 2 and (6 + 4) / 2 = 5 at bar 3. Signal at bar 3, entry at bar 4's open 107:
    # level = 107 - 1 x 5 = 102, touched by bar 4's low (100).
    rule = {"type": "atr_stop", "mult": 1.0, "period": 2}
    assert run(rule, entries=(3,))[0] == [(4, 102.0, "atr_stop", 0)]
    assert run(rule, entries=(3,), stop_on_entry_bar=False)[0] == [(5, 95.0, "atr_stop", 1)]


def test_atr_stop_is_inactive_while_atr_is_undefined():
    # ATR(5) is first defined at bar 4 (bar -1 counts), after the signal on bar 0
    rule = {"type": "atr_stop", "mult": 0.1, "period": 5}
    assert run(rule, entries=(0,))[0] == [(7, 94.0, "end_of_data", 7)]


def test_signal_exit_outranks_a_time_stop_at_the_same_open():
    rule = {"type": "time_stop", "bars": 3}
    assert run(rule, exits=(3,))[0] == [(4, 107.0, "signal", 3)]


def test_highest_stop_level_wins():
    rule = [{"type": "stop_loss", "pct": 0.10}, {"type": "trailing_stop", "pct": 0.05}]
    assert run(rule)[0] == [(4, 102.6, "trailing_stop", 3)]


def test_pending_signal_exit_comes_before_a_gap_stop():
    rule = {"type": "stop_loss", "pct": 0.04}
    assert run(rule, exits=(4,))[0] == [(5, 95.0, "signal", 4)]


def test_disabled_signal_ignores_exit_signals():
    rule = {"type": "signal", "enabled": False}
    assert run(rule, exits=(3,))[0] == [(7, 94.0, "end_of_data", 7)]


def test_entry_while_long_and_exit_while_flat_are_ignored():
    assert run(None, entries=(0, 2), exits=(0, 5))[0] == [(6, 92.0, "signal", 5)]


def test_new_entry_after_a_stop_needs_a_new_signal():
    rule = {"type": "stop_loss", "pct": 0.025}
    assert len(run(rule, entries=(0,))[0]) == 1  # stopped at bar 2, no re-entry
    summary = run(rule, entries=(0, 2))[0]  # a fresh signal on the stop bar's close
    # re-entry at bar 3's open 107, new level 107 x 0.975 = 104.325, bar 4's low is 100
    assert summary == [(2, 97.5, "stop_loss", 1), (4, 104.325, "stop_loss", 1)]


def test_signal_on_the_last_bar_is_dropped():
    assert run(None, entries=(7,))[0] == []


@pytest.mark.parametrize("stop_on_entry_bar", [True, False])
def test_vectorbt_fixture_prices(stop_on_entry_bar):
    # o = h = l = c = [2, 3, 4, 3, 2, 1]; signal on bar 0 -> entry at bar 1's open, 3.
    p = [2.0, 3.0, 4.0, 3.0, 2.0, 1.0]
    ohlc = (p, p, p, p)
    # -10% stop: level 2.7; bar 4 opens at 2 -> gap fill at 2 (return -1/3), either way.
    summary, _, floats, _ = run({"type": "stop_loss", "pct": 0.1}, ohlc=ohlc,
                                stop_on_entry_bar=stop_on_entry_bar)
    assert summary == [(4, 2.0, "stop_loss", 3)]
    assert floats[0, 4] == pytest.approx(-1 / 3)
    # 10% trailing: peak 4 after bar 2 -> level 3.6; bar 3 opens at 3 -> fill at 3
    assert run({"type": "trailing_stop", "pct": 0.1}, ohlc=ohlc,
               stop_on_entry_bar=stop_on_entry_bar)[0] == [(3, 3.0, "trailing_stop", 2)]
    # 10% target: level 3.3; bar 2 opens at 4 -> gap fill at 4
    assert run({"type": "take_profit", "pct": 0.1}, ohlc=ohlc,
               stop_on_entry_bar=stop_on_entry_bar)[0] == [(2, 4.0, "take_profit", 1)]


def test_costs_reduce_the_result_by_the_hand_computed_amount():
    # commission 0.1 %, 2.00 per order, 10 bps slippage; entry bar 1 (open 100), exit bar 4
    # (open 107). Buy fill 100 x 1.001 = 100.1; units = (100000 - 2) / (100.1 x 1.001)
    # = 99998 / 100.2001 = 997.98304...; sell fill 107 x 0.999 = 106.893;
    # proceeds = units x 106.893 x 0.999 - 2 = units x 106.786107 - 2 = 106,568.72
    # (cash after the trade), against 107,000.00 without costs: 431.28 less.
    _, _, floats, equity = run(None, exits=(3,), costs=(0.001, 2.0, 0.001))
    units = 99998 / 100.2001
    assert floats[0, 0] == pytest.approx(100.1)
    assert floats[0, 2] == pytest.approx(units, rel=1e-12)
    assert floats[0, 1] == pytest.approx(106.893)
    proceeds = units * 106.893 * 0.999 - 2
    assert equity[-1] == pytest.approx(proceeds, rel=1e-12)
    assert equity[-1] == pytest.approx(106_568.72, abs=0.01)
    _, _, _, free = run(None, exits=(3,))
    assert free[-1] == pytest.approx(107_000.0)
    assert free[-1] - equity[-1] == pytest.approx(431.28, abs=0.01)
    assert floats[0, 3] == pytest.approx(proceeds - 100_000, abs=1e-6)  # pnl vs full cost
    assert floats[0, 4] == pytest.approx((proceeds - 100_000) / 100_000, rel=1e-9)  # return


def test_whole_shares_buys_floor_of_cash_over_price():
    ohlc = ([300, 300, 330, 330], [300, 300, 330, 330], [300, 300, 330, 330],
            [300, 300, 330, 330])
    _, _, floats, equity = run(None, exits=(1,), ohlc=ohlc, initial=1000.0, whole_shares=True)
    assert floats[0, 2] == 3.0  # floor(1000 / 300)
    assert equity[-1] == pytest.approx(100 + 3 * 330)  # 1090
    _, _, floats, equity = run(None, exits=(1,), ohlc=ohlc, initial=1000.0)
    assert floats[0, 2] == pytest.approx(1000 / 300)
    assert equity[-1] == pytest.approx(1100.0)


def test_whole_shares_skips_an_entry_it_cannot_afford():
    ohlc = ([300.0] * 4,) * 4
    summary, _, _, equity = run(None, ohlc=ohlc, initial=250.0, whole_shares=True)
    assert summary == [] and list(equity) == [250.0] * 4

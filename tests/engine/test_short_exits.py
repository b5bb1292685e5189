"""Hand-computed short trades: fills, P&L, equity marks, every exit rule mirrored, borrow fees.

Same harness as test_exit_rules.py (signals placed by hand, every case also checked against the
reference loop). A short sells at the next open and buys back at the exit fill; with no costs
and 100,000 of capital a short at 100 is 1,000 units, so its P&L is 1,000 x (100 - exit).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from core.exits import exit_vector
from core.kernels import simulate_nb
from core.metrics import N_METRICS
from core.types import METRIC_NAMES

from .conftest import bars_from
from .test_exit_rules import run

# bar:       0    1   2   3   4   5      a fall, then a rally (for the trailing stop)
FALL = ([100, 100, 97, 94, 92, 96],
        [101, 101, 98, 95, 95, 99],
        [99, 96, 93, 91, 90, 95],
        [100, 97, 94, 92, 94, 98])


def short(exit_rule, **kwargs):
    return run(exit_rule, direction="short", **kwargs)


def test_a_short_sells_at_the_next_open_and_buys_back_at_the_exit_fill():
    # entry: bar 1's open 100; signal exit on bar 3 -> buy back at bar 4's open 107
    summary, _, floats, equity = short(None, exits=(3,))
    assert summary == [(4, 107.0, "signal", 3)]
    entry, exit_, units, pnl, ret = floats[0]
    assert (entry, exit_, units) == (100.0, 107.0, 1000.0)
    assert pnl == pytest.approx(1000 * (100 - 107)) and ret == pytest.approx(-0.07)
    # marked at each close as cash + units x (entry - close): closes 101, 104, 107, then flat
    assert list(equity) == pytest.approx([100_000, 99_000, 96_000, 93_000, 93_000, 93_000,
                                          93_000, 93_000])


def test_an_open_short_is_bought_back_at_the_last_close():
    summary, _, floats, equity = short(None)
    assert summary == [(7, 94.0, "end_of_data", 7)]
    assert floats[0, 3] == pytest.approx(6_000.0) and equity[-1] == pytest.approx(106_000)


def test_short_stop_loss_gap_fills_at_the_open():
    # level 100 x 1.065 = 106.5: bar 2's high 106 stays below; bar 3 opens at 107 above it
    # -> filled at max(open, level) = 107
    summary, _, floats, _ = short({"type": "stop_loss", "pct": 0.065})
    assert summary == [(3, 107.0, "stop_loss", 2)]
    assert floats[0, 3] == pytest.approx(-7_000.0)


def test_short_stop_loss_inside_the_bar_fills_at_the_level():
    # level 105: bar 2 opens at 101 and its high 106 reaches it
    assert short({"type": "stop_loss", "pct": 0.05})[0] == [(2, 105.0, "stop_loss", 1)]


def test_short_take_profit_gap_fills_at_the_open():
    # level 100 x 0.96 = 96: lows 98, 97, 106, 100 stay above; bar 5 opens at 95 below it
    # -> filled at min(open, level) = 95
    summary, _, floats, _ = short({"type": "take_profit", "pct": 0.04})
    assert summary == [(5, 95.0, "take_profit", 4)]
    assert floats[0, 3] == pytest.approx(5_000.0) and floats[0, 4] == pytest.approx(0.05)


def test_short_take_profit_inside_the_bar_fills_at_the_level():
    # level 97.5: bar 2's low 97 reaches it
    assert short({"type": "take_profit", "pct": 0.025})[0] == [(2, 97.5, "take_profit", 1)]


def test_short_trailing_stop_follows_lows_of_completed_bars():
    # trough 100 -> 96 (bar 1) -> 93 (bar 2) -> 91 (bar 3) -> 90 (bar 4); the levels 105,
    # 100.8, 97.65, 95.55 are never reached by the highs 101, 98, 95, 95; on bar 5 the level is
    # 90 x 1.05 = 94.5 and the bar opens at 96 above it -> filled at the open
    summary, _, floats, _ = short({"type": "trailing_stop", "pct": 0.05}, ohlc=FALL)
    assert summary == [(5, 96.0, "trailing_stop", 4)]
    assert floats[0, 3] == pytest.approx(4_000.0)


def test_short_trailing_stop_inside_the_bar():
    # 3 %: bar 2's level 96 x 1.03 = 98.88 is not reached (high 98); bar 3's level
    # 93 x 1.03 = 95.79 is not (high 95); bar 4's 91 x 1.03 = 93.73 is (high 95) -> 93.73
    summary = short({"type": "trailing_stop", "pct": 0.03}, ohlc=FALL)[0]
    assert summary == [(4, 93.73, "trailing_stop", 3)]


def test_the_lowest_short_stop_wins():
    rule = [{"type": "stop_loss", "pct": 0.10}, {"type": "trailing_stop", "pct": 0.05}]
    assert short(rule, ohlc=FALL)[0] == [(5, 96.0, "trailing_stop", 4)]  # 94.5 below 110


def test_short_atr_stop_is_above_the_entry():
    # ATR(2) on the signal bar 3 is 5 (test_exit_rules); entry at bar 4's open 107:
    # level = 107 + 0.3 x 5 = 108.5, reached by bar 4's high 109 on the entry bar
    rule = {"type": "atr_stop", "mult": 0.3, "period": 2}
    assert short(rule, entries=(3,))[0] == [(4, 108.5, "atr_stop", 0)]
    # 1 x ATR: level 112, never reached; bought back at the last close
    rule = {"type": "atr_stop", "mult": 1.0, "period": 2}
    assert short(rule, entries=(3,))[0] == [(7, 94.0, "end_of_data", 4)]


def test_short_stop_first_when_stop_and_target_touch_the_same_bar():
    # bar 2: high 106 reaches the stop 105, low 97 the target 97.5 -> the stop (conservative)
    rule = [{"type": "stop_loss", "pct": 0.05}, {"type": "take_profit", "pct": 0.025}]
    assert short(rule)[0] == [(2, 105.0, "stop_loss", 1)]


def test_short_stop_on_entry_bar_option():
    # level 101.5: the entry bar's high (102) reaches it; with the option off, bar 2 does
    rule = {"type": "stop_loss", "pct": 0.015}
    assert short(rule, stop_on_entry_bar=True)[0] == [(1, 101.5, "stop_loss", 0)]
    assert short(rule, stop_on_entry_bar=False)[0] == [(2, 101.5, "stop_loss", 1)]


def test_short_costs_are_hand_computed():
    # commission 0.1 %, 2.00 per order, 10 bps slippage. Sell fill 100 x 0.999 = 99.9;
    # units = (100000 - 2) / (99.9 x 1.001) = 99998 / 99.9999; buy-back fill 107 x 1.001
    # = 107.107. P&L = units x (99.9 - 107.107) - entry costs - exit costs, where each leg
    # costs units x fill x 0.001 + 2; return = P&L / (units x 99.9 x 1.001 + 2) = P&L / 100000.
    _, _, floats, equity = short(None, exits=(3,), costs=(0.001, 2.0, 0.001))
    units = 99998 / 99.9999
    entry, exit_, got_units, pnl, ret = floats[0]
    assert entry == pytest.approx(99.9) and exit_ == pytest.approx(107.107)
    assert got_units == pytest.approx(units, rel=1e-12)
    expected = (units * (99.9 - 107.107) - (units * 99.9 * 0.001 + 2)
                - (units * 107.107 * 0.001 + 2))
    assert pnl == pytest.approx(expected, rel=1e-12)
    assert ret == pytest.approx(expected / 100_000, rel=1e-12)
    assert equity[-1] == pytest.approx(100_000 + expected, rel=1e-12)
    # the entry bar's close 101 is marked net of the entry costs
    assert equity[1] == pytest.approx(100_000 - (units * 99.9 * 0.001 + 2)
                                      + units * (99.9 - 101), rel=1e-12)


def test_borrow_fee_accrues_at_every_close_held():
    # 25.2 % a year = 0.1 % a bar of the position's value at the close: held through the
    # closes of bars 1, 2, 3 (101, 104, 107) -> 1000 x 312 x 0.001 = 312
    _, _, floats, equity = short(None, exits=(3,), borrow_rate=0.252)
    assert floats[0, 3] == pytest.approx(-7_000 - 312)
    assert list(equity[:5]) == pytest.approx([100_000, 98_899, 95_795, 92_688, 92_688])
    # at the end of data the last close is held too (bars_held counts it)
    summary, _, floats, _ = short(None, entries=(5,), borrow_rate=0.252)
    assert summary == [(7, 94.0, "end_of_data", 2)]  # entry at bar 6's open 92
    units = 100_000 / 92
    assert floats[0, 3] == pytest.approx(units * (92 - 94) - units * (93 + 94) * 0.001)
    # longs pay no borrow
    assert run(None, exits=(3,), borrow_rate=0.252)[2][0, 3] == pytest.approx(7_000)


def test_a_short_can_lose_more_than_the_equity():
    # the price goes from 100 to 260: the short loses 160,000 of 100,000; the run goes on with
    # negative equity and a later entry signal cannot be sized
    p = [100.0, 100, 160, 220, 260, 260, 260]
    summary, _, floats, equity = short(None, entries=(0, 4), ohlc=(p, p, p, p))
    assert summary == [(6, 260.0, "end_of_data", 6)]
    assert floats[0, 3] == pytest.approx(-160_000) and equity[-1] == pytest.approx(-60_000)
    summary, _, _, equity = short(None, entries=(0, 4), exits=(3,), ohlc=(p, p, p, p))
    assert summary == [(4, 260.0, "signal", 3)]
    assert list(equity[4:]) == pytest.approx([-60_000] * 3)  # no second trade from cash < 0


def test_equity_at_zero_gives_undefined_ratios_not_an_error():
    # a short at 100 marked at a close of 200 is worth exactly 0: the next bar's return
    # divides by 0 (IEEE: inf or NaN), so sharpe and sortino are NaN; the rest is defined
    p = [100.0, 100, 100, 150, 200, 250, 250]
    bars = bars_from(p, p, p, p)
    o, h, lo, c = (bars[k].to_numpy() for k in ("open", "high", "low", "close"))
    entry = np.array([1.0, 0, 1, 1, 1, 1, 1])  # crosses below 0.5 on bar 1: entry at bar 2
    metrics = np.empty(N_METRICS)
    equity = np.empty(7)
    count = simulate_nb(o, h, lo, c, entry, np.empty(0), 0.5, -1.0, np.ones(7), np.empty(0),
                        0.5, -1.0, -1.0, exit_vector(None), np.empty(0), 0.0, 0.0, 0.0, 0.0,
                        100_000.0, False, True, 8.0, 252.0, equity,
                        np.empty((7, 4), dtype=np.int64),
                        np.empty((7, 5)), metrics)
    assert count == 1
    assert list(equity) == pytest.approx([1e5, 1e5, 1e5, 5e4, 0.0, -5e4, -5e4])
    got = dict(zip(METRIC_NAMES, metrics))
    assert math.isnan(got["sharpe_ratio"]) and math.isnan(got["sortino_ratio"])
    assert math.isnan(got["cagr"]) and got["total_return"] == pytest.approx(-1.5)
    assert got["num_trades"] == 1 and got["worst_trade"] == pytest.approx(-1.5)

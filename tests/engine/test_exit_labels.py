"""Exit-rule labels name the rule and its unit, and the stored exit rules are listed by label."""
from __future__ import annotations

import pytest

from core.engine import run_many
from core.exits import EXIT_RULE_TYPES, exit_label, stored_exit_rules
from core.store import open_store
from .conftest import make_bars


@pytest.mark.parametrize("rule, label", [
    (None, "signal"),
    ({"type": "signal"}, "signal"),
    ({"type": "signal", "enabled": False}, "end of data only"),
    ([{"type": "signal", "enabled": False}, {"type": "take_profit", "pct": 0.1}], "take profit 10 %"),
    ([{"type": "signal", "enabled": False}, {"type": "stop_loss", "pct": 0.05}], "stop loss 5 %"),
    ([{"type": "signal", "enabled": False}, {"type": "trailing_stop", "pct": 0.08}],
     "trailing stop 8 %"),
    ([{"type": "signal", "enabled": False}, {"type": "time_stop", "bars": 20}], "time stop 20 bars"),
    ([{"type": "signal", "enabled": False}, {"type": "time_stop", "bars": 1}], "time stop 1 bar"),
    ([{"type": "signal", "enabled": False}, {"type": "atr_stop", "mult": 3, "period": 14}],
     "ATR stop 3 × ATR(14)"),
    ([{"type": "signal", "enabled": False}, {"type": "atr_stop", "mult": 2.5, "period": 20}],
     "ATR stop 2.5 × ATR(20)"),
])
def test_each_rule_type_has_a_label_with_its_unit(rule, label):
    assert exit_label(rule) == label


def test_every_rule_type_has_its_own_words():
    kinds = [k for k in EXIT_RULE_TYPES if k != "signal"]
    labels = {exit_label([{"type": "signal", "enabled": False}, {"type": k}]) for k in kinds}
    assert len(labels) == len(kinds) and not any("_" in label for label in labels)


def test_combinations_are_joined_with_plus_signal_first():
    assert exit_label({"type": "stop_loss", "pct": 0.05}) == "signal + stop loss 5 %"
    assert exit_label([{"type": "signal", "enabled": False}, {"type": "trailing_stop", "pct": 0.025},
                       {"type": "take_profit", "pct": 0.1}]) == "take profit 10 % + trailing stop 2.5 %"
    assert exit_label([{"type": "time_stop", "bars": 5}, {"type": "atr_stop"}]) == (
        "signal + ATR stop 2 × ATR(14) + time stop 5 bars")


def test_percentages_keep_their_precision_and_never_show_a_bare_pct():
    assert exit_label({"type": "stop_loss", "pct": 0.07}) == "signal + stop loss 7 %"
    assert exit_label({"type": "stop_loss", "pct": 0.0123456}) == "signal + stop loss 1.23456 %"
    assert exit_label({"type": "take_profit", "pct": 2.5}) == "signal + take profit 250 %"
    for kind in EXIT_RULE_TYPES:
        assert "pct" not in exit_label({"type": kind})


def test_stored_exit_rules_lists_each_distinct_rule_once_with_its_label(tmp_path):
    store = open_store(str(tmp_path / "store.zarr"), "a")
    bars = {s: make_bars(300, seed=i, symbol=s) for i, s in enumerate(["AAA", "BBB"])}
    rules = [None, {"type": "stop_loss", "pct": 0.05},
             [{"type": "take_profit", "pct": 0.1}, {"type": "trailing_stop", "pct": 0.08}]]
    store.store_many(run_many(bars, "rsi_meanrev", [{"period": 10}, {"period": 14}], rules))
    assert stored_exit_rules(store) == [
        ("signal", [{"type": "signal"}]),
        ("signal + stop loss 5 %", [{"type": "signal"}, {"type": "stop_loss", "pct": 0.05}]),
        ("signal + take profit 10 % + trailing stop 8 %",
         [{"type": "signal"}, {"type": "take_profit", "pct": 0.1},
          {"type": "trailing_stop", "pct": 0.08}]),
    ]


def test_stored_exit_rules_of_an_empty_store(tmp_path):
    assert stored_exit_rules(open_store(str(tmp_path / "store.zarr"), "a")) == []

"""Exit rules as data: canonical form, labels, schema and errors."""
from __future__ import annotations

import json

import pytest

from core.canonical import stable_hash
from core.errors import ParamError, UnknownExitRuleError
from core.exits import EXIT_RULE_TYPES, canonical_exit_rule, exit_vector


def test_none_and_empty_mean_signal_only():
    assert canonical_exit_rule(None) == [{"type": "signal"}]
    assert canonical_exit_rule([]) == [{"type": "signal"}]


def test_canonical_is_sorted_with_every_param_and_signal_added():
    rule = canonical_exit_rule([{"type": "time_stop"}, {"type": "atr_stop", "mult": 3}])
    assert rule == [
        {"type": "atr_stop", "mult": 3.0, "period": 14},
        {"type": "signal"},
        {"type": "time_stop", "bars": 10},
    ]


def test_disabled_signal_is_kept_and_round_trips():
    rule = canonical_exit_rule([{"type": "stop_loss", "pct": 0.05},
                                {"type": "signal", "enabled": False}])
    assert rule == [{"type": "signal", "enabled": False}, {"type": "stop_loss", "pct": 0.05}]
    assert canonical_exit_rule(json.loads(json.dumps(rule))) == rule
    assert canonical_exit_rule({"type": "signal", "enabled": True}) == [{"type": "signal"}]


def test_equivalent_spellings_hash_the_same():
    a = canonical_exit_rule({"type": "stop_loss", "pct": 0.05})
    b = canonical_exit_rule([{"pct": 0.05, "type": "stop_loss"}, {"type": "signal"}])
    assert stable_hash(a) == stable_hash(b)
    assert stable_hash(canonical_exit_rule({"type": "time_stop", "bars": 5.0})) == stable_hash(
        canonical_exit_rule({"type": "time_stop", "bars": 5}))


@pytest.mark.parametrize("rule, error, message", [
    ({"type": "stop_lose"}, UnknownExitRuleError, "Did you mean 'stop_loss'"),
    ({"type": "stop_loss", "pct": -0.05}, ParamError, r"pct=-0.05 is out of range"),
    ({"type": "stop_loss", "pct": 1.5}, ParamError, "out of range"),
    ({"type": "stop_loss", "pct": "5%"}, ParamError, "must be a number"),
    ({"type": "stop_loss", "pc": 0.05}, ParamError, "Did you mean 'pct'"),
    ({"pct": 0.05}, ParamError, "has no 'type'"),
    ([{"type": "stop_loss"}, {"type": "stop_loss", "pct": 0.1}], ParamError, "listed twice"),
    ({"type": "signal", "enabled": "no"}, ParamError, "true or false"),
    ({"type": "time_stop", "bars": 2.5}, ParamError, "whole number"),
    ("stop_loss", ParamError, "must be a dict"),
])
def test_bad_rules_are_named(rule, error, message):
    with pytest.raises(error, match=message):
        canonical_exit_rule(rule)


def test_schema_defaults_are_valid_rules():
    for kind, params in EXIT_RULE_TYPES.items():
        rule = {"type": kind, **{p.name: p.default for p in params}}
        assert canonical_exit_rule(rule)


def test_exit_vector_layout():
    vec = exit_vector([{"type": "stop_loss", "pct": 0.05}, {"type": "atr_stop"}])
    assert vec[0] == 1 and vec[1] == 0.05 and vec[5] == 2.0 and vec[6] == 14
    assert exit_vector({"type": "signal", "enabled": False})[0] == 0

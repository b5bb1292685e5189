"""Params canonicalised per value (the write path's memo) equal the registry's canonical form."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.canonical import canonical_json, stable_hash
from core.errors import HindsightError
from core.store import _encode, _keys
from core.strategies import list_strategies, param_columns, validate_params

STRATEGIES = [s if isinstance(s, str) else s.name for s in list_strategies()]
VALUES = st.one_of(
    st.integers(-5, 2_500), st.floats(-5, 2_500), st.sampled_from([np.nan, np.inf, -0.0]),
    st.integers(0, 120).map(float), st.integers(1, 60).map(np.int64),
    st.floats(0, 100).map(np.float64), st.booleans(), st.sampled_from(["sma", "ema", "x", ""]),
    st.none(), st.lists(st.integers(0, 3), max_size=2))
NAMES = st.sampled_from(["period", "oversold", "overbought", "fast", "slow", "kind", "num_std",
                         "exit_period", "bogus"])


def registry_key(strategy: str, params: dict):
    """(JSON, hash, columns) the registry's own path gives, or the error type it raises."""
    try:
        canonical = validate_params(strategy, dict(params))
    except HindsightError as exc:
        return type(exc)
    columns = param_columns(strategy, canonical)
    return (canonical_json(canonical), stable_hash(canonical),
            {c: float(v) for c, v in columns.items()})


@settings(max_examples=400, deadline=None)
@given(strategy=st.sampled_from(STRATEGIES), params=st.dictionaries(NAMES, VALUES, max_size=4))
def test_per_value_canonical_form_equals_the_registry(strategy, params):
    canon = _keys.ParamsCanon(strategy)
    expected = registry_key(strategy, params)
    for _ in range(2):  # a fresh value, then the memoised one
        found = canon.key(params)
        if isinstance(expected, type):
            assert found is None  # the caller then runs the registry, which raises
        else:
            assert found == expected


def test_int_and_integral_float_share_one_key_and_order_never_matters():
    memo = _encode.KeyMemo()
    a = memo.params("rsi_meanrev", {"period": 14, "oversold": 25}, "r")
    b = memo.params("rsi_meanrev", {"oversold": 25.0, "period": 14.0}, "r")
    c = memo.params("rsi_meanrev", {"period": np.int64(14), "oversold": np.float64(25),
                                    "overbought": 70}, "r")
    assert a == b == c
    assert a[0] == '{"overbought":70,"oversold":25,"period":14}'
    assert a[1] == stable_hash({"period": 14, "oversold": 25.0, "overbought": 70.0})


@pytest.mark.parametrize("params, message", [
    ({"period": True}, "period must be a number"),
    ({"period": 14.5}, "whole number"),
    ({"period": 1}, "out of range"),
    ({"oversold": 80, "overbought": 20}, "oversold"),
    ({"perod": 14}, "no parameter 'perod'"),
])
def test_rejections_come_from_the_registry_with_its_message(params, message):
    memo = _encode.KeyMemo()
    memo.params("rsi_meanrev", {"period": 14}, "r")  # warm the per-value memo
    with pytest.raises(HindsightError, match=message):
        memo.params("rsi_meanrev", params, "result #3")


def test_a_bool_never_reuses_the_memo_entry_of_an_equal_int():
    canon = _keys.ParamsCanon("bollinger_reversion")
    assert canon.key({"num_std": 1}) == canon.key({"num_std": 1.0}) is not None
    assert canon.key({"num_std": True}) is None  # True == 1, but the registry rejects bools

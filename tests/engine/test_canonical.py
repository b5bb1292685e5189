"""The fast canonical forms of validated flat params equal the general ones, for any values."""
from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from core.canonical import canonical_json, flat_params_json, hash_of_json, stable_hash
from core.strategies import validate_params

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
scalars = st.one_of(
    st.integers(-10**12, 10**12),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@given(st.dictionaries(names, scalars, max_size=6))
def test_flat_params_json_equals_canonical_json(params):
    text = flat_params_json(params)
    assert text == canonical_json(params)
    assert hash_of_json(text) == stable_hash(params)


def test_integral_floats_and_key_order_do_not_change_the_json():
    assert flat_params_json({"b": 2.0, "a": 14}) == flat_params_json({"a": 14.0, "b": 2}) \
        == '{"a":14,"b":2}'
    assert flat_params_json({"x": 0.1, "s": "ema"}) == '{"s":"ema","x":0.1}'


@given(st.sampled_from([14, 14.0]), st.sampled_from([30, 30.0]))
def test_memoised_validation_returns_equal_fresh_dicts(period, oversold):
    first = validate_params("rsi_meanrev", {"period": period, "oversold": oversold})
    first["period"] = -1  # a caller mutating its result does not change the memo
    again = validate_params("rsi_meanrev", {"period": period, "oversold": oversold})
    assert again == {"period": 14, "oversold": 30.0, "overbought": 70.0}
    assert type(again["period"]) is int and not math.isnan(again["overbought"])

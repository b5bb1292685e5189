"""Keys of a write: params and exit rules in the registry's canonical form, whatever was typed."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from factories import make_result

from core.canonical import canonical_json, stable_hash
from core.errors import HindsightError
from core.store import _encode, _keys


def params_rows(params: list, memo: _keys.KeyMemo | None = None,
                strategy: str = "rsi_meanrev") -> list:
    results = [dataclasses.replace(make_result(strategy=strategy, seed=i, curve=False, trades=0),
                                   params=p) for i, p in enumerate(params)]
    segment = _encode.encode_results(results, 7, memo or _keys.KeyMemo())
    return [segment.vocab["params"][c] for c in segment.codes[:, 2]]


def test_int_and_integral_float_share_one_key_and_order_never_matters():
    a, b, c = params_rows([{"period": 14, "oversold": 25}, {"oversold": 25.0, "period": 14.0},
                           {"period": np.int64(14), "oversold": np.float64(25),
                            "overbought": 70}])
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
    memo = _keys.KeyMemo()
    params_rows([{"period": 14}], memo)  # a memo that holds an equal value already
    with pytest.raises(HindsightError, match=rf"result #1 .*{message}"):
        params_rows([{"period": 14}, params], memo)


def test_a_bool_never_reuses_the_memo_entry_of_an_equal_int():
    memo = _keys.KeyMemo()
    one = params_rows([{"num_std": 1}], memo, "bollinger_reversion")
    assert one == params_rows([{"num_std": 1.0}], memo, "bollinger_reversion")
    with pytest.raises(HindsightError, match="must be a number"):
        params_rows([{"num_std": True}], memo, "bollinger_reversion")


def test_exit_rules_are_canonical_and_hashed_once_per_distinct_rule():
    rules = [None, {"type": "stop_loss", "pct": 0.05}, [{"pct": 0.05, "type": "stop_loss"}]]
    results = [dataclasses.replace(make_result(seed=i, curve=False, trades=0), exit_rule=r)
               for i, r in enumerate(rules)]
    segment = _encode.encode_results(results, 7, _keys.KeyMemo())
    assert segment.codes[:, 3].tolist() == [0, 1, 1]
    stop = [{"type": "signal"}, {"pct": 0.05, "type": "stop_loss"}]  # sorted by type
    assert segment.vocab["exit_rule"][1] == (canonical_json(stop), stable_hash(stop))
    assert _keys.exit_key(None) == (canonical_json([{"type": "signal"}]),
                                    stable_hash([{"type": "signal"}]))


def test_the_memo_forgets_everything_past_its_limit():
    memo = _keys.KeyMemo()
    memo.LIMIT = 2
    params_rows([{"period": p} for p in (5, 6, 7)], memo)
    memo.trim()
    assert memo.forms == {}

"""The fast write paths encode exactly what the per-result path encodes, and reject what it rejects."""
from __future__ import annotations

import dataclasses
from decimal import Decimal

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from conftest import outcome, snapshot
from factories import make_batch, make_result
from hypothesis import given, settings

from core.errors import ValidationError
from core.store import _encode


def metrics_only_results(count: int = 80) -> list:
    """Metrics-only results over two strategies' worth of params, shared and fresh dict objects."""
    results = [make_result(symbol=f"S{i % 3}", params={"period": 2 + i % 7}, seed=i, curve=False,
                           trades=0, nan=i % 5 == 0) for i in range(count)]
    results[4] = dataclasses.replace(results[4], engine_version=None, settings=None,
                                     start="2020-01-02")
    results[9] = dataclasses.replace(results[9], params=dict(results[9].params))
    results[21] = dataclasses.replace(  # an aware end: stored as its UTC instant
        results[21], end=pd.Timestamp("2020-03-24 09:30", tz="America/New_York"))
    results[22] = dataclasses.replace(results[22], end=pd.Timestamp("2020-03-25").as_unit("s"))
    for i, commission in ((13, True), (14, 1), (15, 1.0), (16, True)):  # equal, stored apart
        results[i] = dataclasses.replace(results[i], costs={"commission_pct": commission})
    return results


def test_costs_equal_in_python_but_not_as_json_are_stored_apart_on_both_paths():
    results = metrics_only_results()
    nested = [dataclasses.replace(r, settings={"windows": [1, 2]} if i % 2 else {})
              for i, r in enumerate(results)]  # unhashable values: grouped by repr
    for batch in (results, nested):
        fast = _encode._encode_metrics_only(batch, 7, _encode.KeyMemo())
        for segment in (fast, per_result_segment(batch)):
            costs = [segment.vocab["costs"][c] for c in segment.codes[:, 4]]
            assert costs[13] == costs[16] == '{"commission_pct":true}'
            assert costs[14] == costs[15] == '{"commission_pct":1}'
            assert costs[0] == '{"commission_pct":0.001}'
        settings = [fast.vocab["settings"][c] for c in fast.codes[:, 5]]
        assert settings[1] == ('{"windows":[1,2]}' if batch is nested else "{}")


@pytest.mark.parametrize("odd_one", [True, 1.0, 1, np.int64(1)])
def test_costs_all_equal_to_the_first_are_one_text_unless_one_is_stored_differently(odd_one):
    """Every costs dict equal in Python to the first: one text, except where a value's type
    (a bool, a numpy scalar) makes its JSON differ or need checking."""
    results = [dataclasses.replace(r, costs={"commission_pct": 1})
               for r in metrics_only_results()]
    results[13] = dataclasses.replace(results[13], costs={"commission_pct": odd_one})
    fast = _encode._encode_metrics_only(results, 7, _encode.KeyMemo())
    slow = per_result_segment(results)
    for segment in (fast, slow):
        costs = [segment.vocab["costs"][c] for c in segment.codes[:, 4]]
        assert costs[0] == costs[12] == '{"commission_pct":1}'
        assert costs[13] == ('{"commission_pct":true}' if odd_one is True
                             else '{"commission_pct":1}')
    assert np.array_equal(fast.codes, slow.codes) and fast.vocab == slow.vocab


def per_result_segment(results: list) -> _encode.SegmentData:
    encoder = _encode._ResultsEncoder(len(results), 7, _encode.KeyMemo())
    for i, result in enumerate(results):
        encoder.add(i, result, f"result #{i}")
    return encoder.finish()


@pytest.mark.parametrize("exits", ["each its own", "one object", "one object but one"])
def test_metrics_only_fast_path_equals_per_result_path(exits):
    results = metrics_only_results()
    if exits != "each its own":
        shared = [{"type": "stop_loss", "pct": 0.05}]
        results = [dataclasses.replace(r, exit_rule=shared) for r in results]
    if exits == "one object but one":
        results[7] = dataclasses.replace(results[7], exit_rule=[{"type": "time_stop", "bars": 5}])
    fast = _encode._encode_metrics_only(results, 7, _encode.KeyMemo())
    assert fast is not None  # the columnar path took it
    slow = per_result_segment(results)
    for field in dataclasses.fields(slow):
        got, want = getattr(fast, field.name), getattr(slow, field.name)
        if isinstance(want, np.ndarray):
            assert got.dtype == want.dtype and np.array_equal(got, want, equal_nan=True), field.name
        else:
            assert got == want, field.name


@pytest.mark.parametrize("change, message", [
    ({"symbol": "../x"}, "result #11 ('../x'"),
    ({"metrics": {"win_rate": "many"}}, "result #11 ('S2', 'rsi_meanrev'): metrics must be numbers"),
    ({"initial_capital": -5.0}, "result #11 ('S2', 'rsi_meanrev'): initial_capital"),
    ({"strategy": "rsi_meanrevv"}, "rsi_meanrev"),
])
def test_fast_path_rejections_name_the_result_and_leave_the_store_unchanged(store, store_path,
                                                                           change, message):
    results = metrics_only_results()
    if "metrics" in change:
        change = {"metrics": {**results[11].metrics, **change["metrics"]}}
    results[11] = dataclasses.replace(results[11], **change)
    store.store_many(metrics_only_results()[:2])
    before = snapshot(store_path)
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.store_many(results)
    assert snapshot(store_path) == before


def test_fast_path_round_trip(store):
    results = metrics_only_results()
    ids = store.store_many(results)
    for bid, result in zip(ids[::13], results[::13]):
        stats = store.get_stats(result.symbol, result.strategy, result.params, result.exit_rule)
        assert stats is not None
        latest = max(b for b, r in zip(ids, results) if (r.symbol, r.params) ==
                     (result.symbol, result.params))
        assert stats["backtest_id"] == latest
        got = store.get_detailed_results(bid)
        for name, value in result.metrics.items():
            assert got[name] == value or (np.isnan(got[name]) and np.isnan(value))


def test_batch_table_with_missing_params_json_is_rejected(store, store_path):
    batch = make_batch(["AAA"], [5, 6, 7])
    table = batch.table.copy()
    table.loc[1, "params_json"] = None
    before = snapshot(store_path)
    with pytest.raises(ValidationError, match="Batch row 1: params_json is missing"):
        store.store_many(table)
    assert snapshot(store_path) == before


PARAM_VALUES = [1, True, 1.0, 0, False, 0.0, -0.0, 5, 5.0, 5.5, 30, 30.0, 70, np.int64(5),
                np.float64(30.0), np.bool_(True), Decimal(5), "5", "sma", "ema", None,
                float("nan"), 10**30, [5]]
PARAM_NAMES = {"rsi_meanrev": ("period", "oversold", "overbought"),
               "ma_crossover": ("fast", "slow", "kind")}
SHARED_MEMO = _encode.KeyMemo()  # across examples: earlier examples' values stay memoised


@st.composite
def same_named_dicts(draw) -> tuple[str, list[dict]]:
    """A strategy and a few dicts holding one set of names (real ones, or one unknown)."""
    strategy = draw(st.sampled_from(sorted(PARAM_NAMES)))
    names = draw(st.lists(st.sampled_from([*PARAM_NAMES[strategy], "bogus"]), unique=True,
                          max_size=3))
    value = st.sampled_from(PARAM_VALUES)
    return strategy, draw(st.lists(st.fixed_dictionaries({n: value for n in names}),
                                   min_size=1, max_size=6))


@settings(max_examples=300, deadline=None)
@given(case=same_named_dicts())
def test_params_of_a_result_list_are_the_registrys_whatever_the_memo_holds(case):
    """The write memo's answer for each params dict is the registry's (canonical JSON, hash,
    columns), or the first bad dict's error: True, 1 and 1.0 (and numpy scalars, Decimal,
    NaN, -0.0, strings) alike, after equal values of another type were memoised by this or
    an earlier example, in any key order."""
    strategy, dicts = case
    fresh = _encode.KeyMemo()
    expected = [outcome(lambda p=p: fresh._registry_params(strategy, p, "")) for p in dicts]
    errors = [found for found in expected if type(found[0]) is type]
    expected = errors[0] if errors else expected
    reordered = [dict(reversed(list(p.items()))) for p in dicts]
    for asked in (dicts, dicts, reordered):
        assert outcome(lambda: SHARED_MEMO.params_many(strategy, asked, "")) == expected

"""Result lists: each distinct key value canonicalised as the registry does, errors naming the
result, equal-looking values stored apart when their JSON differs."""
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
from core.store import _encode, _keys


def metrics_only_results(count: int = 80) -> list:
    """Metrics-only results over a few params, shared and fresh dict objects, odd dates."""
    results = [make_result(symbol=f"S{i % 3}", params={"period": 2 + i % 7}, seed=i, curve=False,
                           trades=0, nan=i % 5 == 0) for i in range(count)]
    results[4] = dataclasses.replace(results[4], engine_version=None, settings=None,
                                     start="2020-01-02")
    results[9] = dataclasses.replace(results[9], params=dict(results[9].params))
    results[21] = dataclasses.replace(  # an aware end: stored as its UTC instant
        results[21], end=pd.Timestamp("2020-03-24 09:30", tz="America/New_York"))
    results[22] = dataclasses.replace(results[22], end=pd.Timestamp("2020-03-25").as_unit("s"))
    for i, fixed in ((13, 1.5), (14, 1), (15, 1.0), (16, 1.5)):  # 1 == 1.0, reprs differ
        results[i] = dataclasses.replace(results[i], costs={"fixed": fixed})
    return results


def encoded(results: list, memo: _keys.KeyMemo | None = None):
    return _encode.encode_results(results, 7, memo or _keys.KeyMemo())


def vocab_of(segment, kind: str) -> list:
    return [segment.vocab[kind][c] for c in segment.codes[:, _encode._KIND_POS[kind]]]


def test_costs_are_stored_once_per_canonical_form():
    results = metrics_only_results()
    nested = [dataclasses.replace(r, settings={"whole_shares": True} if i % 2 else {})
              for i, r in enumerate(results)]
    for batch in (results, nested):
        segment = encoded(batch)
        costs = vocab_of(segment, "costs")
        assert costs[13] == costs[16] == '{"fixed":1.5}'
        assert costs[14] == costs[15] == '{"fixed":1}'
        assert costs[0] == '{}'
        assert len(segment.vocab["costs"]) == 3
        assert vocab_of(segment, "settings")[1] == ('{"whole_shares":true}' if batch is nested
                                                    else "{}")


def test_every_column_of_a_result_list_is_encoded_in_first_seen_order():
    results = metrics_only_results()
    segment = encoded(results)
    assert segment.vocab["symbol"] == ["S0", "S1", "S2"]
    assert [segment.vocab["params"][c][0] for c in segment.codes[:3, 2]] == [
        '{"overbought":70,"oversold":30,"period":2}', '{"overbought":70,"oversold":30,'
        '"period":3}', '{"overbought":70,"oversold":30,"period":4}']
    assert vocab_of(segment, "engine_version")[4] == "" and segment.vocab["settings"][0] == "{}"
    assert segment.times[4, 0] == pd.Timestamp("2020-01-02").value
    assert segment.times[21, 1] == pd.Timestamp("2020-03-24 13:30").value
    assert segment.times[22, 1] == pd.Timestamp("2020-03-25").value
    assert (segment.times[:, 2] == 7).all()
    assert segment.float_columns[:4] == ["initial_capital", "periods_per_year", "bar_seconds",
                                         "num_trades"]
    assert np.isnan(segment.floats[:, 1:3]).all()  # results without a bars' clock
    period = segment.float_columns.index("rsi_period")
    assert segment.floats[:, period].tolist() == [2 + i % 7 for i in range(80)]
    assert segment.param_columns["rsi_period"] == "period"
    metrics = np.array([[r.metrics[m] for m in _encode.METRICS] for r in results])
    assert np.array_equal(segment.floats[:, 3:3 + len(_encode.METRICS)], metrics, equal_nan=True)


def test_extra_metrics_become_columns_and_bad_ones_name_the_result():
    results = metrics_only_results()[:4]
    results[2] = dataclasses.replace(results[2], metrics={**results[2].metrics, "alpha": 0.5})
    segment = encoded(results)
    alpha = segment.floats[:, segment.float_columns.index("alpha")]
    assert np.isnan(alpha[[0, 1, 3]]).all() and alpha[2] == 0.5
    results[3] = dataclasses.replace(results[3], metrics={**results[3].metrics, "a b": 1.0})
    with pytest.raises(ValidationError, match=r"result #3 \('S0', 'rsi_meanrev'\): extra metric"):
        encoded(results)


@pytest.mark.parametrize("change, message", [
    ({"symbol": "../x"}, "result #11 ('../x'"),
    ({"metrics": {"win_rate": "many"}}, "result #11 ('S2', 'rsi_meanrev'): metrics must be numbers"),
    ({"initial_capital": -5.0}, "result #11 ('S2', 'rsi_meanrev'): initial_capital"),
    ({"strategy": "rsi_meanrevv"}, "rsi_meanrev"),
    ({"params": {"period": 1}}, "result #11 ('S2', 'rsi_meanrev'): .*out of range"),
    ({"costs": {"x": object()}}, "result #11 ('S2', 'rsi_meanrev'): costs cannot be stored"),
])
def test_rejections_name_the_result_and_leave_the_store_unchanged(store, store_path, change,
                                                                  message):
    results = metrics_only_results()
    if "metrics" in change:
        change = {"metrics": {**results[11].metrics, **change["metrics"]}}
    results[11] = dataclasses.replace(results[11], **change)
    store.store_many(metrics_only_results()[:2])
    before = snapshot(store_path)
    escaped = message.replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValidationError, match=escaped):
        store.store_many(results)
    assert snapshot(store_path) == before


def test_result_list_round_trip(store):
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
SHARED_MEMO = _keys.KeyMemo()  # across examples: earlier examples' values stay memoised


@st.composite
def same_named_dicts(draw) -> tuple[str, list[dict]]:
    """A strategy and a few dicts holding one set of names (real ones, or one unknown)."""
    strategy = draw(st.sampled_from(sorted(PARAM_NAMES)))
    names = draw(st.lists(st.sampled_from([*PARAM_NAMES[strategy], "bogus"]), unique=True,
                          max_size=3))
    value = st.sampled_from(PARAM_VALUES)
    return strategy, draw(st.lists(st.fixed_dictionaries({n: value for n in names}),
                                   min_size=1, max_size=6))


def registry_form(strategy: str, params: dict):
    """(JSON, hash, param columns) by the registry, or the type of the error it raises."""
    found = outcome(lambda: _keys.params_form(strategy, params))
    return found[0] if type(found[0]) is type else found


@settings(max_examples=300, deadline=None)
@given(case=same_named_dicts())
def test_params_of_a_result_list_are_the_registrys_whatever_the_memo_holds(case):
    """Each row's params (canonical JSON, hash, columns) are the registry's, or the write
    fails with the first bad dict's error: True, 1 and 1.0 (and numpy scalars, Decimal, NaN,
    -0.0, strings) alike, after equal values of another type were memoised, in any key order."""
    strategy, dicts = case
    expected = [registry_form(strategy, p) for p in dicts]
    errors = [found for found in expected if isinstance(found, type)]
    reordered = [dict(reversed(list(p.items()))) for p in dicts]
    for asked in (dicts, dicts, reordered):
        results = [make_result(strategy=strategy, seed=i, curve=False, trades=0)
                   for i in range(len(asked))]
        results = [dataclasses.replace(r, params=p) for r, p in zip(results, asked)]
        if errors:
            with pytest.raises(errors[0]):
                encoded(results, SHARED_MEMO)
            continue
        segment = encoded(results, SHARED_MEMO)
        assert vocab_of(segment, "params") == [found[:2] for found in expected]
        for column in expected[0][2]:
            values = segment.floats[:, segment.float_columns.index(column)]
            assert values.tolist() == [found[2][column] for found in expected]

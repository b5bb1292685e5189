"""Lookups answer the same whatever path serves them (cold chunk reads or warm blocks, one
lookup or a table, tuple keys or a hash frame), and answers never share mutable state."""
from __future__ import annotations

import itertools
import json
import math
from decimal import Decimal

import hypothesis.strategies as st
import numpy as np
import pandas as pd
import pytest
from conftest import outcome
from factories import make_batch, make_result
from hypothesis import HealthCheck, given, settings

from core.errors import ParamError, ValidationError
from core.store import BacktestStore, _index, _keys, open_store
from core.store import backtest_store as store_module
from core.types import METRIC_NAMES

STOP = {"type": "stop_loss", "pct": 0.05}
MA = {"fast": 5, "slow": 20}
TEXT = ["symbol", "strategy", "params", "exit_rule", "note", "tags", "params_hash", "exit_hash",
        "scope", "scope_hash", "definition", "engine_version", "data_fingerprint"]
K = len(_index.KEY_KINDS)  # code columns of a key


def _mixed_store(path) -> tuple[BacktestStore, list[tuple], list]:
    """Two strategies in three segments, a replaced key, a deleted latest version, a NaN
    (zero-trade) row and a note with tags. Returns the store, its live keys and the results
    the first four keys' latest answers must come from."""
    store = BacktestStore(path)
    keys = [("AAA", "rsi_meanrev", {"period": 5}, None),
            ("AAA", "rsi_meanrev", {"period": 9}, STOP),
            ("BBB", "rsi_meanrev", {"period": 5}, None),
            ("AAA", "ma_crossover", MA, None)]
    first = [make_result(symbol=s, strategy=g, params=dict(p), exit_rule=e, seed=i, curve=False,
                         trades=0, nan=i == 2) for i, (s, g, p, e) in enumerate(keys)]
    store.store_many(first)
    store.store_many(make_batch(["CCC"], [5, 6], seed=3))
    keys += [("CCC", "rsi_meanrev", {"period": p}, None) for p in (5, 6)]
    newer = make_result(symbol="AAA", params={"period": 9}, exit_rule=STOP, seed=40,
                        curve=False, trades=0)
    gone = make_result(symbol="BBB", params={"period": 5}, seed=41, curve=False, trades=0)
    ids = store.store_many([newer, gone])
    store.delete_backtest(ids[1])  # BBB's answer is its first version again
    store.set_note(ids[0], note="robust", tags=["keep", "x"])
    return store, keys, [first[0], newer, first[2], first[3]]


def _same(a, b) -> bool:
    """Equal values, NaN equal to NaN, same key order for dicts, same types."""
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


def test_cold_chunk_reads_and_warm_blocks_give_identical_dicts(tmp_path, monkeypatch):
    _, keys, _ = _mixed_store(tmp_path / "s.zarr")
    monkeypatch.setattr(store_module, "_ROW_MISSES_BEFORE_WARM", 10_000)
    cold = open_store(tmp_path / "s.zarr")
    cold_answers = [cold.get_stats(*key) for key in keys]
    assert not cold._index.warm  # every answer read its row's chunks
    warm = open_store(tmp_path / "s.zarr")
    warm._index.warm_up()
    warm_answers = [warm.get_stats(*key) for key in keys]
    assert all(_same(c, w) for c, w in zip(cold_answers, warm_answers))
    repeated = [warm.get_stats(*key) for key in keys]  # cached copies give the same again
    assert all(_same(w, r) for w, r in zip(warm_answers, repeated))


def test_stats_dict_holds_the_stored_values_and_only_its_strategys_params(tmp_path):
    store, keys, expected = _mixed_store(tmp_path / "s.zarr")
    for key, result in zip(keys, expected):
        stats = store.get_stats(*key)
        assert stats["symbol"] == key[0] and stats["strategy"] == key[1]
        assert stats["params"] == result.params and stats["exit_rule"] == result.exit_rule
        assert _same(stats["metrics"], {name: result.metrics[name] for name in METRIC_NAMES})
        assert all(_same(stats[name], result.metrics[name]) for name in METRIC_NAMES)
        assert stats["start"] == pd.Timestamp("2020-01-01")
        assert stats["end"] == pd.Timestamp("2020-03-24")
        assert str(stats["created_at"].tz) == "UTC"
        assert stats["initial_capital"] == 100_000.0
        assert stats["costs"] == {} and stats["settings"] == {}
        assert stats["scope"] == "demo · full history" and stats["definition"] == ""
        prefix = "rsi_" if key[1] == "rsi_meanrev" else "ma_"
        params = {k for k in stats if k.startswith(("rsi_", "ma_"))}
        assert params and all(k.startswith(prefix) for k in params)
    assert store.get_stats(*keys[0])["rsi_period"] == 5.0
    ma = store.get_stats(*keys[3])
    assert ma["ma_fast"] == 5.0 and ma["ma_slow"] == 20.0
    noted = store.get_stats(*keys[1])
    assert noted["note"] == "robust" and noted["tags"] == ["keep", "x"]
    assert store.get_stats(*keys[2])["backtest_id"] == "3"  # deleted latest -> first version
    assert math.isnan(store.get_stats(*keys[2])["win_rate"])


def test_answers_share_no_mutable_state(tmp_path):
    store, keys, _ = _mixed_store(tmp_path / "s.zarr")
    key = keys[1]
    before = store.get_stats(*key)
    changed = store.get_stats(*key)
    changed["params"]["period"] = 99
    changed["exit_rule"][0]["type"] = "changed"
    changed["exit_rule"].append({"type": "extra"})
    changed["metrics"]["win_rate"] = -1.0
    changed["costs"]["commission"] = 1.0
    changed["scope_detail"]["window"] = "changed"
    changed["settings"]["x"] = 1
    changed["tags"].append("changed")
    assert _same(store.get_stats(*key), before)
    table = store.get_all_stats()
    original = table.copy()
    table.columns.name = "renamed"
    table.loc[0, "win_rate"] = -5.0
    table["sharpe_ratio"] *= 2  # a table of every row shares the store's float block
    table.iloc[:, list(table.columns).index("initial_capital")] = 1.0
    again = store.get_all_stats()
    assert again.columns.name is None and again.loc[0, "win_rate"] != -5.0
    pd.testing.assert_frame_equal(again, original)
    assert _same(store.get_stats(*key), before)
    assert store.query(where="initial_capital == 1").empty


def test_tables_match_the_stats_dicts_column_for_column(tmp_path):
    store, keys, _ = _mixed_store(tmp_path / "s.zarr")
    table = store.get_all_stats()
    params = ["rsi_period", "rsi_oversold", "rsi_overbought", "ma_fast", "ma_slow", "ma_kind"]
    assert list(table.columns) == ["backtest_id", "symbol", "strategy", "params", "exit_rule",
                                   "start", "end", *METRIC_NAMES, *params, "initial_capital",
                                   "periods_per_year", "bar_seconds", "created_at", "note",
                                   "tags", "scope", "params_hash", "exit_hash", "scope_hash",
                                   "definition", "engine_version", "data_fingerprint"]
    assert table["start"].dtype == "datetime64[ns]" and table["end"].dtype == "datetime64[ns]"
    assert str(table["created_at"].dtype) == "datetime64[ns, UTC]"
    assert all(table[c].dtype == np.float64 for c in [*METRIC_NAMES, *params, "initial_capital"])
    assert all(isinstance(table[c].dtype, pd.CategoricalDtype) for c in TEXT)
    assert len(table) == len(keys)
    rows = table.set_index("backtest_id")
    for key in keys:
        stats = store.get_stats(*key)
        row = rows.loc[stats["backtest_id"]]
        for name in [*METRIC_NAMES, *params, "initial_capital"]:
            assert _same(float(row[name]), stats.get(name, math.nan))
        for name in ("start", "end", "created_at", "symbol", "strategy", "params_hash",
                     "exit_hash", "engine_version", "data_fingerprint", "note"):
            assert row[name] == stats[name]
        assert row["tags"] == ",".join(stats["tags"])
        assert json.loads(row["params"]) == stats["params"]
        assert json.loads(row["exit_rule"]) == stats["exit_rule"]


def test_query_of_one_strategy_keeps_only_its_param_columns_in_place(tmp_path):
    store, _, _ = _mixed_store(tmp_path / "s.zarr")
    found = store.query(strategy="rsi_meanrev", where="rsi_period >= 5", order_by="-rsi_period")
    floats = list(found.columns[7:7 + len(METRIC_NAMES) + 4])
    assert floats == [*METRIC_NAMES, "rsi_period", "rsi_oversold", "rsi_overbought",
                      "initial_capital"]
    assert not any(c.startswith("ma_") for c in found.columns)
    assert list(found["rsi_period"]) == [9.0, 6.0, 5.0, 5.0, 5.0]
    table = store.get_all_stats().set_index("backtest_id")
    pd.testing.assert_frame_equal(
        found.set_index("backtest_id")[floats],
        table.loc[found["backtest_id"], floats])


def test_tuple_keys_hash_frame_and_single_lookups_agree(tmp_path):
    store, keys, _ = _mixed_store(tmp_path / "s.zarr")
    shared = {"period": 5}  # one object over several keys, as a scanner passes them
    asked = [("CCC", "rsi_meanrev", shared, None), ("AAA", "rsi_meanrev", shared),
             ("NOPE", "rsi_meanrev", shared, None), ("AAA", "ma_crossover", MA, None),
             ["AAA", "rsi_meanrev", {"period": 9.0}, [STOP, {"type": "signal"}]],
             ("AAA", "rsi_meanrev", {"period": 77}, None), ("CCC", "rsi_meanrev", shared)]
    table = store.bulk_get_stats(asked)
    found = [store.get_stats(*key) for key in asked]
    assert list(table["backtest_id"]) == [s["backtest_id"] for s in found if s is not None]
    hashed = table[["symbol", "strategy", "params_hash", "exit_hash"]].astype(object)
    pd.testing.assert_frame_equal(store.bulk_get_stats(hashed), table)
    pd.testing.assert_frame_equal(store.bulk_get_stats(table[["symbol", "strategy",
                                                               "params_hash", "exit_hash"]]),
                                  table)
    everything = store.get_all_stats().set_index("backtest_id")
    pd.testing.assert_frame_equal(table.set_index("backtest_id"),
                                  everything.loc[table["backtest_id"]])
    with pytest.raises(ValidationError, match="Key #1"):
        store.bulk_get_stats([keys[0], "AAA"])
    with pytest.raises(ValidationError, match="Key #1"):
        store.bulk_get_stats([keys[0], (*keys[1], "extra")])
    with pytest.raises(ValidationError, match="Key #0"):
        store.bulk_get_stats([("AAA", "rsi_meanrev"), keys[1]])
    without_exit = [key for key in keys if key[3] is None]
    pd.testing.assert_frame_equal(store.bulk_get_stats([key[:3] for key in without_exit]),
                                  store.bulk_get_stats(without_exit))
    pd.testing.assert_frame_equal(store.bulk_get_stats([keys[1], *(k[:3] for k in without_exit)]),
                                  store.bulk_get_stats([keys[1], *without_exit]))


def test_warm_handle_sees_other_processes_commits_on_its_next_call(tmp_path):
    store, keys, _ = _mixed_store(tmp_path / "s.zarr")
    reader = open_store(tmp_path / "s.zarr")
    for _ in range(5):
        [reader.get_stats(*key) for key in keys]
    assert reader._index.warm
    bid = store.store_backtest(make_result(symbol="AAA", params={"period": 5}, seed=77,
                                           curve=False, trades=0))
    assert reader.get_stats(*keys[0])["backtest_id"] == bid
    assert reader.bulk_get_stats([keys[0]])["backtest_id"].tolist() == [bid]
    store.delete_backtest(bid)
    assert reader.get_stats(*keys[0])["backtest_id"] == "1"


def test_a_key_asked_before_it_was_stored_is_found_once_another_handle_stores_it(tmp_path):
    """A lookup remembers params and exit-rule codes, never their absence: params and an exit
    rule no backtest had yet are found, by lookups and history, once another handle stores
    them."""
    store, _, _ = _mixed_store(tmp_path / "s.zarr")
    reader = open_store(tmp_path / "s.zarr")
    params, exit_rule = {"period": 41}, {"type": "time_stop", "bars": 17}
    for _ in range(3):
        assert reader.get_stats("AAA", "rsi_meanrev", params, exit_rule) is None
        assert reader.get_stats("AAA", "rsi_meanrev", params) is None
    bid = store.store_backtest(make_result(symbol="AAA", params=params, exit_rule=exit_rule,
                                           curve=False, trades=0))
    assert reader.get_stats("AAA", "rsi_meanrev", params, exit_rule)["backtest_id"] == bid
    assert reader.get_stats("AAA", "rsi_meanrev", params) is None
    assert reader.history("AAA", "rsi_meanrev", params, exit_rule)["backtest_id"].tolist() == [bid]
    new = store.store_backtest(make_result(symbol="DDD", strategy="ma_crossover", params=MA,
                                           seed=78, curve=False, trades=0))
    assert reader.get_stats("DDD", "ma_crossover", MA)["backtest_id"] == new
    assert reader.get_all_stats()["backtest_id"].iloc[-1] == new


@pytest.fixture(scope="module")
def history_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("lookup") / "s.zarr"
    store, _, _ = _mixed_store(path)
    store.store_many(make_batch(["CCC", "DDD"], [5, 6, 7], seed=8))  # CCC versions twice
    return store, store.get_all_stats(include_history=True)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(picks=st.lists(st.integers(0, 10_000), max_size=40))
def test_a_table_of_any_rows_is_those_rows_of_the_full_table(history_store, picks):
    store, full = history_store
    index = store._current()
    alive = np.flatnonzero(index.alive)
    rows = alive[np.asarray(picks, np.int64) % len(alive)]  # any order, repeats allowed
    table = store._frame(index, rows)
    expected = full.set_index("backtest_id").loc[[str(b) for b in index.bids[rows]]]
    as_text = {"note": object, "tags": object}  # their categories are the rows' own values
    pd.testing.assert_frame_equal(table.set_index("backtest_id").astype(as_text),
                                  expected.astype(as_text))


def _registry_codes(store, strategy: str, dicts: list) -> list | tuple:
    """The store's code of what the registry makes of each dict, or the first dict's error."""
    found = [outcome(lambda p=p: _keys.params_key(strategy, p)[1]) for p in dicts]
    errors = [f for f in found if isinstance(f, tuple)]
    return errors[0] if errors else [store._vocab.codes["params"].get(h, -1) for h in found]


PARAM_VALUES = [1, True, 1.0, 0, False, 0.0, -0.0, 5, 5.0, 5.5, 30, 30.0, 70, np.int64(5),
                np.float64(30.0), np.bool_(True), Decimal(5), "5", None, float("nan"), 10**30,
                [5]]
PARAM_NAMES = {"rsi_meanrev": ("period", "oversold", "overbought"),
               "ma_crossover": ("fast", "slow")}


@pytest.fixture(scope="module")
def params_store(tmp_path_factory):
    """A store holding every other valid params dict the property test below can ask for
    (so its answers include stored codes, and hashes not stored)."""
    valid = {}
    for strategy, names in PARAM_NAMES.items():
        for chosen in itertools.product([None, *PARAM_VALUES[:13]], repeat=len(names)):
            params = {n: v for n, v in zip(names, chosen) if v is not None}
            found = outcome(lambda s=strategy, p=params: _keys.canonical_params(s, p))
            if isinstance(found, dict):
                valid[(strategy, _keys.params_key(strategy, found)[1])] = (strategy, found)
    store = BacktestStore(tmp_path_factory.mktemp("keys") / "s.zarr")
    store.store_many([make_result(symbol="AAA", strategy=s, params=p, curve=False, trades=0)
                      for s, p in list(valid.values())[::2]])
    return store


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(strategy=st.sampled_from(sorted(PARAM_NAMES)),
       dicts=st.lists(st.dictionaries(st.sampled_from(["period", "oversold", "overbought",
                                                        "fast", "slow", "bogus"]),
                                      st.sampled_from(PARAM_VALUES), max_size=3),
                      min_size=1, max_size=6))
def test_bulk_params_codes_are_the_registrys_in_any_form(params_store, strategy, dicts):
    """True, 1 and 1.0 (and numpy scalars, Decimal, NaN, strings) get the code of the
    registry's hash or its error, also when an equal value of another type was asked by an
    earlier call, in any key order, and the first bad dict raises the registry's error."""
    reordered = [dict(reversed(list(p.items()))) for p in dicts]
    for asked in (dicts, dicts, reordered):
        keys = [("AAA", strategy, p, None) for p in asked]
        found = outcome(lambda: params_store._bulk_codes(keys, params_store.scope_hash())[:, 2].tolist())
        assert found == _registry_codes(params_store, strategy, asked)


EXIT_PARAMS = {"stop_loss": ("pct",), "take_profit": ("pct",), "time_stop": ("bars",),
               "atr_stop": ("mult", "period"), "signal": ("enabled",)}
EXIT_VALUES = [0.05, 0.5, 1, 1.0, True, False, 10, 10.0, 10.5, 14, np.int64(10),
               np.float64(0.05), Decimal(10), "10", None, float("nan"), -0.0, [0.05]]


def _registry_exit_codes(store, rules: list) -> list | tuple:
    """The store's code of each exit rule's registry hash, or the first rule's error."""
    found = [outcome(lambda r=r: _keys.exit_key(r)[1]) for r in rules]
    errors = [f for f in found if isinstance(f, tuple)]
    return errors[0] if errors else [store._vocab.codes["exit_rule"].get(h, -1) for h in found]


@pytest.fixture(scope="module")
def exits_store(tmp_path_factory):
    """A store holding every other valid single exit rule the property test below can ask
    for (so its answers include stored codes, and hashes not stored)."""
    valid = {}
    for kind, names in EXIT_PARAMS.items():
        for chosen in itertools.product(EXIT_VALUES[:10], repeat=len(names)):
            rule = {"type": kind, **dict(zip(names, chosen))}
            found = outcome(lambda r=rule: _keys.exit_key(r))
            if not isinstance(found[0], type):
                valid[found[1]] = rule
    store = BacktestStore(tmp_path_factory.mktemp("exits") / "s.zarr")
    store.store_many([make_result(symbol="AAA", exit_rule=rule, curve=False, trades=0)
                      for rule in list(valid.values())[::2]])
    return store


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=st.lists(st.sampled_from(sorted(EXIT_PARAMS)).flatmap(
           lambda kind: st.fixed_dictionaries(
               {"type": st.just(kind)},
               optional={name: st.sampled_from(EXIT_VALUES)
                         for name in (*EXIT_PARAMS[kind], "bogus")})),
           min_size=2, max_size=6))
def test_bulk_exit_codes_are_the_registrys_in_any_form(exits_store, rules):
    """Exit-rule dicts, each its own object: True, 1 and 1.0 (and numpy scalars, Decimal,
    NaN, strings) get the code of the registry's hash or its error, also after an equal
    value of another type was asked, in any key order."""
    reordered = [dict(reversed(list(rule.items()))) for rule in rules]
    for asked in (rules, rules, reordered, [dict(rules[0]) for _ in rules]):
        keys = [("AAA", "rsi_meanrev", None, rule) for rule in asked]
        found = outcome(lambda: exits_store._bulk_codes(keys, exits_store.scope_hash())[:, 3].tolist())
        assert found == _registry_exit_codes(exits_store, asked)


def test_true_1_and_1_0_answer_as_the_registry_says(tmp_path):
    store = BacktestStore(tmp_path / "s.zarr")
    stored = make_result(symbol="AAA", strategy="ma_crossover", params={"fast": 1, "slow": 20},
                         curve=False, trades=0)
    (bid,) = store.store_many([stored])
    for fast in (1, 1.0, np.int64(1), 1, 1.0):
        key = ("AAA", "ma_crossover", {"fast": fast, "slow": 20}, None)
        assert store.bulk_get_stats([key])["backtest_id"].tolist() == [bid]
        assert store.get_stats(*key)["backtest_id"] == bid
    for fast in (True, np.bool_(True), Decimal(1)):
        key = ("AAA", "ma_crossover", {"fast": fast, "slow": 20}, None)
        with pytest.raises(ParamError, match="fast must be a number") as single:
            store.get_stats(*key)
        with pytest.raises(ParamError) as bulk:
            store.bulk_get_stats([("AAA", "ma_crossover", {"fast": 1, "slow": 20}, None), key])
        assert str(bulk.value) == str(single.value)


def test_bulk_keys_follow_mutated_dicts_and_any_key_order(tmp_path):
    store, keys, _ = _mixed_store(tmp_path / "s.zarr")
    params, stop = {"period": 5}, dict(STOP)
    asked = [("CCC", "rsi_meanrev", params, None), ("AAA", "rsi_meanrev", params, [stop])]
    ids = lambda: store.bulk_get_stats(asked)["backtest_id"].tolist()  # noqa: E731
    single = lambda: [s and s["backtest_id"] for s in (store.get_stats(*k) for k in asked)]  # noqa: E731
    assert ids() == [store.get_stats(*keys[4])["backtest_id"]] == single()[:1]
    params["period"] = 6
    assert ids() == [store.get_stats(*keys[5])["backtest_id"]] == single()[:1]
    params["period"], stop["pct"] = 9, 0.05
    assert ids() == [store.get_stats(*keys[1])["backtest_id"]] == single()[1:]
    stop["pct"] = 0.06
    assert ids() == [] and single() == [None, None]
    full = {"period": 9, "oversold": 30, "overbought": 70}
    mixed = [("AAA", "rsi_meanrev", p, STOP) for p in
             (full, dict(reversed(list(full.items()))), {"period": 9}, {"period": 9.0})]
    assert store.bulk_get_stats(mixed)["backtest_id"].tolist() == \
        [store.get_stats(*keys[1])["backtest_id"]] * 4


def test_sorted_index_answers_as_a_scan_of_the_key_columns(history_store):
    store, _ = history_store
    index = store._current()
    rows = np.flatnonzero(index.alive)
    keys = {tuple(index.code_block[:K, row].tolist()) for row in rows}
    keys |= {(s, t, p + 1, *rest) for s, t, p, *rest in keys}  # mostly absent keys
    for codes in keys:
        row = scan_latest(index, codes)
        assert index.find_latest(codes) == row
        assert index.find_many(np.array([codes])).tolist() == ([row] if row >= 0 else [])


def scan_latest(index, codes: tuple) -> int:
    """The reference answer: the live row of ``codes`` with the highest id, by a full scan."""
    match = index.alive & (index.code_block[:K] == np.array(codes)[:, None]).all(axis=0)
    rows = np.flatnonzero(match)
    return int(rows[np.argmax(index.bids[rows])]) if len(rows) else -1


def test_colliding_key_hashes_still_answer_exactly(history_store, monkeypatch):
    """With every key hashing alike, single, bulk and latest-row lookups answer as scans."""
    store, full = history_store
    monkeypatch.setattr(_index, "_MULT", (0,) * K)
    monkeypatch.setattr(_index, "_MULT_ROW", np.zeros(K, np.uint64))
    reader = open_store(store.url)
    index = reader._current()
    hashes = index._sorted_keys()[0]
    assert (hashes == hashes[0]).all()
    keys = {tuple(index.code_block[:K, row].tolist()) for row in np.flatnonzero(index.alive)}
    keys |= {(s, t, p + 1, *rest) for s, t, p, *rest in keys}
    codes = np.array(sorted(keys))
    scanned = [scan_latest(index, tuple(key)) for key in codes.tolist()]
    assert [index.find_latest(tuple(key)) for key in codes.tolist()] == scanned
    assert index.find_many(codes).tolist() == [row for row in scanned if row >= 0]
    latest = full.drop_duplicates(["symbol", "strategy", "params_hash", "exit_hash",
                                   "scope_hash", "definition"], keep="last")
    assert sorted(reader.get_all_stats()["backtest_id"]) == sorted(latest["backtest_id"])


@settings(max_examples=100, deadline=None)
@given(codes=st.lists(st.tuples(*[st.integers(0, 2**31 - 1)] * K), max_size=20))
def test_array_key_hashes_equal_the_scalar_ones(codes):
    rows = np.array(codes, np.int64).reshape(-1, K)
    assert _index.key_hash_rows(rows).tolist() == [_index.key_hash_scalar(c) for c in codes]


@pytest.mark.parametrize("picks", ["live", "mixed", "none"])
def test_a_bulk_find_answers_as_single_lookups(history_store, picks):
    """``find_many``: the rows ``find_latest`` finds, in key order (absent and repeated keys
    too)."""
    store, _ = history_store
    index = store._current()
    live = [tuple(index.code_block[:K, row].tolist()) for row in np.flatnonzero(index.alive)]
    keys = {"live": live, "none": [],
            "mixed": [*live[::-1], *((s, t, p + 1, *rest) for s, t, p, *rest in live), *live[:3]]}[picks]
    rows = index.find_many(np.array(keys, np.int64).reshape(-1, K))
    assert rows.tolist() == [row for row in map(index.find_latest, keys) if row >= 0]


def test_bulk_keys_stored_after_a_first_ask_are_found_on_the_next_call(tmp_path):
    store, _, _ = _mixed_store(tmp_path / "s.zarr")
    reader = open_store(tmp_path / "s.zarr")
    asked = [("CCC", "rsi_meanrev", {"period": p, "oversold": 25.0}, None) for p in (5, 7)]
    assert reader.bulk_get_stats(asked).empty  # the memo now holds hashes never stored
    ids = store.store_many([make_result(symbol="CCC", params=dict(asked[1][2]), seed=5,
                                        curve=False, trades=0)])
    assert reader.bulk_get_stats(asked)["backtest_id"].tolist() == ids
    assert reader.bulk_get_stats(asked)["backtest_id"].tolist() == ids


def test_no_keys_give_an_empty_table_of_the_usual_columns(history_store):
    store, full = history_store
    columns = ["symbol", "strategy", "params_hash", "exit_hash"]
    for keys in ([], iter([]), pd.DataFrame({c: [] for c in columns}, dtype=object),
                 full[columns].iloc[:0]):
        table = store.bulk_get_stats(keys)
        assert table.empty and list(table.columns) == list(full.columns)
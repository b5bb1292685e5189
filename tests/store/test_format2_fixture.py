"""A format-2 store written by an earlier Hindsight reads back identically, value for value.

The fixture (tests/store/fixtures/format2_store.zarr) and the values it read back then
(format2_expected.json) were written together by fixtures/make_format2.py on the code of commit
89b77c8. Every comparison is exact: floats bit for bit (NaN equals NaN), timestamps to the
nanosecond, dtypes by name, text columns by their strings. Only the public API is used.
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
sys.path.insert(0, str(FIXTURES))

from fixture_codec import decode_key, encode  # noqa: E402

from core.errors import NotFoundError  # noqa: E402
from core.store import BacktestStore, open_store  # noqa: E402

EXPECTED = json.loads((FIXTURES / "format2_expected.json").read_text())


def first_difference(actual, expected, path="$"):
    """The path and both values of the first place where two encoded answers differ."""
    if type(actual) is not type(expected):
        return f"{path}: {actual!r:.200} != {expected!r:.200}"
    if isinstance(expected, dict):
        if set(actual) != set(expected):
            return (f"{path}: keys differ: missing {sorted(set(expected) - set(actual))}, "
                    f"extra {sorted(set(actual) - set(expected))}")
        for key in expected:
            found = first_difference(actual[key], expected[key], f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(expected, list):
        if len(actual) != len(expected):
            return f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            found = first_difference(a, e, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if actual == expected else f"{path}: {actual!r:.200} != {expected!r:.200}"


def assert_same(actual, expected, what: str) -> None:
    diff = first_difference(encode(actual), expected)
    assert diff is None, f"{what} differs from what format 2 read back: {diff}"


@pytest.fixture
def fixture_store(tmp_path) -> Path:
    """A private copy of the fixture store (opening it must never touch the committed one)."""
    path = tmp_path / "format2_store.zarr"
    shutil.copytree(FIXTURES / "format2_store.zarr", path)
    return path


#: What format 4 adds to every answer: a row's scope, its strategy definition, its bars' clock.
NEW_FIELDS = ("scope", "scope_hash", "scope_detail", "definition", "periods_per_year",
              "bar_seconds")


def without_new_fields(value):
    """An answer as format 2 gave it: the fields format 4 adds left out."""
    if isinstance(value, pd.DataFrame):
        return value.drop(columns=[c for c in NEW_FIELDS if c in value.columns])
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in NEW_FIELDS}
    return value


def documented_scope(row, first_start: dict) -> dict:
    """The scope docs/store.md gives a row stored before scopes, worked out from its
    recorded fields: the source configured at the upgrade (the default, demo), the full
    window when it starts at its symbol's earliest start, its costs, capital and settings."""
    window = "full" if row["start"] == first_start[row["symbol"]] else {
        "start": row["start"].strftime("%Y-%m-%d"), "end": row["end"].strftime("%Y-%m-%d")}
    costs = {"commission": 0.0, "fixed": 0.0, "slippage_bps": 0.0, **row["costs"]}
    settings = {"whole_shares": False, "stop_on_entry_bar": True, **row["settings"]}
    return {"source": "demo", "window": window, "costs": costs,
            "capital": row["initial_capital"], "settings": settings}


def check_reads(store) -> None:
    """Every recorded read of the fixture, compared exactly, with the documented scopes.

    Every stored row reads back value for value. Latest wins within one identity, which now
    includes the scope: a key stored under two costs is two identities, so the latest-version
    reads also hold the older version that ran with other costs (and nothing else changes).
    """
    history = store.get_all_stats(include_history=True)
    assert_same(without_new_fields(history), EXPECTED["all_stats_history"],
                "get_all_stats(include_history=True)")
    first_start = history.groupby("symbol", observed=True)["start"].min().to_dict()
    rows = {r["backtest_id"]: r for r in history.to_dict("records")}
    for bid, row in rows.items():
        detail = store.get_detailed_results(bid)
        assert detail["scope_detail"] == documented_scope(detail, first_start), bid
        assert detail["definition"] == "" and row["definition"] == ""
    identity = ["symbol", "strategy", "params_hash", "exit_hash", "scope_hash"]
    latest = set(history.drop_duplicates(identity, keep="last")["backtest_id"])
    format2_latest = set(history.drop_duplicates(identity[:4], keep="last")["backtest_id"])
    assert format2_latest <= latest
    assert store.count() == len(latest) == EXPECTED["count"] + len(latest - format2_latest)
    assert store.count(include_history=True) == EXPECTED["count_history"]
    table = store.get_all_stats()
    assert set(table["backtest_id"]) == latest
    assert_same(without_new_fields(table[table["backtest_id"].isin(format2_latest)])
                .reset_index(drop=True), EXPECTED["all_stats"], "get_all_stats()")
    for item in EXPECTED["stats"]:
        key = decode_key(item["key"])
        expected_bid = item["value"]["$dict"]["backtest_id"] if item["value"] else None
        scope = rows[expected_bid]["scope_hash"] if expected_bid else None
        assert_same(without_new_fields(store.get_stats(*key, scope=scope)), item["value"],
                    f"get_stats{tuple(key)}")
    repeat = decode_key(EXPECTED["repeat_key"])
    versions = _version_ids(history, tuple(repeat))
    assert versions == EXPECTED["history"]["$frame"]["data"]["backtest_id"]["values"]
    for bid in versions:  # each scope's history: its versions, oldest first
        scope = rows[bid]["scope_hash"]
        assert store.history(*repeat, scope=scope)["backtest_id"].tolist() == \
            [v for v in versions if rows[v]["scope_hash"] == scope]
    for bid, value in EXPECTED["details"].items():
        assert_same(without_new_fields(store.get_detailed_results(bid)), value,
                    f"get_detailed_results({bid!r})")
    for item in EXPECTED["queries"]:
        found = store.query(**item["args"], scope="all")
        if item["args"].get("include_history"):  # every version: as format 2 gave it
            assert_same(without_new_fields(found), item["result"], f"query(**{item['args']})")
            continue
        assert set(found["backtest_id"]) - format2_latest <= latest - format2_latest
        assert_same(without_new_fields(found[found["backtest_id"].isin(format2_latest)])
                    .reset_index(drop=True), item["result"], f"query(**{item['args']})")
    bulk_keys = [tuple(k) for k in decode_key(EXPECTED["bulk_keys"])]
    keys = pd.DataFrame(bulk_keys, columns=["symbol", "strategy", "params", "exit_rule"])
    keys["scope_hash"] = [rows[bid]["scope_hash"] for bid in _latest_ids(history, bulk_keys)]
    bulk = store.bulk_get_stats(keys)  # a scope per key
    assert_same(without_new_fields(bulk), EXPECTED["bulk"], "bulk_get_stats")
    ordered = store.query(**EXPECTED["ordered_query"]["args"], scope="all")
    ordered = ordered[ordered["backtest_id"].isin(format2_latest)]
    assert encode(ordered["sharpe_ratio"].tolist()) == EXPECTED["ordered_query"]["sharpe_ratio"]
    for bid in EXPECTED["deleted_ids"]:
        with pytest.raises(NotFoundError):
            store.get_detailed_results(bid)


def _latest_ids(history: pd.DataFrame, keys: list) -> list[str]:
    """The backtest id format 2 answered for each key: its latest version in any scope."""
    return [_version_ids(history, key)[-1] for key in keys]


def _version_ids(history: pd.DataFrame, key: tuple) -> list[str]:
    """Ids of every stored version of a (symbol, strategy, params, exit rule) key, oldest first."""
    symbol, strategy, params, exit_rule = key
    rows = history[(history["symbol"] == symbol) & (history["strategy"] == strategy)]
    rows = rows[[json.loads(p) == _params(strategy, params) for p in rows["params"]]]
    rows = rows[[json.loads(e) == _exit(exit_rule) for e in rows["exit_rule"]]]
    return rows["backtest_id"].tolist()


def _params(strategy, params):
    from core.strategies import validate_params
    return validate_params(strategy, params)


def _exit(rule):
    from core.exits import canonical_exit_rule
    return canonical_exit_rule(rule)


def check_verify_clean(store) -> None:
    report = store.verify()
    assert report["ok"] is True, report
    assert not report["damaged"], report
    assert not report["problems"], report
    assert not report["orphan_segments"], report


def test_fixture_is_what_the_test_expects():
    """The fixture has what the issue lists: history, deletes, notes, curves, a compaction."""
    manifest = json.loads((FIXTURES / "format2_store.zarr" / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    compacted = [s for s in manifest["segments"] if "bids" in s or "bid_min" in s]
    fresh = [s for s in manifest["segments"] if "bid0" in s]
    assert compacted and fresh, "the fixture needs a compacted part and later fresh segments"
    assert manifest["tombstones"] and manifest["notes"]
    assert EXPECTED["history"]["$frame"]["rows"] == 2
    details = [d["$dict"] for d in EXPECTED["details"].values()]
    assert any(d["equity"] is not None for d in details)
    assert any(d["equity"] is None for d in details)
    assert any(d["trades"]["$frame"]["rows"] > 0 and d["equity"] is None for d in details)
    size = sum(p.stat().st_size for p in (FIXTURES / "format2_store.zarr").rglob("*")
               if p.is_file())
    assert size < 1_000_000


@pytest.mark.parametrize("opener", [open_store, BacktestStore], ids=["open_store", "class"])
def test_reads_identically_read_only(fixture_store, opener):
    store = opener(fixture_store, mode="r")
    try:
        check_reads(store)
        check_verify_clean(store)
    finally:
        store.close()


def test_reads_identically_read_write_then_compacted_and_written(fixture_store):
    """Opened for writing, the store reads the same; compaction and a new write change nothing
    of what was there."""
    from factories import make_result

    store = BacktestStore(fixture_store, mode="r+")
    try:
        before = store.count()
        check_reads(store)
        check_verify_clean(store)
        store.compact()
        check_reads(store)
        check_verify_clean(store)
        new = make_result(symbol=EXPECTED["symbols"][0], params={"period": 33}, seed=5)
        bid = store.store_backtest(new)
        assert int(bid) > max(int(b) for b in EXPECTED["details"])
        assert int(bid) not in {int(b) for b in EXPECTED["deleted_ids"]}
        assert store.count() == before + 1
        for old_bid, value in EXPECTED["details"].items():
            assert_same(without_new_fields(store.get_detailed_results(old_bid)), value,
                        f"details {old_bid}")
        frame = store.get_all_stats()
        old_latest = frame[frame["backtest_id"].isin(
            set(EXPECTED["all_stats"]["$frame"]["data"]["backtest_id"]["values"]))]
        assert_same(without_new_fields(old_latest).reset_index(drop=True), EXPECTED["all_stats"],
                    "get_all_stats() after a new write")
        check_verify_clean(store)
    finally:
        store.close()
    again = open_store(fixture_store, mode="r")
    try:
        assert again.count() == before + 1
        check_reads_after_write = again.get_all_stats(include_history=True)
        assert len(check_reads_after_write) == EXPECTED["count_history"] + 1
    finally:
        again.close()

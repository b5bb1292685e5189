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


def check_reads(store) -> None:
    """Every recorded read of the fixture, compared exactly."""
    assert store.count() == EXPECTED["count"]
    assert store.count(include_history=True) == EXPECTED["count_history"]
    assert_same(store.get_all_stats(), EXPECTED["all_stats"], "get_all_stats()")
    assert_same(store.get_all_stats(include_history=True), EXPECTED["all_stats_history"],
                "get_all_stats(include_history=True)")
    for item in EXPECTED["stats"]:
        key = decode_key(item["key"])
        assert_same(store.get_stats(*key), item["value"], f"get_stats{tuple(key)}")
    assert_same(store.history(*decode_key(EXPECTED["repeat_key"])), EXPECTED["history"],
                "history of the repeated key")
    for bid, value in EXPECTED["details"].items():
        assert_same(store.get_detailed_results(bid), value, f"get_detailed_results({bid!r})")
    for item in EXPECTED["queries"]:
        assert_same(store.query(**item["args"]), item["result"], f"query(**{item['args']})")
    assert_same(store.bulk_get_stats([tuple(k) for k in decode_key(EXPECTED["bulk_keys"])]),
                EXPECTED["bulk"], "bulk_get_stats")
    ordered = store.query(**EXPECTED["ordered_query"]["args"])
    assert encode(ordered["sharpe_ratio"].tolist()) == EXPECTED["ordered_query"]["sharpe_ratio"]
    for bid in EXPECTED["deleted_ids"]:
        with pytest.raises(NotFoundError):
            store.get_detailed_results(bid)


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
        check_reads(store)
        check_verify_clean(store)
        store.compact()
        check_reads(store)
        check_verify_clean(store)
        new = make_result(symbol=EXPECTED["symbols"][0], params={"period": 33}, seed=5)
        bid = store.store_backtest(new)
        assert int(bid) > max(int(b) for b in EXPECTED["details"])
        assert int(bid) not in {int(b) for b in EXPECTED["deleted_ids"]}
        assert store.count() == EXPECTED["count"] + 1
        for old_bid, value in EXPECTED["details"].items():
            assert_same(store.get_detailed_results(old_bid), value, f"details {old_bid}")
        frame = store.get_all_stats()
        assert_same(frame[frame["backtest_id"] != bid], EXPECTED["all_stats"],
                    "get_all_stats() after a new write")
        check_verify_clean(store)
    finally:
        store.close()
    again = open_store(fixture_store, mode="r")
    try:
        assert again.count() == EXPECTED["count"] + 1
        for item in EXPECTED["stats"]:
            key = decode_key(item["key"])
            assert_same(again.get_stats(*key), item["value"], f"get_stats{tuple(key)}")
    finally:
        again.close()

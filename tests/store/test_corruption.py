"""Guarantee 3: corruption is detected, named by verify(), and never served."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from factories import make_batch, make_result

from core.errors import StoreCorruptionError
from core.store import BacktestStore, _segment, open_store

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture
def damaged_setup(store, store_path):
    """Three segments: a batch (MSFT), one backtest with a curve (BAD), a batch (GOOG)."""
    store.store_many(make_batch(["MSFT"], [5, 6, 7, 8, 9], seed=1))
    bad_id = store.store_backtest(make_result(symbol="BAD", seed=2))
    store.store_many(make_batch(["GOOG"], [5, 6, 7, 8, 9], seed=3, trades_per_row=1))
    names = [s["name"] for s in json.loads((store_path / "manifest.json").read_text())[
        "segments"]]
    return store_path, names[1], bad_id


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def assert_others_readable(handle: BacktestStore, stats_intact: bool = False) -> None:
    """MSFT and GOOG fully readable; BAD listed only when its stats themselves are intact."""
    for symbol in ("MSFT", "GOOG"):
        for period in (5, 9):
            stats = handle.get_stats(symbol, "rsi_meanrev", {"period": period})
            assert stats is not None and stats["symbol"] == symbol
    expected = {"MSFT", "GOOG", "BAD"} if stats_intact else {"MSFT", "GOOG"}
    table = handle.get_all_stats()
    assert set(table["symbol"]) == expected and len(table) == 10 + stats_intact
    assert len(handle.query(where="num_trades >= 0")) == 10 + stats_intact
    goog = handle.get_stats("GOOG", "rsi_meanrev", {"period": 7})["backtest_id"]
    assert len(handle.get_detailed_results(goog)["trades"]) == 1


def check_reported(handle: BacktestStore, segment: str, *words: str) -> None:
    report = handle.verify()
    assert not report["ok"]
    assert [d["segment"] for d in report["damaged"]] == [segment]
    text = " ".join(report["damaged"][0]["problems"])
    for word in words:
        assert word in text


def segment_dir(store_path: Path, name: str) -> Path:
    return store_path / "segments" / name


def shard_file(store_path: Path, name: str, array: str) -> Path:
    """The one chunk (shard) file of a small segment's array."""
    (found,) = [p for p in (segment_dir(store_path, name) / array).rglob("*")
                if p.is_file() and p.name != "zarr.json"]
    return found


def test_flipped_byte_in_metrics(damaged_setup):
    store_path, segment, bad_id = damaged_setup
    flip_byte(shard_file(store_path, segment, "floats"))
    handle = open_store(store_path, mode="r")
    check_reported(handle, segment, "floats")
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_stats("BAD", "rsi_meanrev", {})
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_detailed_results(bad_id)
    assert_others_readable(handle)


def test_truncated_curve_chunk(damaged_setup):
    store_path, segment, bad_id = damaged_setup
    chunk = shard_file(store_path, segment, "eq_plain")  # random curves: plain
    chunk.write_bytes(chunk.read_bytes()[:-9])
    handle = open_store(store_path, mode="r")
    check_reported(handle, segment, "eq_plain")
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_detailed_results(bad_id)
    assert handle.get_stats("BAD", "rsi_meanrev", {})["symbol"] == "BAD"  # stats undamaged
    assert_others_readable(handle, stats_intact=True)


def test_deleted_key_chunk(damaged_setup):
    store_path, segment, bad_id = damaged_setup
    shard_file(store_path, segment, "codes").unlink()
    with pytest.warns(RuntimeWarning, match=segment):
        handle = open_store(store_path, mode="r")
    check_reported(handle, segment, "codes")
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_stats("BAD", "rsi_meanrev", {})  # not "None": the answer is lost, not absent
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_detailed_results(bad_id)
    assert_others_readable(handle)


@pytest.mark.parametrize("target", ["zarr.json", "floats/zarr.json"])
def test_garbage_metadata(damaged_setup, target):
    store_path, segment, bad_id = damaged_setup
    (segment_dir(store_path, segment) / target).write_bytes(b"\x00{not json")
    handle = open_store(store_path, mode="r")
    report = handle.verify()
    assert [d["segment"] for d in report["damaged"]] == [segment]
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_detailed_results(bad_id)
    if target != "zarr.json":  # the vocabulary survived: the key is known to be damaged
        with pytest.raises(StoreCorruptionError, match=segment):
            handle.get_stats("BAD", "rsi_meanrev", {})
    assert_others_readable(handle)


def test_damage_found_after_open_by_a_warm_handle(damaged_setup):
    store_path, segment, bad_id = damaged_setup
    handle = open_store(store_path, mode="r")
    flip_byte(shard_file(store_path, segment, "floats"))
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_detailed_results(bad_id)
    assert_others_readable(handle)
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_stats("BAD", "rsi_meanrev", {})


def test_writes_and_compaction_leave_damaged_segments_alone(damaged_setup):
    store_path, segment, bad_id = damaged_setup
    flip_byte(shard_file(store_path, segment, "floats"))
    handle = BacktestStore(store_path)
    handle.get_all_stats()  # loads columns: finds the damage
    new_id = handle.store_backtest(make_result(symbol="NEW", seed=4))
    handle.compact()
    assert segment in [d["segment"] for d in handle.verify()["damaged"]]
    assert handle.get_detailed_results(new_id)["symbol"] == "NEW"
    assert handle.count() == 12  # the damaged backtest still exists, it is just not served
    assert len(handle.get_all_stats()) == 11
    assert len(handle.get_stats("MSFT", "rsi_meanrev", {"period": 5})) > 0


def test_garbage_manifest_is_a_clear_error(store, store_path):
    store.store_backtest(make_result())
    (store_path / "manifest.json").write_text("{garbage")
    with pytest.raises(StoreCorruptionError, match="manifest"):
        open_store(store_path, mode="r")


def test_a_damaged_stat_chunk_of_a_compacted_segment_hides_only_its_rows(store, store_path,
                                                                         monkeypatch):
    """Compacted stat blocks use small inner chunks; damage to one hides those rows only."""
    monkeypatch.setattr(_segment, "STAT_CHUNK", 4)
    store.store_many(make_batch(["MSFT"], list(range(5, 17)), seed=1))
    store.store_many(make_batch(["GOOG"], [5, 6, 7], seed=3))
    store.compact()
    (segment,) = [s["name"] for s in json.loads((store_path / "manifest.json").read_text())[
        "segments"]]
    meta = json.loads((segment_dir(store_path, segment) / "floats" / "zarr.json").read_text())
    assert meta["codecs"][0]["configuration"]["chunk_shape"] == [4, 1]
    columns = meta["shape"][1]
    path = shard_file(store_path, segment, "floats")
    data = bytearray(path.read_bytes())
    entries = np.frombuffer(bytes(data[-4 - 16 * 4 * columns:-4]), "<u8").reshape(-1, 2)
    offset, nbytes = entries[1 * columns + 2]  # rows 4-7 (MSFT periods 9-12), third column
    data[int(offset + nbytes // 2)] ^= 0xFF
    path.write_bytes(bytes(data))

    handle = open_store(store_path, mode="r")
    with pytest.warns(RuntimeWarning, match=segment):
        table = handle.get_all_stats()
    assert len(table) == 11
    assert sorted(table.loc[table["symbol"] == "MSFT", "rsi_period"]) == [5, 6, 7, 8, 13, 14,
                                                                        15, 16]
    assert handle.get_stats("MSFT", "rsi_meanrev", {"period": 13})["symbol"] == "MSFT"
    with pytest.raises(StoreCorruptionError, match=segment):
        handle.get_stats("MSFT", "rsi_meanrev", {"period": 10})
    keys = [("MSFT", "rsi_meanrev", {"period": period}) for period in (16, 10, 8, 12, 13)]
    with pytest.warns(RuntimeWarning, match=segment):
        found = handle.bulk_get_stats(keys)
    assert found["rsi_period"].tolist() == [16, 8, 13]
    assert found.equals(table.set_index("rsi_period").loc[[16, 8, 13]].reset_index()[
        found.columns])

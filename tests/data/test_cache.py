"""PriceCache on real Zarr stores in tmp_path: round trip, append-only updates, crash safety."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.canonical import bars_fingerprint
from core.data.demo import generate_demo_universe
from core.errors import DataValidationError, StoreCorruptionError, StoreVersionError
from core.data import prices
from core.data.prices import PriceCache

ROOT = Path(__file__).resolve().parents[2]


def _segment_files(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path / "segments")): p.read_bytes()
            for p in sorted((path / "segments").rglob("*")) if p.is_file()}


def test_round_trip_is_exact_including_fingerprint(tmp_path):
    universe = generate_demo_universe(3, 2, seed=11)
    PriceCache(tmp_path / "c.zarr").put("demo", universe)
    loaded = PriceCache(tmp_path / "c.zarr").load_many("demo", list(universe) + ["NOPE"])
    assert list(loaded) == list(universe)
    for symbol, bars in universe.items():
        pd.testing.assert_frame_equal(loaded[symbol], bars, check_freq=False)
        assert loaded[symbol].index.dtype == "datetime64[ns]"
        assert loaded[symbol].attrs["fingerprint"] == bars_fingerprint(bars)


def test_missing_symbol_and_missing_cache_load_as_none(tmp_path):
    cache = PriceCache(tmp_path / "absent.zarr")
    assert cache.load("demo", "DEMO01") is None
    assert cache.symbols("demo") == []
    assert not (tmp_path / "absent.zarr").exists()  # reading never creates anything


def test_append_stores_only_new_bars_and_never_rewrites_old_ones(cache, make_bars):
    full = make_bars(10)
    cache.put("src", {"AAA": full.iloc[:6]})
    before = _segment_files(cache.path)
    added = cache.append("src", {"AAA": full})  # overlaps the 6 cached bars
    assert added == {"AAA": 4}
    info = cache.info("src", "AAA")
    assert info["rows"] == 10 and info["last"] == full.index[-1].isoformat()
    after = _segment_files(cache.path)
    assert all(after[name] == data for name, data in before.items())  # old bytes untouched
    new_segments = {n.split("/")[0] for n in after} - {n.split("/")[0] for n in before}
    assert len(new_segments) == 1
    appended_rows = json.loads((cache.path / "manifest.json").read_text())[
        "sources"]["src"]["symbols"]["AAA"]["pieces"][-1]
    assert appended_rows[2] - appended_rows[1] == 4  # the new segment holds the 4 new bars only
    reloaded = PriceCache(cache.path).load("src", "AAA")
    pd.testing.assert_frame_equal(reloaded, full, check_freq=False)
    np.testing.assert_array_equal(reloaded.iloc[:6].to_numpy(), full.iloc[:6].to_numpy())


def test_append_with_nothing_new_writes_no_segment(cache, make_bars):
    cache.put("src", {"AAA": make_bars(5)})
    before = _segment_files(cache.path)
    assert cache.append("src", {"AAA": make_bars(5)}) == {"AAA": 0}
    assert _segment_files(cache.path) == before
    assert cache.info("src", "AAA")["rows"] == 5


def test_append_of_an_unknown_symbol_stores_it_whole(cache, make_bars):
    assert cache.append("src", {"NEW": make_bars(7)}) == {"NEW": 7}
    assert cache.info("src", "NEW")["rows"] == 7


def test_bad_bars_cache_nothing_at_all(cache, make_bars):
    bad = make_bars(5)
    bad.loc[bad.index[2], "close"] = np.nan
    with pytest.raises(DataValidationError, match="BAD.*2024-01-03"):
        cache.put("src", {"GOOD": make_bars(5), "BAD": bad})
    assert not (cache.path / "manifest.json").exists()
    assert not (cache.path / "segments").exists()
    with pytest.raises(DataValidationError, match="not allowed"):
        cache.put("src", {"../evil": make_bars(5)})
    assert cache.symbols("src") == []


def test_sources_are_kept_apart(cache, make_bars):
    cache.put("one", {"AAA": make_bars(3)})
    cache.put("two", {"AAA": make_bars(5, first_close=50.0)})
    assert cache.load("one", "AAA")["close"].iloc[0] == 100.0
    assert cache.load("two", "AAA")["close"].iloc[0] == 50.0
    assert cache.sources() == ["one", "two"]


def test_another_writer_is_seen_without_reopening(cache, make_bars):
    assert cache.load("src", "AAA") is None
    PriceCache(cache.path).put("src", {"AAA": make_bars(4)})
    assert len(cache.load("src", "AAA")) == 4


def test_compact_rewrites_into_one_segment_and_removes_the_rest(cache, make_bars):
    full = make_bars(12)
    cache.put("src", {"AAA": full.iloc[:4], "BBB": make_bars(3)})
    cache.append("src", {"AAA": full.iloc[:8]})
    cache.append("src", {"AAA": full})
    cache.drop("src", ["BBB"])
    assert len(list((cache.path / "segments").glob("s*"))) == 3
    cache.compact()
    assert len(list((cache.path / "segments").glob("s*"))) == 1
    pd.testing.assert_frame_equal(PriceCache(cache.path).load("src", "AAA"), full,
                                  check_freq=False)
    assert cache.symbols("src") == ["AAA"]


def test_many_small_appends_compact_automatically(cache, make_bars, monkeypatch):
    monkeypatch.setattr(prices, "AUTO_COMPACT_SEGMENTS", 3)
    full = make_bars(8)
    for stop in range(2, 9):
        cache.append("src", {"AAA": full.iloc[:stop]})
    assert len(list((cache.path / "segments").glob("s*"))) <= 3
    pd.testing.assert_frame_equal(PriceCache(cache.path).load("src", "AAA"), full,
                                  check_freq=False)


def test_sub_second_timestamps_are_refused(cache, make_bars):
    bars = make_bars(3)
    bars.index = bars.index + pd.Timedelta(milliseconds=5)
    with pytest.raises(DataValidationError, match="to the second"):
        cache.put("src", {"AAA": bars})


def test_damaged_manifest_is_reported_with_the_fix(cache, make_bars):
    cache.put("src", {"AAA": make_bars(3)})
    (cache.path / "manifest.json").write_text("{not json")
    with pytest.raises(StoreCorruptionError, match="Delete"):
        PriceCache(cache.path).load("src", "AAA")
    (cache.path / "manifest.json").write_text(json.dumps({"format": 99}))
    with pytest.raises(StoreVersionError, match="format 99"):
        PriceCache(cache.path).load("src", "AAA")


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


_WRITER = """
import sys, numpy as np, pandas as pd
from core.data.prices import PriceCache
def bars(n, first):
    index = pd.bdate_range("2024-01-01", periods=n).as_unit("ns")
    close = first + np.arange(n, dtype=float)
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": np.ones(n)}, index=index)
cache = PriceCache(sys.argv[1])
"""


def test_a_crash_before_the_commit_leaves_the_cache_as_it_was(cache):
    crash = _WRITER + """
cache.put("src", {"AAA": bars(5, 10.0)})
import os
PriceCache._commit = lambda self, manifest: os._exit(3)  # die after the segment is written
cache.put("src", {"AAA": bars(9, 20.0), "BBB": bars(4, 30.0)})
"""
    result = _run(crash, str(cache.path))
    assert result.returncode == 3, result.stderr
    survivor = PriceCache(cache.path)
    assert survivor.symbols("src") == ["AAA"]
    assert survivor.load("src", "AAA")["close"].tolist() == [10.0, 11.0, 12.0, 13.0, 14.0]
    assert len(list((cache.path / "segments").glob("s*"))) == 2  # one orphan segment
    survivor.compact()
    assert len(list((cache.path / "segments").glob("s*"))) == 1
    assert survivor.load("src", "AAA")["close"].iloc[-1] == 14.0


def test_concurrent_writers_do_not_lose_each_others_symbols(cache):
    writer = _WRITER + """
prefix = sys.argv[2]
for round_ in range(6):
    cache.append("src", {f"{prefix}{i}": bars(5 + round_, 10.0 * (i + 1)) for i in range(4)})
"""
    processes = [subprocess.Popen([sys.executable, "-c", textwrap.dedent(writer),
                                   str(cache.path), prefix], cwd=ROOT,
                                  stderr=subprocess.PIPE, text=True) for prefix in ("A", "B")]
    for process in processes:
        assert process.wait(timeout=120) == 0, process.stderr.read()
    final = PriceCache(cache.path)
    assert final.symbols("src") == [f"{p}{i}" for p in "AB" for i in range(4)]
    for symbol in final.symbols("src"):
        assert len(final.load("src", symbol)) == 10  # 5 bars, then one more per round


def test_a_reader_with_a_stale_manifest_never_sees_a_compacted_segment_as_prices(cache,
                                                                                 make_bars):
    cache.put("src", {"AAA": make_bars(4), "BBB": make_bars(6)})
    reader = PriceCache(cache.path)
    reader.load("src", "AAA")  # opens the first segment's array and keeps the handle
    PriceCache(cache.path).compact()  # another writer: new segment, the old one is deleted
    stat = (cache.path / "manifest.json").stat()
    reader._manifest_stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # the race window
    pd.testing.assert_frame_equal(reader.load("src", "BBB"), make_bars(6), check_freq=False)

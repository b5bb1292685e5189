"""One class of store behaviours, run on every backend the store supports.

Backends: a local folder, ``memory://<unique>`` (fsspec's in-process memory filesystem) and
``s3://<bucket>/<prefix>`` on a real S3-compatible server (moto's standalone server, started
for the session on 127.0.0.1 and reached through ``AWS_ENDPOINT_URL``; see s3server.py).
Every behaviour goes through the public API only: ``BacktestStore``, ``open_store`` and
``core.errors``. Concurrency between processes runs where the backend allows it (a memory
filesystem lives inside one process).
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.errors import HindsightError, NotFoundError, QueryError, StoreError
from core.store import BacktestStore, open_store
from core.types import METRIC_NAMES, TRADE_COLUMNS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

from factories import make_batch, make_result  # noqa: E402  (tests/store is on sys.path)

BACKENDS = ["local", "memory", "s3"]


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def new_url(backend, tmp_path, request):
    """A factory of fresh store URLs on the backend under test."""
    made = []

    def make(name: str = "store") -> str:
        if backend == "local":
            url = str(tmp_path / f"{name}-{len(made)}.zarr")
        elif backend == "memory":
            url = f"memory://hindsight-conformance/{name}-{uuid.uuid4().hex[:12]}.zarr"
        else:
            url = request.getfixturevalue("s3_server").url(name)
        made.append(url)
        return url

    yield make
    if backend == "memory":
        import fsspec

        fs = fsspec.filesystem("memory")
        for url in made:
            path = url.split("://", 1)[1]
            if fs.exists(path):
                fs.rm(path, recursive=True)


@pytest.fixture
def url(new_url) -> str:
    return new_url()


@pytest.fixture(scope="module")
def engine_results():
    """Real engine output on the demo universe: two single results (curve on the cent grid,
    trades) and a run_many batch with curves and trades."""
    from core.data import DemoProvider
    from core.engine import run_backtest, run_many

    provider = DemoProvider(count=3, years=2)
    symbols = provider.symbols()
    bars = {s: provider.load_bars(s) for s in symbols}
    singles = [
        run_backtest(bars[symbols[0]], "rsi_meanrev", {"period": 10},
                     {"type": "stop_loss", "pct": 0.05}, symbol=symbols[0]),
        run_backtest(bars[symbols[1]], "ma_crossover", {"fast": 5, "slow": 20, "kind": "ema"},
                     [{"type": "signal", "enabled": False}, {"type": "time_stop", "bars": 8}],
                     symbol=symbols[1]),
    ]
    batch = run_many(bars, "rsi_meanrev", {"period": [7, 14]}, with_trades=True,
                     with_curves=True)
    return {"singles": singles, "batch": batch}


def bits(values) -> list[str]:
    """Floats as exact hex (NaN equals NaN), for bit-for-bit comparisons."""
    return [float(v).hex() for v in values]


def assert_same_trades(got: pd.DataFrame, want: pd.DataFrame) -> None:
    assert list(got.columns) == list(TRADE_COLUMNS)
    assert len(got) == len(want)
    for col in TRADE_COLUMNS:
        g, w = got[col], want[col].reset_index(drop=True)
        if col in ("entry_time", "exit_time"):
            assert list(pd.DatetimeIndex(g).as_unit("ns").asi8) == \
                list(pd.DatetimeIndex(w).as_unit("ns").asi8), col
        elif col == "exit_reason":
            assert [str(x) for x in g] == [str(x) for x in w], col
        elif col == "bars_held":
            assert [int(x) for x in g] == [int(x) for x in w], col
        else:
            assert bits(g) == bits(w), col


def assert_same_curve(got: pd.Series | None, want: pd.Series) -> None:
    assert got is not None
    assert str(got.index.dtype) == "datetime64[ns]"
    assert list(got.index.asi8) == list(pd.DatetimeIndex(want.index).as_unit("ns").asi8)
    assert bits(got.to_numpy()) == bits(want.to_numpy())


def key(result) -> tuple:
    return (result.symbol, result.strategy, result.params, result.exit_rule)


class TestStoreConformance:
    """Every store behaviour; the fixture ``url`` is a fresh store on each backend."""

    # --- round trips --------------------------------------------------------------------------
    def test_single_results_round_trip(self, url, engine_results):
        singles = engine_results["singles"]
        with BacktestStore(url, mode="r+") as store:
            ids = [store.store_backtest(r) for r in singles]
            assert ids == ["1", "2"]
        with open_store(url, mode="r") as store:
            for bid, result in zip(ids, singles):
                stats = store.get_stats(*key(result))
                assert stats["backtest_id"] == bid
                assert stats["params"] == result.params
                assert stats["exit_rule"] == result.exit_rule
                assert bits(stats[m] for m in METRIC_NAMES) == \
                    bits(result.metrics[m] for m in METRIC_NAMES)
                assert stats["start"] == result.start and stats["end"] == result.end
                assert stats["data_fingerprint"] == result.data_fingerprint
                assert stats["engine_version"] == result.engine_version
                details = store.get_detailed_results(bid)
                assert_same_curve(details["equity"], result.equity)
                assert_same_trades(details["trades"], result.trades)

    def test_synthetic_curve_off_the_price_grid_round_trips(self, url):
        result = make_result(seed=3, trades=4)
        with BacktestStore(url, mode="r+") as store:
            bid = store.store_backtest(result)
            details = store.get_detailed_results(bid)
        assert_same_curve(details["equity"], result.equity)
        assert_same_trades(details["trades"], result.trades)

    def test_batch_round_trips(self, url, engine_results):
        batch = engine_results["batch"]
        with BacktestStore(url, mode="r+") as store:
            ids = store.store_many(batch)
        assert len(ids) == len(batch.table) and len(set(ids)) == len(ids)
        with open_store(url, mode="r") as store:
            frame = store.get_all_stats()
            assert len(frame) == len(batch.table) == store.count()
            by_id = frame.set_index(frame["backtest_id"].astype(str))
            for row, bid in enumerate(ids):
                want = batch.table.iloc[row]
                got = by_id.loc[bid]
                assert str(got["symbol"]) == want["symbol"]
                assert got["params_hash"] == want["params_hash"]
                assert bits(got[m] for m in METRIC_NAMES) == bits(want[m] for m in METRIC_NAMES)
                details = store.get_detailed_results(bid)
                assert_same_curve(details["equity"], batch.curves.curve(row))
                trades = batch.trades[batch.trades["row"] == row][list(TRADE_COLUMNS)]
                assert_same_trades(details["trades"], trades)

    def test_batch_without_curves_keeps_none(self, url):
        batch = make_batch(["AAA", "BBB"], [5, 9, 14])
        with BacktestStore(url, mode="r+") as store:
            ids = store.store_many(batch)
            assert store.count() == 6
            details = store.get_detailed_results(ids[4])
        assert details["equity"] is None
        assert list(details["trades"].columns) == list(TRADE_COLUMNS) and details["trades"].empty
        assert bits(details[m] for m in METRIC_NAMES) == \
            bits(batch.table.iloc[4][m] for m in METRIC_NAMES)

    # --- keys, latest wins, history -------------------------------------------------------------
    def test_latest_wins_and_history(self, url):
        first = make_result(params={"period": 14}, seed=1)
        second = make_result(params={"period": 14.0}, seed=2)  # same key: 14 == 14.0
        with BacktestStore(url, mode="r+") as store:
            old = store.store_backtest(first)
            new = store.store_backtest(second)
            assert int(new) > int(old)
            found = store.get_stats("AAPL", "rsi_meanrev", {"period": 14}, None)
            assert found["backtest_id"] == new
            assert bits([found["sharpe_ratio"]]) == bits([second.metrics["sharpe_ratio"]])
            assert store.count() == 1 and store.count(include_history=True) == 2
            assert len(store.get_all_stats()) == 1
            assert len(store.get_all_stats(include_history=True)) == 2
            history = store.history("AAPL", "rsi_meanrev", {"period": 14}, None)
            assert [str(b) for b in history["backtest_id"]] == [old, new]
            assert store.get_detailed_results(old)["backtest_id"] == old
            assert store.delete_backtest(new) == 1
            assert store.get_stats("AAPL", "rsi_meanrev", {"period": 14}, None)["backtest_id"] \
                == old
            assert store.get_stats("AAPL", "rsi_meanrev", {"period": 15}, None) is None

    # --- query ----------------------------------------------------------------------------------
    def test_query_with_where_order_and_limit(self, url):
        batch = make_batch(["AAA", "BBB", "CCC"], [5, 9, 14, 20, 30], seed=4)
        with BacktestStore(url, mode="r+") as store:
            store.store_many(batch)
            store.store_backtest(make_result(symbol="DDD", strategy="ma_crossover",
                                             params={"fast": 5, "slow": 20}, seed=9))
            every = store.get_all_stats()
            where = "num_trades >= 20 and rsi_period <= 20 and symbol != 'BBB'"
            got = store.query(strategy="rsi_meanrev", where=where, order_by="-sharpe_ratio",
                              limit=4)
            want = every[(every["strategy"] == "rsi_meanrev") & (every["num_trades"] >= 20)
                         & (every["rsi_period"] <= 20) & (every["symbol"] != "BBB")]
            want = want.sort_values("sharpe_ratio", ascending=False, na_position="last").head(4)
            assert [str(b) for b in got["backtest_id"]] == [str(b) for b in want["backtest_id"]]
            assert "ma_fast" not in got.columns  # a strategy filter keeps its own columns
            assert len(store.query(symbol="DDD")) == 1
            with pytest.raises(QueryError):
                store.query(where="sharpe > 1")

    # --- bulk lookups ---------------------------------------------------------------------------
    def test_bulk_get_stats_tuples_and_hash_frame(self, url):
        results = [make_result(symbol=s, params={"period": p}, seed=i)
                   for i, (s, p) in enumerate([("AAA", 5), ("AAA", 9), ("BBB", 5), ("CCC", 30)])]
        with BacktestStore(url, mode="r+") as store:
            ids = store.store_many(results)
            keys = [key(r) for r in reversed(results)] + [("ZZZ", "rsi_meanrev", {"period": 5},
                                                          None)]
            by_tuple = store.bulk_get_stats(keys)
            assert [str(b) for b in by_tuple["backtest_id"]] == list(reversed(ids))
            every = store.get_all_stats()
            hashes = every[["symbol", "strategy", "params_hash", "exit_hash"]].astype(str)
            hashes = hashes.iloc[::-1].reset_index(drop=True)
            by_hash = store.bulk_get_stats(hashes)
            assert [str(b) for b in by_hash["backtest_id"]] == \
                [str(b) for b in every["backtest_id"].iloc[::-1]]
            assert bits(by_hash["sharpe_ratio"]) == bits(every["sharpe_ratio"].iloc[::-1])
            assert store.bulk_get_stats([keys[-1]]).empty

    # --- delete ---------------------------------------------------------------------------------
    def test_delete(self, url):
        with BacktestStore(url, mode="r+") as store:
            ids = store.store_many([make_result(symbol=f"S{i}", seed=i) for i in range(5)])
            assert store.delete_backtest(ids[1]) == 1
            assert store.delete_backtest([ids[2], int(ids[3])]) == 2
            assert store.count() == 2
            with pytest.raises(NotFoundError):
                store.get_detailed_results(ids[1])
            with pytest.raises(NotFoundError):
                store.delete_backtest(ids[1])
            assert store.get_stats("S1", "rsi_meanrev", None, None) is None
            assert sorted(str(b) for b in store.get_all_stats()["backtest_id"]) == \
                sorted([ids[0], ids[4]])
        with open_store(url, mode="r") as store:
            assert store.count() == 2

    # --- notes ----------------------------------------------------------------------------------
    def test_notes_and_tags(self, url):
        with BacktestStore(url, mode="r+") as store:
            a, b = store.store_many([make_result(symbol="AAA"), make_result(symbol="BBB")])
            store.set_note(a, note="robust, ünïcode 漢字", tags=["keep", "rsi"])
            store.set_note(b, tags=["review"])
            assert store.get_detailed_results(a)["note"] == "robust, ünïcode 漢字"
            assert store.get_stats("AAA", "rsi_meanrev")["tags"] == ["keep", "rsi"]
            store.set_note(a, tags=[])
            assert store.get_stats("AAA", "rsi_meanrev")["tags"] == []
            assert store.get_stats("AAA", "rsi_meanrev")["note"] == "robust, ünïcode 漢字"
        with open_store(url, mode="r") as store:
            frame = store.get_all_stats().set_index("backtest_id")
            assert frame.loc[b, "tags"] == "review" and frame.loc[b, "note"] == ""
            with pytest.raises(HindsightError):
                store.set_note(a, note="read-only handle")

    # --- compact and verify ---------------------------------------------------------------------
    def test_compact_keeps_every_value_and_verify_is_clean(self, url, engine_results):
        with BacktestStore(url, mode="r+") as store:
            ids = [store.store_backtest(r) for r in engine_results["singles"]]
            ids += store.store_many(make_batch(["AAA", "BBB"], [5, 9], seed=2))
            ids.append(store.store_backtest(make_result(symbol="AAA", seed=8)))
            ids.append(store.store_backtest(make_result(symbol="AAA", seed=9)))  # same key
            store.set_note(ids[0], note="n", tags=["t"])
            store.delete_backtest(ids[2])
            before = store.get_all_stats(include_history=True)
            details = {b: store.get_detailed_results(b) for b in ids if b != ids[2]}
            report = store.verify()
            assert report["ok"] is True and not report["damaged"], report
            summary = store.compact()
            assert summary["merged_segments"] >= 2
            after = store.get_all_stats(include_history=True)
            pd.testing.assert_frame_equal(after.reset_index(drop=True),
                                          before.reset_index(drop=True), check_exact=True,
                                          check_categorical=False)
            for bid, want in details.items():
                got = store.get_detailed_results(bid)
                if want["equity"] is None:
                    assert got["equity"] is None
                else:
                    assert_same_curve(got["equity"], want["equity"])
                assert_same_trades(got["trades"], want["trades"])
                assert got["note"] == want["note"] and got["tags"] == want["tags"]
            with pytest.raises(NotFoundError):
                store.get_detailed_results(ids[2])
            report = store.verify()
            assert report["ok"] is True, report
            assert report["rows"] == len(ids) - 1 and not report["orphan_segments"]
            new = store.store_backtest(make_result(symbol="ZZZ"))
            assert int(new) > max(int(b) for b in ids)  # ids are never reused

    # --- handles --------------------------------------------------------------------------------
    def test_a_second_handle_sees_commits_after_refresh(self, url):
        with BacktestStore(url, mode="r+") as writer:
            writer.store_backtest(make_result(symbol="AAA"))
            with open_store(url, mode="r") as reader:
                assert reader.count() == 1
                writer.store_backtest(make_result(symbol="BBB"))
                reader.refresh()
                assert reader.count() == 2
                assert reader.get_stats("BBB", "rsi_meanrev") is not None

    def test_read_only_handle_and_missing_store(self, url, new_url):
        with pytest.raises(StoreError):
            open_store(new_url("missing"), mode="r")
        with BacktestStore(url, mode="r+") as store:
            store.store_backtest(make_result())
        with open_store(url, mode="r") as store:
            with pytest.raises(HindsightError):
                store.store_backtest(make_result(symbol="BBB"))
            with pytest.raises(HindsightError):
                store.delete_backtest("1")
            with pytest.raises(HindsightError):
                store.compact()
            assert store.count() == 1

    # --- concurrency ----------------------------------------------------------------------------
    def test_threads_write_concurrently(self, url):
        from concurrent.futures import ThreadPoolExecutor

        with BacktestStore(url, mode="r+") as store:
            def write(worker):
                return [store.store_backtest(make_result(symbol=f"T{worker}X{i}", seed=i))
                        for i in range(3)]

            with ThreadPoolExecutor(3) as pool:
                ids = [b for part in pool.map(write, range(3)) for b in part]
            assert sorted(ids, key=int) == [str(i) for i in range(1, 10)]
            assert store.count() == 9
            assert store.verify()["ok"] is True

    def test_processes_write_concurrently(self, url, backend):
        if backend == "memory":
            pytest.skip("a memory:// store lives inside one process")
        with BacktestStore(url, mode="r+") as store:
            store.store_backtest(make_result(symbol="SEED"))
        procs = [subprocess.Popen([sys.executable, "-c", WRITER, url, str(w)], cwd=ROOT,
                                  env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                      [str(ROOT), str(HERE)])),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for w in range(2)]
        outs = []
        for proc in procs:
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, err
            outs.append(json.loads(out.strip().splitlines()[-1]))
        written = [b for ids in outs for b in ids]
        assert len(written) == len(set(written)) == 2 * WRITES
        with open_store(url, mode="r") as store:
            assert store.count() == 1 + 2 * WRITES
            ids = sorted((str(b) for b in store.get_all_stats()["backtest_id"]), key=int)
            assert ids == [str(i) for i in range(1, 2 + 2 * WRITES)]
            assert store.verify()["ok"] is True


WRITES = 6  # per process, in commits of 3
WRITER = textwrap.dedent(f"""
    import json, sys
    from core.store import BacktestStore
    from factories import make_result
    url, worker = sys.argv[1], int(sys.argv[2])
    store = BacktestStore(url, mode="r+")
    ids = []
    for i in range(0, {WRITES}, 3):
        ids += store.store_many([make_result(symbol=f"W{{worker}}N{{i + j}}", seed=i + j)
                                 for j in range(3)])
    store.close()
    print(json.dumps(ids))
""")

"""The same sweep on a 2-worker dask LocalCluster gives the local results, cell for cell."""
from __future__ import annotations

import pandas as pd
import pytest

from core.store import open_store
from core.sweep import run_sweep

GRID = {"period": [6, 10, 14], "oversold": [25, 35]}
RULES = [None, {"type": "trailing_stop", "pct": 0.06}]


@pytest.mark.slow
def test_local_cluster_equals_local_run(tmp_path, provider):
    from distributed import Client, LocalCluster

    symbols = provider.symbols()
    local = open_store(str(tmp_path / "local.zarr"), "a")
    remote = open_store(str(tmp_path / "dask.zarr"), "a")
    expected = run_sweep("rsi_meanrev", GRID, symbols, RULES, local, provider, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        got = run_sweep("rsi_meanrev", GRID, symbols, RULES, remote, provider, scheduler=client)
        assert got.backend == "dask(2 workers)"
        # an address works as well as a Client; everything is stored already -> all skipped
        again = run_sweep("rsi_meanrev", GRID, symbols, RULES, remote, provider,
                          scheduler=cluster.scheduler_address)
        assert again.n_skipped == again.n_cells == 48
    assert got.n_stored == expected.n_stored == 48

    def cells(store):
        frame = store.query().drop(columns=["backtest_id", "created_at"])
        for c in ("symbol", "params_hash", "exit_hash"):
            frame[c] = frame[c].astype(str)
        return frame.set_index(["symbol", "params_hash", "exit_hash"]).sort_index()

    pd.testing.assert_frame_equal(cells(local), cells(remote), check_categorical=False)
    trades_local = [local.get_detailed_results(b)["trades"] for b in local.query()["backtest_id"]]
    trades_remote = {(str(r.symbol), str(r.params_hash), str(r.exit_hash)): str(r.backtest_id)
                     for r in remote.query().itertuples()}
    for (row, trades) in zip(local.query().itertuples(), trades_local):
        other = remote.get_detailed_results(
            trades_remote[(str(row.symbol), str(row.params_hash), str(row.exit_hash))])["trades"]
        pd.testing.assert_frame_equal(trades.reset_index(drop=True), other.reset_index(drop=True))


def test_unreachable_scheduler_is_a_clear_error(provider, monkeypatch):
    from core import sweep
    from core.errors import HindsightError

    monkeypatch.setattr(sweep, "DASK_CONNECT_TIMEOUT", "1s")
    with pytest.raises(HindsightError, match="Cannot reach the Dask scheduler"):
        run_sweep("rsi_meanrev", GRID, provider.symbols()[:1], RULES, None, provider,
                  scheduler="tcp://127.0.0.1:1")


def test_a_task_carries_its_rule_strategy_to_a_worker_without_the_files(tmp_path, monkeypatch,
                                                                       provider):
    """Dask and pool workers may not see the user's strategies folder: a sweep's tasks pickle
    the strategy's whole declaration, so they run where no rule file exists."""
    import pickle
    from pathlib import Path

    from core import rule_files, sweep

    folder = tmp_path / "strategies"
    folder.mkdir()
    example = (Path(__file__).parents[2] / "strategies" / "rsi_trend.toml").read_text()
    (folder / "dip.toml").write_text(example.replace('name = "rsi_trend"', 'name = "dip"'))
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(folder))
    compute = sweep._compute_task

    def on_a_bare_worker(task, bars):
        shipped = pickle.loads(pickle.dumps(task))
        with monkeypatch.context() as worker:
            worker.setenv("HINDSIGHT_STRATEGIES", str(tmp_path / "elsewhere"))
            rule_files.forget(folder / "dip.toml")
            return compute(shipped, bars)

    monkeypatch.setattr(sweep, "_compute_task", on_a_bare_worker)
    store = open_store(str(tmp_path / "s.zarr"), "a")
    report = sweep.run_sweep("dip", {"period": [10, 14]}, provider.symbols()[:2], [None], store,
                             provider, workers=1)
    assert report.n_stored == 4 and len(store.query(strategy="dip")) == 4

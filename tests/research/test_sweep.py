"""Sweeps against a real store: skip vs force, stored cells equal single runs, pool == inline."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from core import sweep
from core.engine import run_backtest
from core.sweep import run_sweep
from core.types import TRADE_COLUMNS

GRID = {"period": [6, 10, 14], "oversold": [25, 35], "overbought": [65, 75]}
RULES = [None, {"type": "stop_loss", "pct": 0.04}]


def _by_key(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    for c in ("symbol", "params_hash", "exit_hash"):
        frame[c] = frame[c].astype(str)
    return frame.set_index(["symbol", "params_hash", "exit_hash"]).sort_index()


def test_skip_already_stored_unless_force_or_settings_differ(store, provider):
    symbols = provider.symbols()[:2]
    first = run_sweep("rsi_meanrev", GRID, symbols, RULES, store, provider)
    assert (first.n_cells, first.n_computed, first.n_stored, first.n_skipped) == (48, 48, 48, 0)
    assert store.count() == 48

    again = run_sweep("rsi_meanrev", GRID, symbols, RULES, store, provider)
    assert (again.n_computed, again.n_skipped) == (0, 48)
    assert store.count(include_history=True) == 48

    # one more period value: only its 2 x 2 x 2 = 8 new cells are computed
    wider = run_sweep("rsi_meanrev", {**GRID, "period": [6, 10, 14, 20]}, symbols, RULES, store,
                      provider)
    assert (wider.n_computed, wider.n_skipped) == (16, 48)

    forced = run_sweep("rsi_meanrev", GRID, symbols, RULES, store, provider, force=True)
    assert (forced.n_computed, forced.n_skipped) == (48, 0)
    assert store.count(include_history=True) == 48 + 16 + 48

    # different costs are a different computation: nothing is skipped
    costly = run_sweep("rsi_meanrev", GRID, symbols[:1], RULES[:1], store, provider,
                       costs={"commission": 0.001})
    assert (costly.n_computed, costly.n_skipped) == (12, 0)


def test_stored_cells_equal_run_backtest_of_the_same_cell(store, provider):
    symbols = provider.symbols()[:2]
    run_sweep("rsi_meanrev", GRID, symbols, RULES, store, provider, costs={"slippage_bps": 5})
    frame = store.query(strategy="rsi_meanrev", scope={"costs": {"slippage_bps": 5}})
    assert len(frame) == 48 and len(store.query(strategy="rsi_meanrev")) == 0
    rng = np.random.default_rng(3)
    for i in rng.choice(len(frame), size=6, replace=False):
        row = frame.iloc[int(i)]
        bars = provider.load_bars(str(row["symbol"]))
        params, rule = json.loads(str(row["params"])), json.loads(str(row["exit_rule"]))
        single = run_backtest(bars, "rsi_meanrev", params, rule, costs={"slippage_bps": 5},
                              symbol=str(row["symbol"]))
        for name, value in single.metrics.items():
            stored = float(row[name])
            assert (math.isnan(stored) and math.isnan(value)) or stored == pytest.approx(value, rel=1e-9, abs=1e-12), name
        details = store.get_detailed_results(str(row["backtest_id"]))
        assert details["equity"] is None  # sweep cells keep no equity curve
        stored_columns = single.trades[list(TRADE_COLUMNS)]  # the engine adds direction
        pd.testing.assert_frame_equal(details["trades"].reset_index(drop=True),
                                      stored_columns.reset_index(drop=True), check_dtype=False)
        assert details["data_fingerprint"] == bars.attrs["fingerprint"]


def test_local_pool_equals_inline(tmp_path, provider, monkeypatch):
    from core.store import open_store

    symbols = provider.symbols()
    inline = open_store(str(tmp_path / "inline.zarr"), "a")
    pooled = open_store(str(tmp_path / "pool.zarr"), "a")
    a = run_sweep("rsi_meanrev", GRID, symbols, RULES, inline, provider, workers=1)
    monkeypatch.setattr(sweep, "INLINE_MAX_CELLS", 0)
    b = run_sweep("rsi_meanrev", GRID, symbols, RULES, pooled, provider, workers=2,
                  batch_size=10)
    assert a.backend == "inline" and b.backend.startswith("pool")
    assert a.n_stored == b.n_stored == 96
    left, right = _by_key(inline.query()), _by_key(pooled.query())
    metrics = ["num_trades", "win_rate", "total_return", "sharpe_ratio", "max_drawdown"]
    pd.testing.assert_frame_equal(left[metrics], right[metrics])
    sweep.shutdown_pools()


def test_progress_reports_every_cell(provider):
    seen = []
    run_sweep("rsi_meanrev", GRID, provider.symbols()[:1], RULES, None, provider,
              batch_size=5, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (24, 24)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_a_symbol_with_irregular_bars_is_skipped_and_named(tmp_path, provider):
    """With skip_bad_data, bars the engine cannot annualise (no regular clock) leave their
    symbol out of the sweep, named with the reason; the other symbols are stored."""
    from core.data import FolderProvider
    from core.store import open_store

    folder = tmp_path / "files"
    folder.mkdir()
    good = provider.load_bars("DEMO01")
    good.rename_axis("date").to_csv(folder / "GOOD.csv")
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(len(good), size=len(good) // 3, replace=False))
    good.iloc[keep].rename_axis("date").to_csv(folder / "ODD.csv")  # random gaps
    store = open_store(str(tmp_path / "s.zarr"), "a")
    files = FolderProvider(folder)
    report = run_sweep("rsi_meanrev", {"period": [9, 14]}, ["GOOD", "ODD"], [None], store, files,
                       skip_bad_data=True)
    assert report.symbols == ["GOOD"] and report.n_stored == 2
    (skipped,) = report.skipped
    assert skipped["symbol"] == "ODD" and "periods_per_year" in skipped["error"]
    assert set(store.query(scope="all")["symbol"].astype(str)) == {"GOOD"}

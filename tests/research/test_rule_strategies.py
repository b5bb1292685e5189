"""A rule strategy goes wherever a built-in goes: sweeps, walk-forward and the nightly refresh."""
from __future__ import annotations

from pathlib import Path

import pytest

from core.data import CachedProvider, FolderProvider
from core.data.prices import PriceCache
from core.refresh import refresh
from core.store import open_store
from core.sweep import run_sweep
from core.walkforward import load_walk_forward, walk_forward

EXAMPLE = Path(__file__).parents[2] / "strategies" / "rsi_trend.toml"
GRID = {"period": [8, 12], "trend": [20, 40]}


@pytest.fixture
def rules(tmp_path, monkeypatch):
    """The shipped rsi_trend example, from a strategies folder of the test's own."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "rsi_trend.toml").write_text(EXAMPLE.read_text())
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(folder))
    return folder


def test_a_rule_strategy_walks_forward_into_the_store(rules, provider, store):
    bars = provider.load_bars(provider.symbols()[0])
    grid = {**GRID, "oversold": [45, 50]}  # dips common enough for 200-bar windows
    report = walk_forward(bars, "rsi_trend", grid, None, in_sample=200, out_of_sample=100,
                          store=store)
    assert report.windows["is_id"].notna().all()
    assert len(report.windows) == 3
    stored = store.query(strategy="rsi_trend", scope="all")
    assert len(stored) >= len(report.windows)  # winners and out-of-sample runs
    assert (stored["definition"].astype(str) != "").all()  # the rule's definition recorded
    again = load_walk_forward(store, report.parent_id)
    assert again.windows["oos_id"].tolist() == report.windows["oos_id"].tolist()


def test_the_refresh_reruns_a_rule_strategy_on_new_bars(rules, provider, tmp_path):
    folder = tmp_path / "prices"
    folder.mkdir()
    symbol = provider.symbols()[0]
    full = provider.load_bars(symbol)
    full.iloc[:-20].rename_axis("date").to_csv(folder / f"{symbol}.csv")
    files = CachedProvider(FolderProvider(folder), PriceCache.at(tmp_path / "cache.zarr"))
    store = open_store(str(tmp_path / "s.zarr"), "a",
                       default_scope={"source": files.source_id})
    run_sweep("rsi_trend", GRID, [symbol], [None], store, files)
    full.rename_axis("date").to_csv(folder / f"{symbol}.csv")  # 20 new bars
    report = refresh(store, files, journal=None)
    assert (report.configs, report.rerun, report.failed) == (4, 4, [])
    latest = store.query(strategy="rsi_trend")
    assert len(latest) == 4 and (latest["end"] == full.index[-1]).all()
    assert store.count(include_history=True) == 8

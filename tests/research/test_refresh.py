"""Nightly refresh: drift after new bars, idempotency, and resume after SIGKILL (subprocess).

The lock that keeps two refreshes from running at once is tested in test_refresh_lock.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from core.data.cached import CachedProvider
from core.data.demo import DemoProvider
from core.data.folder import FolderProvider
from core.engine import run_backtest
from core.refresh import journal_path, refresh
from core.store import open_store
from core.data.prices import PriceCache
from core.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAA", "BBB", "CCC"]
GRID = {"period": [8, 14], "oversold": [25, 35]}


def _universe():
    demo = DemoProvider(count=3, years=2)
    return {name: demo.load_bars(demo_name)
            for name, demo_name in zip(SYMBOLS, demo.symbols())}


def _folder_scope(folder: Path) -> dict:
    """The default scope of a store used with the folder source (lookups default to it)."""
    return {"source": FolderProvider(folder).source_id}


def _write(folder: Path, bars_by_symbol, rows: int | None = None) -> None:
    folder.mkdir(exist_ok=True)
    for symbol, bars in bars_by_symbol.items():
        (bars if rows is None else bars.iloc[:rows]).rename_axis("date").to_csv(folder / f"{symbol}.csv")


def test_refresh_reruns_changed_configs_reports_drift_and_is_idempotent(tmp_path):
    full = _universe()
    folder = tmp_path / "prices"
    _write(folder, full, rows=380)
    provider = CachedProvider(FolderProvider(folder), PriceCache.at(tmp_path / "cache.zarr"))
    store = open_store(str(tmp_path / "store.zarr"), "a", default_scope=_folder_scope(folder))
    run_sweep("rsi_meanrev", GRID, SYMBOLS, [None], store, provider)
    single = run_backtest(provider.load_bars("AAA"), "rsi_meanrev", {"period": 10},
                          {"type": "stop_loss", "pct": 0.05}, costs={"commission": 0.001},
                          whole_shares=True, symbol="AAA")
    store.store_backtest(single)
    assert store.count() == 13

    _write(folder, {s: full[s] for s in ("AAA", "BBB")})  # new bars for two symbols
    report = refresh(store, provider)
    assert report.prices_updated == {"AAA": len(full["AAA"]) - 380,
                                     "BBB": len(full["BBB"]) - 380, "CCC": 0}
    assert (report.configs, report.rerun, report.current, report.failed) == (13, 9, 4, [])
    assert len(report.drift) == 9 and not journal_path(store.url).exists()

    # the re-run equals a fresh backtest on today's bars, with the stored costs and settings
    fresh = run_backtest(full["AAA"], "rsi_meanrev", {"period": 10},
                         {"type": "stop_loss", "pct": 0.05}, costs={"commission": 0.001},
                         whole_shares=True, symbol="AAA")
    scope = {"source": provider.source_id, "costs": {"commission": 0.001},
             "settings": {"whole_shares": True}}  # the single run's own scope
    stats = store.get_stats("AAA", "rsi_meanrev", {"period": 10}, {"type": "stop_loss", "pct": 0.05},
                            scope=scope)
    assert stats["total_return"] == pytest.approx(fresh.metrics["total_return"], rel=1e-12)
    assert stats["end"] == full["AAA"].index[-1]
    history = store.history("AAA", "rsi_meanrev", {"period": 10}, {"type": "stop_loss", "pct": 0.05},
                            scope=scope)
    assert len(history) == 2
    assert history["total_return"].iloc[0] == pytest.approx(single.metrics["total_return"])

    entry = next(d for d in report.drift if d["symbol"] == "AAA" and '"period":10' in d["params_json"])
    assert entry["old"]["total_return"] == pytest.approx(single.metrics["total_return"])
    assert entry["new"]["total_return"] == pytest.approx(fresh.metrics["total_return"])
    text = "\n".join(report.lines())
    assert "AAA rsi_meanrev" in text and "->" in text

    again = refresh(store, provider)
    assert (again.rerun, again.current, again.drift) == (0, 13, [])
    assert store.count(include_history=True) == 13 + 9


SCRIPT = textwrap.dedent("""
    import json, os, sys, time
    from pathlib import Path
    from core.data.cached import CachedProvider
    from core.data.folder import FolderProvider
    from core.data.prices import PriceCache
    from core.refresh import refresh
    from core.store import open_store

    class Blocking(CachedProvider):
        def load_bars(self, symbol, start=None, end=None):
            if symbol == os.environ.get("BLOCK_AT"):
                Path(os.environ["READY"]).write_text("ready")
                time.sleep(600)
            return super().load_bars(symbol, start, end)

    provider = Blocking(FolderProvider(sys.argv[2]), PriceCache.at(sys.argv[3]))
    report = refresh(open_store(sys.argv[1], "a"), provider, batch_rows=1)
    print(json.dumps({"rerun": report.rerun, "current": report.current,
                      "resumed": report.resumed, "drift": len(report.drift),
                      "prices_updated": report.prices_updated, "lines": report.lines()}))
""")


def _script(tmp_path, store_url, folder, env=None):
    script = tmp_path / "refresh_job.py"
    script.write_text(SCRIPT)
    cache = tmp_path / "cache.zarr"
    return subprocess.Popen([sys.executable, str(script), store_url, str(folder), str(cache)],
                            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_refresh_resumes_after_sigkill(tmp_path):
    full = _universe()
    folder = tmp_path / "prices"
    _write(folder, full, rows=380)
    store_url = str(tmp_path / "store.zarr")
    store = open_store(store_url, "a", default_scope=_folder_scope(folder))
    cached = CachedProvider(FolderProvider(folder), PriceCache.at(tmp_path / "cache.zarr"))
    run_sweep("rsi_meanrev", GRID, SYMBOLS, [None], store, cached)
    _write(folder, full)  # every symbol gets new bars: 12 configurations to re-run
    new_bars = {s: len(full[s]) - 380 for s in SYMBOLS}

    ready = tmp_path / "ready"
    proc = _script(tmp_path, store_url, folder, {"BLOCK_AT": "CCC", "READY": str(ready)})
    deadline = time.time() + 60
    while not ready.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the refresh job never reached CCC"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()

    journal = json.loads(journal_path(store_url).read_text())
    assert {d["symbol"] for d in journal["drift"]} == {"AAA", "BBB"} and len(journal["drift"]) == 8
    assert journal["prices_updated"] == new_bars  # the interrupted run brought the cache up to date

    def versions(symbol):
        return [len(store.history(symbol, "rsi_meanrev", {"period": p, "oversold": o}))
                for p in GRID["period"] for o in GRID["oversold"]]

    assert versions("AAA") == versions("BBB") == [2] * 4 and versions("CCC") == [1] * 4

    resumed = _script(tmp_path, store_url, folder)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    report = json.loads(out)
    assert {k: report[k] for k in ("rerun", "current", "resumed", "drift")} == {
        "rerun": 12, "current": 0, "resumed": True, "drift": 12}
    # the resumed run found the cache current, yet reports the interrupted run's new bars
    assert report["prices_updated"] == new_bars
    assert report["lines"][0] == f"prices: {sum(new_bars.values())} new bars for 3 symbols"
    assert not journal_path(store_url).exists()
    assert all(versions(s) == [2] * 4 for s in SYMBOLS)  # nothing was re-run twice

    idle = _script(tmp_path, store_url, folder)
    out, err = idle.communicate(timeout=120)
    report = json.loads(out)
    assert {k: report[k] for k in ("rerun", "current", "resumed", "drift")} == {
        "rerun": 0, "current": 12, "resumed": False, "drift": 0}
    assert report["prices_updated"] == dict.fromkeys(SYMBOLS, 0)
    assert store.count(include_history=True) == 24


def test_a_symbol_gone_from_the_source_is_reported_not_fatal(tmp_path):
    folder = tmp_path / "prices"
    _write(folder, _universe(), rows=300)
    provider = CachedProvider(FolderProvider(folder), PriceCache.at(tmp_path / "cache.zarr"))
    store = open_store(str(tmp_path / "store.zarr"), "a", default_scope=_folder_scope(folder))
    run_sweep("rsi_meanrev", {"period": [8, 14]}, SYMBOLS, [None], store, provider)
    (folder / "CCC.csv").unlink()
    report = refresh(store, provider)
    assert (report.configs, report.current, report.rerun) == (6, 4, 0)
    assert len(report.failed) == 1 and report.failed[0].startswith("CCC: 2 configuration(s)")
    assert any("CCC" in note for note in report.notes)

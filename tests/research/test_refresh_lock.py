"""One refresh at a time: two real ``python -m core refresh`` processes started at once."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from core.data.cached import CachedProvider
from core.data.demo import DemoProvider
from core.data.folder import FolderProvider
from core.data.prices import PriceCache
from core.errors import ValidationError
from core.refresh import RefreshRunningError, refresh, refresh_lock_path
from core.store import open_store
from core.sweep import run_sweep

ROOT = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAA", "BBB", "CCC"]
GRID = {"period": [8, 14], "oversold": [25, 35]}


def _write(folder: Path, rows: int | None = None) -> None:
    """Three symbols of demo bars as CSV files (the first ``rows`` bars of each)."""
    demo = DemoProvider(count=3, years=2)
    folder.mkdir(exist_ok=True)
    for symbol, name in zip(SYMBOLS, demo.symbols()):
        bars = demo.load_bars(name)
        (bars if rows is None else bars.iloc[:rows]).rename_axis("date").to_csv(folder / f"{symbol}.csv")


def _setup(tmp_path: Path) -> tuple[str, dict]:
    """A small swept store on a folder source whose files then gain new bars; the CLI's env."""
    folder, cache, store_url = tmp_path / "prices", tmp_path / "cache.zarr", str(tmp_path / "store.zarr")
    _write(folder, rows=380)
    provider = CachedProvider(FolderProvider(folder), PriceCache.at(cache))
    run_sweep("rsi_meanrev", GRID, SYMBOLS, [None], open_store(store_url, "a"), provider)
    _write(folder)  # every symbol gets new bars: all 12 configurations change
    config = tmp_path / "config.toml"
    config.write_text(f'data_source = "folder"\ndata_folder = {json.dumps(str(folder))}\n'
                      f'price_cache = {json.dumps(str(cache))}\n'
                      f'store_url = {json.dumps(store_url)}\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HINDSIGHT_")}
    return store_url, {**env, "HINDSIGHT_CONFIG": str(config), "PYTHONPATH": str(ROOT)}


def _start(tmp_path: Path, env: dict, *options: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "refresh", "--no-progress", *options],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _versions(store_url: str) -> list[int]:
    folder = Path(store_url).parent / "prices"
    store = open_store(store_url, "r", default_scope={"source": FolderProvider(folder).source_id})
    return [len(store.history(s, "rsi_meanrev", {"period": p, "oversold": o}))
            for s in SYMBOLS for p in GRID["period"] for o in GRID["oversold"]]


@pytest.mark.slow
def test_two_refreshes_at_once_rerun_each_configuration_once(tmp_path):
    store_url, env = _setup(tmp_path)
    procs = [_start(tmp_path, env), _start(tmp_path, env)]
    results = [(*p.communicate(timeout=300), p.returncode) for p in procs]
    assert _versions(store_url) == [2] * 12  # one new version per changed configuration
    codes = sorted(code for _, _, code in results)
    assert codes in ([0, 0], [0, 1]), results
    for out, err, code in results:
        if code == 1:  # the second one said why it did nothing, in one line
            assert out == "" and err.count("\n") == 1
            assert err.startswith("error: Another refresh is running on ") and "--wait" in err
        else:
            assert "configurations: 12 stored" in out

    with FileLock(refresh_lock_path(store_url)):  # one running now: the next exits at once
        busy = _start(tmp_path, env)
        out, err = busy.communicate(timeout=300)
    assert (busy.returncode, out) == (1, "")
    assert err == (f"error: Another refresh is running on {store_url} (it holds "
                   f"{refresh_lock_path(store_url)}). Let it finish, or wait for it with --wait "
                   "SECONDS (refresh(wait=...)).\n")


@pytest.mark.slow
def test_a_waiting_refresh_runs_after_the_first_and_finds_nothing_to_do(tmp_path):
    store_url, env = _setup(tmp_path)
    procs = [_start(tmp_path, env, "--wait", "300", "--json") for _ in range(2)]
    reports = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        reports.append(json.loads(out))
    assert sorted(r["rerun"] for r in reports) == [0, 12]
    assert sorted(r["current"] for r in reports) == [0, 12]
    assert _versions(store_url) == [2] * 12


def test_a_held_lock_stops_a_refresh_with_a_clear_message(tmp_path, provider):
    store = open_store(str(tmp_path / "store.zarr"), "a")
    run_sweep("rsi_meanrev", {"period": [8]}, provider.symbols()[:1], [None], store, provider)
    with FileLock(refresh_lock_path(store.url)):
        with pytest.raises(RefreshRunningError, match="Another refresh is running on .*--wait"):
            refresh(store, provider, wait=0.2)
    assert refresh(store, provider).current == 1  # free again once the holder is done
    with pytest.raises(ValidationError, match="wait must be a number of seconds >= 0.*-1"):
        refresh(store, provider, wait=-1)

"""Opening a format-2 store for writing migrates its manifest crash-safely.

A writer process is SIGKILLed at each step of the migration's manifest replacement; the store
then reads back every value as format 2 did (the fixture's expected values), and a later
writable open finishes the migration.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_format2_fixture import EXPECTED, FIXTURES, check_reads

from core.store import FORMAT_VERSION, open_store
from core.store._backend import CRASH_ENV

OPEN_FOR_WRITING = "import sys; from core.store import BacktestStore; BacktestStore(sys.argv[1])"


def open_for_writing(path: Path, crash_at: str | None) -> int:
    """Exit code of a process that opens ``path`` with mode 'r+' (killed at ``crash_at``)."""
    env = {**os.environ, CRASH_ENV: crash_at or ""}
    return subprocess.run([sys.executable, "-c", OPEN_FOR_WRITING, str(path)], env=env,
                          cwd=Path(__file__).parents[2], timeout=120).returncode


def manifest_version(path: Path) -> int:
    return json.loads((path / "manifest.json").read_text())["format_version"]


@pytest.mark.parametrize("step, migrated", [("manifest_tmp", False),
                                            ("manifest_renamed", True)])
def test_a_migration_killed_midway_loses_nothing(tmp_path, step, migrated):
    path = tmp_path / "store.zarr"
    shutil.copytree(FIXTURES / "format2_store.zarr", path)
    assert manifest_version(path) == 2
    assert open_for_writing(path, step) == -signal.SIGKILL
    assert manifest_version(path) == (FORMAT_VERSION if migrated else 2)
    with open_store(path, mode="r") as store:
        check_reads(store)  # every value, with the documented scopes
        assert store.verify()["ok"]
    assert open_for_writing(path, None) == 0
    assert manifest_version(path) == FORMAT_VERSION
    with open_store(path, mode="r") as store:
        check_reads(store)
    rule = json.loads((path / "manifest.json").read_text())["legacy_scopes"]
    assert rule["source"] == "demo" and set(rule["first_start"]) == set(EXPECTED["symbols"])


def test_the_upgrade_records_the_configured_source_for_older_rows(tmp_path, monkeypatch):
    """Rows stored before scopes belong to the source configured when the store is upgraded;
    the store remembers it, so a later change of setting does not move them."""
    path = tmp_path / "store.zarr"
    shutil.copytree(FIXTURES / "format2_store.zarr", path)
    folder = tmp_path / "prices"
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "folder")
    monkeypatch.setenv("HINDSIGHT_DATA_FOLDER", str(folder))
    open_store(path, mode="r+").close()
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "demo")
    with open_store(path, mode="r") as store:
        assert {label.split(" · ")[0] for label in store.get_all_stats()["scope"]} == \
            {"folder prices"}
        assert store.query(scope="all")["scope"].str.startswith("folder prices · ").all()
        assert store.count() > 0 and len(store.query()) == 0  # the default is demo now

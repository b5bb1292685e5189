"""Run the real CLI in subprocesses against a small offline setup (demo data, tmp stores)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class Cli:
    """``cli("run", "--strategy", ...)`` -> CompletedProcess, in a fresh ``python -m core``."""

    def __init__(self, workdir: Path, **settings: object):
        self.workdir = workdir
        self.config = workdir / "config.toml"
        values = {"data_source": "demo", "demo_symbols": 3, "demo_years": 2,
                  "price_cache": str(workdir / "prices.zarr"),
                  "store_url": str(workdir / "store.zarr"), **settings}
        self.config.write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items()))
        self.env = {**os.environ, "HINDSIGHT_CONFIG": str(self.config), "PYTHONPATH": str(ROOT)}
        for name in ("HINDSIGHT_STORE", "HINDSIGHT_DATA_SOURCE", "HINDSIGHT_PRICE_CACHE"):
            self.env.pop(name, None)

    def __call__(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=self.workdir,
                              env=self.env, capture_output=True, text=True, timeout=120)
        if check and proc.returncode != 0:
            raise AssertionError(f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    def json(self, *args: str):
        return json.loads(self(*args, "--json", check=True).stdout)


@pytest.fixture(scope="module")
def cli(tmp_path_factory) -> Cli:
    return Cli(tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def new_cli(tmp_path_factory):
    """``new_cli(name, **settings)``: a Cli in a fresh folder, with settings for its config.toml."""
    return lambda name="cli", **settings: Cli(tmp_path_factory.mktemp(name), **settings)

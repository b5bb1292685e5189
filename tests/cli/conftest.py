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

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.config = workdir / "config.toml"
        self.config.write_text(
            'data_source = "demo"\n'
            "demo_symbols = 3\n"
            "demo_years = 2\n"
            f'price_cache = "{workdir / "prices.zarr"}"\n'
            f'store_url = "{workdir / "store.zarr"}"\n'
        )
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

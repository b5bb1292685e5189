"""Fixtures of the store tests: a real store on disk in tmp_path, helpers to snapshot it."""
from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from core.store import BacktestStore  # noqa: E402


@pytest.fixture
def store_path(tmp_path) -> Path:
    return tmp_path / "store.zarr"


@pytest.fixture
def store(store_path) -> BacktestStore:
    handle = BacktestStore(store_path, mode="r+")
    yield handle
    handle.close()


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> digest of every file under root (the store's exact bytes)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            out[str(path.relative_to(root))] = hashlib.blake2b(path.read_bytes()).hexdigest()
    return out


def outcome(call):
    """A call's result, or the type and message of the error it raised."""
    try:
        return call()
    except Exception as exc:  # noqa: BLE001 - the error itself is what is compared
        return (type(exc), str(exc))


@pytest.fixture(scope="session")
def s3_server():
    """One moto S3 server on 127.0.0.1 for the session (AWS_ENDPOINT_URL set while it runs)."""
    from s3server import MotoServer

    with MotoServer() as server:
        yield server

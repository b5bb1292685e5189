"""Pool workers end with their parent: a SIGKILLed sweep leaves no worker process behind."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="reads the process tree from /proc")

SWEEP = textwrap.dedent("""
    import time
    from core.data.demo import DemoProvider
    from core.sweep import run_sweep

    def progress(done, total):  # the first finished task: the pool is busy, stop right here
        print("running", flush=True)
        time.sleep(600)

    provider = DemoProvider(count=3, years=2)
    grid = {"period": {"start": 2, "stop": 60}, "oversold": {"start": 5, "stop": 40}}
    run_sweep("rsi_meanrev", grid, provider.symbols(), None, None, provider, workers=2,
              progress=progress)
""")


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of a live process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def _descendants(root: int) -> set[tuple[int, int]]:
    """(pid, start time) of every process below ``root``: a pid alone may be reused."""
    parents, started = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], started[int(entry.name)] = stat[1], stat[2]
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return {(pid, started[pid]) for pid in found}


def _alive(process: tuple[int, int]) -> bool:
    """Whether that very process (pid and start time) still runs."""
    stat = _stat(process[0])
    return stat is not None and stat[0] not in ("Z", "X") and stat[2] == process[1]


def test_sigkilled_pool_sweep_leaves_no_workers(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HINDSIGHT_CONFIG": str(tmp_path / "none.toml")}
    proc = subprocess.Popen([sys.executable, "-c", SWEEP], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    children: set[tuple[int, int]] = set()
    try:
        line = proc.stdout.readline()
        assert line.strip() == "running", proc.stderr.read()
        children = _descendants(proc.pid)
        assert len(children) >= 2, children  # at least the two workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and any(map(_alive, children)):
            time.sleep(0.2)
        left = sorted(pid for pid, started in children if _alive((pid, started)))
        assert not left, f"processes still running after their parent was killed: {left}"
    finally:
        for child in children:  # never leave them behind, even when the test fails
            if _alive(child):
                os.kill(child[0], signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()

"""What the pages import: the strategy registry and the page helpers load without numba.

Importing numba is a large part of a page's first view after a server start; only computing an
indicator or running a backtest needs it (``core.indicators`` compiles its kernels on first use).
"""
from __future__ import annotations

import json
import subprocess
import sys

from tests.app.conftest import ROOT

PAGE_IMPORTS = ("core.strategies", "core.exits", "core.scanner", "core.details",
                "core.rule_files", "views._ui", "views._details_ui", "views._scan", "views._run",
                "views._browse", "views._sweep")

CHECK = """
import importlib, json, sys
for name in {names!r}:
    importlib.import_module(name)
after_imports = "numba" in sys.modules
import numpy as np
from core import indicators, strategies
close = 100.0 + np.cumsum(np.random.default_rng(1).normal(0, 1, 200))
entries, exits = strategies.get_strategy("bollinger_reversion").signals(close, close + 1, close - 1, close)
print(json.dumps({{"after_imports": after_imports, "after_signals": "numba" in sys.modules,
                  "dispatcher": type(indicators.rolling_std_nb).__name__,
                  "entries": int(entries.sum()), "exits": int(exits.sum())}}))
"""


def test_page_imports_leave_numba_out_until_an_indicator_is_computed():
    out = subprocess.run([sys.executable, "-c", CHECK.format(names=PAGE_IMPORTS)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["after_imports"] is False, "a page import pulled numba in"
    assert report["after_signals"] is True
    assert report["dispatcher"] == "CPUDispatcher", "kernels run compiled, not as Python"
    assert report["entries"] > 0 and report["exits"] > 0

"""The entry scripts: icons that need no network, and the process warmed at start-up."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import streamlit as st

from tests.app.conftest import ROOT
from tests.app.test_pages import open_page

def test_the_tab_icon_is_a_bundled_file_set_before_the_navigation(env, monkeypatch):
    """A Material-icon ``page_icon`` is fetched from fonts.gstatic.com; a file is served here.

    ``page_icon`` must be set before ``st.navigation``: then the pages' icons (Material, drawn
    with the font bundled in Streamlit) are never used as the favicon.
    """
    calls = []
    set_page_config, navigation = st.set_page_config, st.navigation

    def recording_config(*args, **kwargs):
        calls.append(("page_icon", kwargs.get("page_icon")))
        return set_page_config(*args, **kwargs)

    def recording_navigation(*args, **kwargs):
        calls.append(("navigation", None))
        return navigation(*args, **kwargs)

    monkeypatch.setattr(st, "set_page_config", recording_config)
    monkeypatch.setattr(st, "navigation", recording_navigation)
    open_page()
    assert [name for name, _ in calls][:2] == ["page_icon", "navigation"]
    icon = Path(calls[0][1])
    assert icon.is_file() and icon.suffix == ".png", icon
    assert ROOT in icon.parents, "bundled with the app"


WARM_CHECK = """
import json, threading
from streamlit.testing.v1 import AppTest
import core.kernels, core.indicators

def compiled():
    return sorted(f"{m.__name__}.{n}" for m in (core.kernels, core.indicators)
                  for n, f in vars(m).items() if getattr(f, "signatures", None))

started = []  # every thread started from here on (the warm-up may end before the run does)
thread_start = threading.Thread.start

def recording_start(self):
    started.append(self)
    return thread_start(self)

threading.Thread.start = recording_start
before = compiled()
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
threads = [t for t in started if t.name == "hindsight-warm-up"]
for t in threads:
    t.join(120)
print(json.dumps({"before": before, "threads": len(threads), "after": compiled(),
                  "alive": any(t.is_alive() for t in threads)}))
"""


def test_start_up_warms_the_compiled_kernels_in_the_background(env):
    """A fresh process: the app starts one warm-up thread that loads the backtest kernels."""
    out = subprocess.run([sys.executable, "-c", WARM_CHECK], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Warm-up step" not in out.stderr, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["before"] == []
    assert report["threads"] == 1
    assert not report["alive"]
    assert "core.kernels.simulate_nb" in report["after"], report


SERVE_CHECK = """
import json, runpy, sys, threading
import core.kernels

def serving(name, run_name, alter_sys):
    compiled = [n for n, f in vars(core.kernels).items() if getattr(f, "signatures", None)]
    print(json.dumps({"module": name, "run_name": run_name, "argv": sys.argv,
                      "compiled": compiled,
                      "threads": [t.name for t in threading.enumerate()]}))

runpy.run_module = serving  # where serve.py hands over to `python -m streamlit`
sys.argv = ["serve.py", "--server.port", "8599"]
import serve
serve.main()
"""


def test_serve_is_ready_for_a_first_run_before_streamlit_starts(env):
    """``python serve.py`` (``make run``): the default strategy's kernels are loaded before
    Streamlit's server starts, the warm-up thread goes on with the rest, and the options go
    to ``streamlit run app.py``."""
    out = subprocess.run([sys.executable, "-c", SERVE_CHECK], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Warm-up step" not in out.stderr, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["module"] == "streamlit" and report["run_name"] == "__main__"
    assert report["argv"] == ["streamlit", "run", str(ROOT / "app.py"), "--server.port", "8599"]
    assert "simulate_nb" in report["compiled"], report
    assert "hindsight-warm-up" in report["threads"]


@pytest.mark.parametrize("script", ["app.py", "serve.py"])
def test_a_worker_importing_the_main_script_draws_nothing_and_starts_no_thread(env, script):
    """Sweep workers (spawn, forkserver) import the main script again as ``__mp_main__``;
    a warm-up thread started there wrote a throw-away store inside every worker."""
    code = (f"import runpy, threading; runpy.run_path({script!r}, run_name='__mp_main__'); "
            "print([t.name for t in threading.enumerate()])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "hindsight-warm-up" not in out.stdout, out.stdout

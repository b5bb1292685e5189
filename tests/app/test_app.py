"""The entry script: icons that need no network, and kernels warmed at start-up."""
from __future__ import annotations

import json
import subprocess
import sys

import streamlit as st

from tests.app.conftest import ROOT
from tests.app.test_pages import open_page

ONLINE_ICON = (":material/", "http://", "https://")  # a material favicon is fetched from Google


def test_page_and_navigation_icons_need_no_network(env, monkeypatch):
    icons = []
    set_page_config, page = st.set_page_config, st.Page

    def recording_config(*args, **kwargs):
        icons.append(("page_icon", kwargs.get("page_icon")))
        return set_page_config(*args, **kwargs)

    def recording_page(*args, **kwargs):
        icons.append((kwargs.get("title"), kwargs.get("icon")))
        return page(*args, **kwargs)

    monkeypatch.setattr(st, "set_page_config", recording_config)
    monkeypatch.setattr(st, "Page", recording_page)
    open_page()
    assert [name for name, _ in icons] == ["page_icon", "Scanner", "Backtest Manager",
                                           "Backtest Details"]
    for name, icon in icons:
        assert icon, f"{name}: no icon means Streamlit picks one"
        assert not str(icon).startswith(ONLINE_ICON), f"{name}: {icon} is fetched online"


WARM_CHECK = """
import json, threading
from streamlit.testing.v1 import AppTest
import core.kernels, core.indicators

def compiled():
    return sorted(f"{m.__name__}.{n}" for m in (core.kernels, core.indicators)
                  for n, f in vars(m).items() if getattr(f, "signatures", None))

before = compiled()
at = AppTest.from_file("app.py", default_timeout=120)
at.run()
threads = [t for t in threading.enumerate() if t.name == "hindsight-warm-up"]
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
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["before"] == []
    assert report["threads"] == 1
    assert not report["alive"]
    assert "core.kernels.simulate_nb" in report["after"], report

"""Backtest Manager: run one backtest, run a sweep, or browse / compare / delete stored ones."""
import streamlit as st

from views import _browse, _new_strategy, _run, _sweep, _ui, _walkforward

MODES = {"run": "Run one backtest", "sweep": "Run a sweep", "browse": "Browse stored",
         "walkforward": "Walk-forward", "new": "New strategy"}

st.title("Backtest Manager")
with st.sidebar:
    mode = st.radio("Mode", list(MODES), format_func=MODES.get, key="manager.mode",
                    horizontal=False)
    st.divider()
    _new_strategy.sidebar_problems()

{"run": _run.panel, "sweep": _sweep.panel, "browse": _browse.panel,
 "walkforward": _walkforward.panel, "new": _new_strategy.panel}[mode]()
_ui.sidebar_status()

"""Hindsight: the Streamlit entry point (``streamlit run app.py``).

Sets the page up, starts warming the compiled kernels in the background (once per process, so
the first backtest does not wait for them) and registers the three pages with
``st.navigation``. Icons are emoji: a material-icon favicon would be fetched from
fonts.gstatic.com, and the app makes no request beyond 127.0.0.1. Each page ends with
``_ui.sidebar_status()`` (which store and data source are open, how many backtests it holds), so
the count includes what the page just stored.
"""
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so the page scripts can import views._ui

from views import _ui  # noqa: E402

st.set_page_config(page_title="Hindsight", page_icon="📈", layout="wide",
                   initial_sidebar_state="expanded")
_ui.warm_up()

PAGES = [
    st.Page("views/scanner.py", title="Scanner", icon="📡", url_path="scanner", default=True),
    st.Page("views/manager.py", title="Backtest Manager", icon="🧪", url_path="manager"),
    st.Page("views/details.py", title="Backtest Details", icon="🔎", url_path=_ui.DETAILS_PATH),
]

navigation = st.navigation(PAGES)

navigation.run()

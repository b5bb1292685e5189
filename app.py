"""Hindsight: the Streamlit entry point (``streamlit run app.py``).

Sets the page up, makes sure the process warm-up runs (``views/_warm.py``: ``python serve.py``
starts it with the process; a plain ``streamlit run app.py`` starts it here, before the first
page) and registers the three pages with ``st.navigation``. The browser-tab icon is a
bundled file (``views/favicon.png``, served by this server): a Material-icon ``page_icon`` makes
the browser fetch an SVG from fonts.gstatic.com, and the app makes no request beyond 127.0.0.1.
Because ``page_icon`` is set, the navigation's Material icons only draw with the font bundled in
Streamlit and never become the favicon. Each page ends with ``_ui.sidebar_status()`` (which store
and data source are open, how many backtests it holds), so the count includes what the page just
stored.
"""
import sys
from pathlib import Path

import streamlit as st

sys.path.insert(0, str(Path(__file__).resolve().parent))  # so the page scripts can import views._ui

from views import _ui, _warm  # noqa: E402

FAVICON = Path(__file__).resolve().parent / "views" / "favicon.png"


def main() -> None:
    """Set the page up, make sure the warm-up runs, run the selected page."""
    st.set_page_config(page_title="Hindsight", page_icon=str(FAVICON), layout="wide",
                       initial_sidebar_state="expanded")
    _warm.start()
    pages = [
        st.Page("views/scanner.py", title="Scanner", icon=":material/radar:",
                url_path="scanner", default=True),
        st.Page("views/manager.py", title="Backtest Manager", icon=":material/tune:",
                url_path="manager"),
        st.Page("views/details.py", title="Backtest Details", icon=":material/insights:",
                url_path=_ui.DETAILS_PATH),
    ]
    st.navigation(pages).run()


# A sweep's worker processes import the main script again, as ``__mp_main__``
# (multiprocessing's spawn and forkserver start methods): there it draws nothing and starts no
# thread (a warm-up thread writing a store in a worker or in the fork server would be wrong).
if __name__ != "__mp_main__":
    main()

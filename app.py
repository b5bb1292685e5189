"""Hindsight: the Streamlit entry point (``streamlit run app.py``).

Sets the page up, starts warming the compiled kernels in the background (once per process, so the
first backtest does not wait for them) and registers the three pages with ``st.navigation``. The
warm-up starts before the first page runs: a backtest clicked right after that page shows would
otherwise share the interpreter with it (starting it once the first page's script had run measured
slower first backtests and no faster first page, docs/benchmarks.md). The browser-tab icon is a
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

from views import _ui  # noqa: E402

FAVICON = Path(__file__).resolve().parent / "views" / "favicon.png"


def main() -> None:
    """Set the page up, start the kernel warm-up, run the selected page."""
    st.set_page_config(page_title="Hindsight", page_icon=str(FAVICON), layout="wide",
                       initial_sidebar_state="expanded")
    _ui.warm_up()
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

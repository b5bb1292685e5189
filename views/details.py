"""Backtest Details: one stored backtest (deep link ``?id=<backtest id>``), charts, trades, notes."""
import streamlit as st

from views import _ui
from views import _details_ui as view


def render() -> None:
    with _ui.user_errors() as failed:
        the_store = _ui.store()
        listing = view.stored_listing(the_store)
    backtest_id = None if failed else view.pick_backtest(the_store, listing)
    if backtest_id is None:
        return
    with _ui.user_errors() as failed:
        details = _ui.load_details(the_store, backtest_id)
    if failed:
        st.info("Pick another backtest in the sidebar, or open one from the Backtest Manager.")
        return
    bars = None
    with _ui.user_errors():
        bars = _ui.load_bars(details["symbol"], details.get("start"), details.get("end"))

    st.subheader(view.details_title(details))
    st.caption(view.details_caption(details))
    view.definition_warning(details)
    view.metric_grid(details.get("metrics") or {}, bars)
    st.caption(view.annualisation_caption(details))
    view.equity_section(details, bars)
    view.price_section(details, bars)
    view.returns_section(details)

    tabs = {
        "Trade log": lambda: view.trade_log(details.get("trades"), bars,
                                            name=f"trades_{backtest_id}"),
        "Params and exit rule": lambda: view.show_configuration(details),
        "Note and tags": lambda: view.note_form(the_store, details),
        "Compare": lambda: view.compare_panel(the_store, details),
    }
    open_tab_only(tabs)


TAB_KEY = "details.tab"  # widget key of the tabs: the label of the open one


def open_tab_only(tabs: dict) -> None:
    """Tabs whose content is drawn only while open (a click on a tab reruns the page).

    Otherwise every page load computes and draws the hidden tabs too (the note form, the
    store search and picker of Compare), which the browser pays for on each deep link.
    """
    for container, draw in zip(st.tabs(list(tabs), key=TAB_KEY, on_change="rerun"),
                               tabs.values()):
        if container.open:
            with container:
                draw()


st.title("Backtest Details")
render()
_ui.sidebar_status()

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
    view.metric_grid(details.get("metrics") or {}, bars)
    st.caption(view.annualisation_caption(details))
    view.equity_section(details, bars)
    view.price_section(details, bars)
    view.returns_section(details)

    tab_trades, tab_config, tab_note, tab_compare = st.tabs(
        ["Trade log", "Params and exit rule", "Note and tags", "Compare"])
    with tab_trades:
        view.trade_log(details.get("trades"), bars, name=f"trades_{backtest_id}")
    with tab_config:
        view.show_configuration(details)
    with tab_note:
        view.note_form(the_store, details)
    with tab_compare:
        view.compare_panel(the_store, details)


st.title("Backtest Details")
render()
_ui.sidebar_status()

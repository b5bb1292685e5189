"""Backtest Details: one stored backtest (deep link ``?id=<backtest id>``), charts, trades, notes."""
import streamlit as st

from views import _charts, _ui
from views import _details_ui as view


def render() -> None:
    with _ui.user_errors() as failed:
        the_store = _ui.store()
    backtest_id = None if failed else view.pick_backtest(the_store)
    if backtest_id is None:
        return
    with _ui.user_errors() as failed:
        details = _ui.load_details(the_store, backtest_id)
    if failed:
        st.info("Pick another backtest in the sidebar, or open one from the Backtest Manager.")
        return

    st.subheader(view.details_title(details))
    st.caption(view.details_caption(details))
    _ui.metric_cards(details.get("metrics") or {}, columns=5)
    charts(details)

    trades = details.get("trades")
    tab_trades, tab_config, tab_note, tab_compare = st.tabs(
        ["Trade log", "Params and exit rule", "Note and tags", "Compare"])
    with tab_trades:
        if trades is None or trades.empty:
            st.info("This backtest made no trades.")
        else:
            _ui.table(trades, name=f"trades_{backtest_id}", key="details.trades")
    with tab_config:
        view.show_configuration(details)
    with tab_note:
        view.note_form(the_store, details)
    with tab_compare:
        view.compare_panel(the_store, details)


def charts(details: dict) -> None:
    """Equity vs buy-and-hold, drawdown, price with trades, monthly returns, trade returns."""
    equity, trades = details.get("equity"), details.get("trades")
    if equity is None:
        st.warning(f"No equity curve: {details.get('equity_reason')}.")
    else:
        benchmark = view.buy_and_hold(details)
        st.altair_chart(_charts.equity_chart(equity, benchmark), width="stretch")
        st.altair_chart(_charts.drawdown_chart(equity), width="stretch")
    with _ui.user_errors():
        bars = _ui.load_bars(details["symbol"], details.get("start"), details.get("end"))
        st.altair_chart(_charts.price_chart(bars, trades), width="stretch")
    left, right = st.columns(2)
    if equity is not None:
        left.altair_chart(_charts.monthly_heatmap(equity), width="stretch")
    if trades is not None and len(trades):
        right.altair_chart(_charts.trade_histogram(trades), width="stretch")


st.title("Backtest Details")
render()
_ui.sidebar_status()

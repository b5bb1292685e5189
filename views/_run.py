"""Manager mode "Run one backtest": form in the sidebar, the stored result and its link here."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from views import _ui

LAST = "run.last"  # session key: the last stored run (id, replaced, label, metrics)


def panel() -> None:
    """Sidebar form -> run_backtest -> store_backtest -> summary with a link to the details."""
    with st.sidebar:
        symbol = st.text_input("Symbol", value=_default_symbol(), key="run.symbol",
                               help="A symbol of the configured data source, e.g. DEMO01.")
        strategy = _ui.strategy_picker("Strategy", key="run.strategy")
        st.caption(strategy.description)
        params = _ui.params_form(strategy, key="run.params", json_editor=True)
        st.markdown("**Exit rule**")
        exit_rule = _ui.exit_rule_form(key="run.exit")
        with st.expander("Dates, costs and capital"):
            start, end = _date_range()
            costs, capital, whole_shares = _costs()
        clicked = st.button("Run backtest", type="primary", key="run.go", width="stretch")

    if clicked:
        with _ui.user_errors(), st.spinner("Running the backtest..."):
            if isinstance(params, str):
                params = _ui.parse_params_json(params)
            st.session_state[LAST] = _ui.run_and_store(
                symbol.strip(), strategy.name, params, exit_rule, start=start, end=end,
                costs=costs, initial_capital=capital, whole_shares=whole_shares)
    last = st.session_state.get(LAST)
    if last is None:
        st.info("Pick a symbol, a strategy, its params and an exit rule in the sidebar, then "
                "click **Run backtest**. The result is stored and linked to its details page.")
        return
    _show(last)


def _default_symbol() -> str:
    with _ui.user_errors():
        symbols = _ui.provider().symbols()
        return symbols[0] if symbols else ""
    return ""


def _date_range() -> tuple[dt.date | None, dt.date | None]:
    lowest, highest = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
    start = st.date_input("Start (empty: all history)", value=None, min_value=lowest,
                          max_value=highest, key="run.start")
    end = st.date_input("End (empty: latest bar)", value=None, min_value=lowest,
                        max_value=highest, key="run.end")
    return start, end


def _costs() -> tuple[dict[str, float], float, bool]:
    commission = st.number_input("Commission (% of traded value)", min_value=0.0, max_value=50.0,
                                 value=0.0, step=0.01, format="%.3f", key="run.commission")
    fixed = st.number_input("Fixed fee per order", min_value=0.0, value=0.0, step=0.5,
                            key="run.fixed")
    slippage = st.number_input("Slippage (bps)", min_value=0.0, max_value=5000.0, value=0.0,
                               step=1.0, key="run.slippage")
    capital = st.number_input("Initial capital", min_value=1.0, value=100_000.0, step=10_000.0,
                              key="run.capital")
    whole = st.checkbox("Whole shares only", value=False, key="run.whole")
    costs = {"commission": commission / 100.0, "fixed": fixed, "slippage_bps": slippage}
    return costs, float(capital), bool(whole)


def _show(last: dict) -> None:
    verb = "Replaced the stored result of" if last["replaced"] else "Stored"
    st.success(f"{verb} {last['label']} as backtest `{last['id']}`.", icon=":material/check:")
    _ui.metric_cards(last["metrics"], columns=5, names=_ui.SUMMARY_METRICS)
    st.page_link("views/details.py", label="Open its details", icon=":material/insights:",
                 query_params={"id": last["id"]})

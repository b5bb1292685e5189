"""Manager mode "Run one backtest": form in the sidebar, the stored result and its link here."""
from __future__ import annotations

import datetime as dt

import streamlit as st

from views import _ui

LAST = "run.last"  # session key: the last stored run (id, replaced, label, scope, metrics)


def panel() -> None:
    """Sidebar form -> run_backtest -> store_backtest -> summary with a link to the details.

    The inputs sit in one ``st.form``: what the boxes show when **Run backtest** is clicked is
    exactly what runs (nothing typed is left unapplied), and it is checked against the
    strategy's schema first. A failed run clears the previous result, so the error is the
    only outcome on the page.
    """
    with st.sidebar:
        strategy = _ui.strategy_picker("Strategy", key="run.strategy")
        st.caption(strategy.description)
        as_json = _ui.json_toggle("run.params")
        kinds = _ui.exit_kinds_picker("run.exit")
        with st.form("run.form", border=False, enter_to_submit=False):
            _ui.follow_source("run.symbol", _default_symbol)
            symbol = st.text_input("Symbol", key="run.symbol", help=_symbol_help())
            params = _ui.params_form(strategy, key="run.params", as_json=as_json)
            st.markdown("**Exit rule**")
            exit_rule = _ui.exit_rule_form(key="run.exit", kinds=kinds)
            with st.expander("Dates, costs and capital"):
                start, end = _date_range()
                cost_inputs = _cost_inputs()
            clicked = st.form_submit_button("Run backtest", type="primary", key="run.go",
                                            width="stretch")

    if clicked:
        st.session_state.pop(LAST, None)  # a failed run must not leave the old result shown
        with _ui.user_errors(), st.spinner(f"Running {strategy.title} on {symbol.strip()}..."):
            if isinstance(params, str):
                params = _ui.parse_params_json(params)
            costs, capital, whole_shares = _costs(*cost_inputs)
            st.session_state[LAST] = _ui.run_and_store(
                symbol.strip(), strategy.name, params, exit_rule, start=start, end=end,
                costs=costs, initial_capital=capital, whole_shares=whole_shares)
    last = st.session_state.get(LAST)
    if last is None:
        if not clicked:
            st.info("Pick a symbol, a strategy, its params and an exit rule in the sidebar, "
                    "then click **Run backtest**. The result is stored and linked to its "
                    "details page.")
        return
    _show(last)


def _default_symbol() -> str:
    """The first symbol of the data source (the box's value when the source changes)."""
    with _ui.user_errors():
        symbols = _ui.provider().symbols()
        return symbols[0] if symbols else ""
    return ""


def _symbol_help() -> str:
    source = _ui.source_label(_ui.settings().data_source)
    return f"A symbol of the data source ({source}), e.g. {_default_symbol() or 'AAPL'}."


def _date_range() -> tuple[dt.date | None, dt.date | None]:
    lowest, highest = dt.date(1900, 1, 1), dt.date(2100, 12, 31)
    start = st.date_input("Start (empty: all history)", value=None, min_value=lowest,
                          max_value=highest, key="run.start")
    end = st.date_input("End (empty: latest bar)", value=None, min_value=lowest,
                        max_value=highest, key="run.end")
    return start, end


def _cost_inputs() -> tuple[float, float, float, float, bool]:
    """Commission %, fixed fee, slippage bps, capital, whole shares as typed (checked later)."""
    commission = st.number_input("Commission (% of traded value)", value=0.0, step=0.01,
                                 format="%.3f", key="run.commission", help="Valid: 0 to 50.")
    fixed = st.number_input("Fixed fee per order", value=0.0, step=0.5, key="run.fixed",
                            help="Valid: 0 or more, in the account currency.")
    slippage = st.number_input("Slippage (bps)", value=0.0, step=1.0, key="run.slippage",
                               help="Valid: 0 to 5000.")
    capital = st.number_input("Initial capital", value=100_000.0, step=10_000.0,
                              key="run.capital", help="Valid: more than 0.")
    whole = st.checkbox("Whole shares only", value=False, key="run.whole")
    return commission, fixed, slippage, capital, whole


def _costs(commission: float, fixed: float, slippage: float, capital: float,
           whole: bool) -> tuple[dict[str, float], float, bool]:
    """The typed costs checked against their ranges, in the engine's units."""
    _ui.check_range("Commission (% of traded value)", commission, 0.0, 50.0)
    _ui.check_range("Fixed fee per order", fixed, 0.0)
    _ui.check_range("Slippage (bps)", slippage, 0.0, 5000.0)
    if capital <= 0:
        _ui.check_range("Initial capital", capital, 0.01)
    costs = {"commission": commission / 100.0, "fixed": fixed, "slippage_bps": slippage}
    return costs, float(capital), bool(whole)


def _show(last: dict) -> None:
    verb = "Replaced the stored result of" if last["replaced"] else "Stored"
    st.success(f"{verb} {last['label']} as backtest `{last['id']}` under {last['scope']}.",
               icon=":material/check:")
    _ui.metric_cards(last["metrics"], columns=5, names=_ui.SUMMARY_METRICS)
    st.page_link("views/details.py", label="Open its details", icon=":material/insights:",
                 query_params={"id": last["id"]})

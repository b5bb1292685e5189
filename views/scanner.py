"""Scanner: today's signals, each next to the stored track record of that exact configuration."""
import pandas as pd
import streamlit as st

from core.scanner import add_backtest_stats, scan
from core.scope import default_scope, scope_label
from views import _scan, _ui

st.title("Scanner")

with st.sidebar:
    st.subheader("Universe")
    universe = _ui.universe_picker(key="scan.universe")
    st.subheader("Strategies")
    picked = _ui.strategy_picker("Strategies", key="scan.strategies", multi=True)
    configs = []
    for strat in picked:
        with st.expander(f"{strat.title} params", expanded=len(picked) == 1):
            configs.append((strat, _ui.params_form(strat, key="scan.params")))
    st.subheader("Exit rule")
    exit_rule = _ui.exit_rule_form(key="scan.exit")
    lookback = int(st.number_input("Signal within the last N bars", min_value=1, max_value=250,
                                   value=1, step=1, key="scan.lookback"))
    st.subheader("Filter by stats")
    min_win = st.slider("Win rate at least (%)", 0, 100, 0, step=5, key="scan.min_win")
    min_trades = int(st.number_input("Trades at least", min_value=0, value=0, step=5,
                                     key="scan.min_trades"))
    only_stats = st.checkbox("Only rows with stored stats", value=False, key="scan.only_stats")

if not picked:
    st.info("Pick at least one strategy in the sidebar to scan for its signals.")
elif universe is not None:
    signals, skipped = [], []
    stats_scope = default_scope(_ui.settings())  # the store handle's default may be stale
    with _ui.user_errors() as failed, st.spinner(f"Scanning {len(universe.symbols):,} symbols..."):
        bars, skipped = _ui.load_universe(universe.symbols, source=universe.source)
        if not bars:
            _scan.raise_nothing_loaded(skipped)
        for strat, params in configs:
            found = scan(bars, strat.name, params, exit_rule, lookback=lookback)
            skipped += found.attrs.get("skipped", [])
            signals.append(add_backtest_stats(found, _ui.store(), universe=universe.symbols,
                                              scope=stats_scope))
    _scan.show_skipped(skipped)
    if not failed:
        table = pd.concat(signals, ignore_index=True) if signals else pd.DataFrame()
        table = _scan.without_demo_staleness(table, universe.source)
        st.caption(f"{len(bars)} of {len(universe.symbols)} symbols from {universe.label} "
                   f"scanned; {len(table)} signal(s) within the last {lookback} bar(s). "
                   f"Stats: {scope_label(stats_scope)}.")
        _scan.show_staleness(bars, universe.source)
        missing = table[table["backtest_id"].isna()] if len(table) else table
        if len(missing) and st.button(f"Backtest these {len(missing)}", key="scan.fill",
                                      icon=":material/play_arrow:",
                                      help="Run and store the backtests of the signals that "
                                           "have no stored stats yet."):
            with _ui.user_errors():
                _scan.backtest_missing(missing, bars)
                st.rerun()
        if _ui.store().count() == 0:
            st.info("The store holds no backtests yet, so the stats columns are empty. "
                    "Click **Backtest these** to fill them, or run backtests and sweeps in the "
                    "Backtest Manager.")
        shown = _scan.filter_by_stats(table, min_win / 100, min_trades, only_stats)
        if shown.empty:
            st.info("No signal matches. Widen the lookback, relax the stat filters or pick "
                    "another strategy or universe.")
        else:
            _ui.table(_scan.signal_view(shown), name="signals", key="scan.table")

_ui.sidebar_status()

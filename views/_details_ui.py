"""Widgets of the Backtest Details page: which backtest, its description, notes and comparison."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from views import _charts, _ui

RECENT = 500  # how many stored backtests the picker offers


def pick_backtest(store) -> str | None:
    """The id from ``?id=`` (deep link), else a picker of stored backtests; None with a hint."""
    wanted = st.query_params.get("id")
    with _ui.user_errors() as failed:
        listing = stored_listing(store)
    if failed:
        return None
    if listing.empty and not wanted:
        st.info("The store holds no backtests yet. Run one in the **Backtest Manager** (or "
                "click **Backtest these** on the Scanner); its details open here.")
        return None
    options = listing["backtest_id"].tolist()
    if wanted and wanted not in options:
        options.insert(0, wanted)
    labels = dict(zip(listing["backtest_id"], listing["label"]))
    with st.sidebar:
        chosen = st.selectbox("Backtest", options, index=options.index(wanted) if wanted else 0,
                              format_func=lambda b: labels.get(b, b), key=f"details.pick.{wanted}")
    if chosen != wanted:
        st.query_params["id"] = chosen
    return chosen


def stored_listing(store) -> pd.DataFrame:
    """The most recently stored backtests, newest first, each with a readable label."""
    from core.exits import exit_label

    rows = store.query(order_by="-created_at", limit=RECENT)
    if rows is None or len(rows) == 0:
        return pd.DataFrame(columns=["backtest_id", "label"])
    labels = [f"{symbol} · {strategy} · {_ui.params_label(_ui.from_json(params))} · "
              f"{exit_label(_ui.from_json(rule))}"
              for symbol, strategy, params, rule in
              rows[["symbol", "strategy", "params", "exit_rule"]].itertuples(index=False)]
    return pd.DataFrame({"backtest_id": rows["backtest_id"].to_numpy(), "label": labels})


def details_title(details: dict) -> str:
    from core.strategies import get_strategy

    return f"{details['symbol']} · {get_strategy(details['strategy']).title}"


def details_caption(details: dict) -> str:
    """Params, exit rule, period, costs and provenance in one line."""
    from core.exits import exit_label

    costs = details.get("costs") or {}
    period = f"{_day(details.get('start'))} → {_day(details.get('end'))}"
    cost_text = (f"commission {costs.get('commission', 0) * 100:g} %, fixed "
                 f"{costs.get('fixed', 0):g}, slippage {costs.get('slippage_bps', 0):g} bps")
    source = details.get("equity_source")
    curve = f"equity {source}" if source else "no equity curve"
    return (f"{_ui.params_label(details['params'])} · exit: {exit_label(details['exit_rule'])} · "
            f"{period} · {cost_text} · engine {details.get('engine_version', '?')} · {curve} · "
            f"id `{details.get('backtest_id')}`")


def _day(value: Any) -> str:
    return "?" if value is None else pd.Timestamp(value).strftime("%Y-%m-%d")


def buy_and_hold(details: dict) -> pd.Series | None:
    """Buy-and-hold equity of the same symbol and period, from the same starting capital."""
    from core.errors import HindsightError

    try:
        bars = _ui.load_bars(details["symbol"], details.get("start"), details.get("end"))
    except HindsightError:
        return None
    capital = float(details.get("initial_capital") or 100_000.0)
    close = bars["close"]
    return close / close.iloc[0] * capital


def show_configuration(details: dict) -> None:
    """Params and exit rule as readable tables, plus the raw JSON for copying."""
    from core.canonical import canonical_json

    left, right = st.columns(2)
    left.markdown("**Params**")
    left.dataframe(pd.DataFrame({"param": list(details["params"]),
                                 "value": [str(v) for v in details["params"].values()]}),
                   hide_index=True, width="stretch")
    right.markdown("**Exit rule**")
    right.dataframe(pd.DataFrame({"rule": [r["type"] for r in details["exit_rule"]],
                                  "settings": [_rule_settings(r) for r in details["exit_rule"]]}),
                    hide_index=True, width="stretch")
    st.code(f"params = {canonical_json(details['params'])}\n"
            f"exit_rule = {canonical_json(details['exit_rule'])}", language="python")


def _rule_settings(rule: dict) -> str:
    text = ", ".join(f"{k}={v}" for k, v in rule.items() if k != "type")
    return text or "—"


def note_form(store, details: dict) -> None:
    """Free-text note and tags on the backtest, stored with it."""
    bid = details["backtest_id"]
    with st.form(f"note.{bid}"):
        note = st.text_area("Note", value=details.get("note") or "", key=f"note.text.{bid}")
        tags = st.text_input("Tags (comma-separated)", value=", ".join(details.get("tags") or []),
                             key=f"note.tags.{bid}")
        saved = st.form_submit_button("Save note and tags")
    if saved:
        with _ui.user_errors() as failed:
            store.set_note(bid, note, [t.strip() for t in tags.split(",") if t.strip()])
        if not failed:
            st.success("Saved the note and tags.", icon=":material/check:")


def compare_panel(store, details: dict) -> None:
    """Overlay the equity curves of other stored backtests and show metrics side by side."""
    with _ui.user_errors() as failed:
        listing = stored_listing(store)
    if failed:
        return
    others = [b for b in listing["backtest_id"] if b != details["backtest_id"]]
    if not others:
        st.info("Store more backtests to compare them with this one.")
        return
    labels = dict(zip(listing["backtest_id"], listing["label"]))
    chosen = st.multiselect("Compare with", others, format_func=lambda b: labels.get(b, b),
                            key=f"compare.{details['backtest_id']}", max_selections=8)
    compare(store, [details["backtest_id"], *chosen], labels)


def compare(store, ids: list[str], labels: dict[str, str]) -> None:
    """Equity overlay and a metrics table for the given backtests (the first is the base)."""
    from core.types import METRIC_NAMES

    curves, metrics = [], []
    with _ui.user_errors():
        for bid in ids:
            item = _ui.load_details(store, bid)
            name = f"{labels.get(bid, bid)} [{bid[:6]}]"
            metrics.append({"backtest": name, **(item.get("metrics") or {})})
            if item.get("equity") is not None:
                curves.append(_charts.series_frame(item["equity"], name))
    if len(ids) > 1 and curves:
        st.altair_chart(_charts.overlay_chart(pd.concat(curves, ignore_index=True),
                                              title="Equity compared"), width="stretch")
    table = pd.DataFrame(metrics, columns=["backtest", *METRIC_NAMES])
    _ui.table(table, name="compare", key=f"compare.table.{ids[0]}")

"""Widgets of the Backtest Details page: which backtest, its description, notes and comparison."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from views import _charts, _ui

RECENT = 200  # how many stored backtests the sidebar picker offers (newest first)


def pick_backtest(store, listing: pd.DataFrame | None) -> str | None:
    """The id from ``?id=`` (deep link), else a picker of stored backtests; None with a hint."""
    wanted = st.query_params.get("id")
    if listing is None:
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
                              format_func=lambda b: f"#{b} · {labels.get(b, '')}".rstrip(" ·"),
                              key=f"details.pick.{wanted}",
                              help="The newest stored backtests, led by their id (a narrow box "
                                   "cuts the label, never the id). Compare searches the store.")
    if chosen != wanted:
        st.query_params["id"] = chosen
    return chosen


def stored_listing(store, limit: int = RECENT) -> pd.DataFrame:
    """The newest stored backtests (columns backtest_id, label) for the sidebar picker."""
    return _ui.search_backtests(store, "", limit=limit)


def details_title(details: dict) -> str:
    from core.errors import UnknownStrategyError
    from core.strategies import get_strategy

    try:
        title = get_strategy(details["strategy"]).title
    except UnknownStrategyError:  # no longer registered: named as stored
        title = details["strategy"]
    side = " · short" if details.get("direction") == "short" else ""
    return f"{details['symbol']} · {title}{side}"


def details_caption(details: dict) -> str:
    """Params, exit rule, period, costs and provenance in one line."""
    from core.exits import exit_label

    costs = details.get("costs") or {}
    period = _period(details.get("start"), details.get("end"))
    cost_text = (f"commission {costs.get('commission', 0) * 100:g} %, fixed "
                 f"{costs.get('fixed', 0):g}, slippage {costs.get('slippage_bps', 0):g} bps")
    source = details.get("equity_source")
    curve = f"equity {source}" if source else "no equity curve"
    return (f"{_ui.params_label(details['params'])} · exit: {exit_label(details['exit_rule'])} · "
            f"scope: {details.get('scope', '?')} · {period} · {cost_text} · "
            f"engine {details.get('engine_version', '?')} · {curve} · "
            f"id `{details.get('backtest_id')}`")


def definition_warning(details: dict) -> None:
    """A warning when the backtest ran another definition than the strategy's current one."""
    from core.strategies import current_definition

    name = details["strategy"]
    current = current_definition(name)
    if current is None:
        st.warning(f"The strategy '{name}' is no longer registered; this backtest stays "
                   "browsable as it was stored.", icon=":material/warning:")
        return
    if (details.get("definition") or "") != current:
        st.warning(f"This backtest ran an older definition of '{name}': its rule file was "
                   "edited since. Run it again for the current definition's result.",
                   icon=":material/history:")


def _period(start: Any, end: Any) -> str:
    """``start → end`` as dates, with the time of day when either has one (intraday bars)."""
    stamps = [None if value is None else pd.Timestamp(value) for value in (start, end)]
    intraday = any(s is not None and s != s.normalize() for s in stamps)
    pattern = "%Y-%m-%d %H:%M" if intraday else "%Y-%m-%d"
    return " → ".join("?" if s is None else s.strftime(pattern) for s in stamps)


def annualisation_caption(details: dict) -> str:
    """How the ratios were annualised, e.g. "weekly bars, annualised ×52" (rows stored before
    the bars' clock existed: daily bars assumed, as they were)."""
    from core.frequency import annualisation_text

    return annualisation_text(details.get("bar_seconds"), details.get("periods_per_year"))


def benchmark(details: dict, bars: pd.DataFrame | None) -> pd.Series | None:
    """Buy-and-hold equity over the backtest's dates, grown from the same starting capital."""
    equity = details.get("equity")
    if bars is None or equity is None or bars.empty:
        return None
    capital = float(details.get("initial_capital") or 100_000.0)
    return _charts.benchmark_curve(bars["close"], equity, capital)


def metric_grid(metrics: dict, bars: pd.DataFrame | None, columns: int = 5) -> None:
    """The metric cards plus a buy-and-hold card (its return, and how the strategy compares)."""
    from core.details import buy_and_hold_return

    cells = st.columns(columns)
    for i, name in enumerate(_ui.CARD_METRICS):
        cells[i % columns].metric(_ui.METRIC_TITLES.get(name, name),
                                  _ui.format_metric(name, metrics.get(name)), border=True)
    held = buy_and_hold_return(bars["close"]) if bars is not None else float("nan")
    strategy = metrics.get("total_return")
    delta = None
    if held == held and strategy is not None and strategy == strategy:
        delta = f"{(float(strategy) - held) * 100:+.1f} pp"
    cells[len(_ui.CARD_METRICS) % columns].metric(
        "Buy and hold", _ui.format_metric("total_return", held), delta=delta, border=True,
        help="Buying at the first close of the period and holding to the last, without "
             "costs. Below: the strategy's total return minus this, in percentage points.")


def equity_section(details: dict, bars: pd.DataFrame | None) -> None:
    """Equity vs buy-and-hold (log scale on demand) and the drawdown, or why they are missing."""
    equity, trades = details.get("equity"), details.get("trades")
    if equity is None or len(equity) == 0:
        st.warning(f"No equity curve: {details.get('equity_reason') or 'none stored'}.")
        return
    held = benchmark(details, bars)
    if trades is None or len(trades) == 0:
        st.info(f"No trades: the strategy never entered, so its equity stays flat at "
                f"{float(equity.iloc[0]):,.0f}. Buy and hold is drawn from the same capital.")
    log = st.toggle("Log scale", value=_charts.suggest_log_scale(equity, held),
                    key=f"details.log.{details['backtest_id']}",
                    help="Equal percentage moves look equal; on by default when the curves "
                         "span more than 10x.")
    underwater = float(_charts.drawdown_series(equity).min()) < 0
    st.altair_chart(_charts.equity_panel(equity, held, log=log, drawdown=underwater),
                    width="stretch")
    if not underwater:
        st.info("No drawdown: the equity never fell below a previous high.")


def price_section(details: dict, bars: pd.DataFrame | None) -> None:
    """Close price with the trades' entries and exits and the strategy's indicators (oscillators
    in panes below), or a message when there are no bars."""
    if bars is None:
        return  # the load error is shown already
    if bars.empty:
        st.info("No price data to draw for this period.")
        return
    indicators = shown_indicators(details, bars)
    st.altair_chart(_charts.price_panel(bars, details.get("trades"), indicators),
                    width="stretch")


def shown_indicators(details: dict, bars: pd.DataFrame) -> list:
    """The strategy's indicators over ``bars`` unless the user hides them (or why there are none)."""
    from core.details import strategy_indicators

    series, reason = strategy_indicators(details, bars)
    if reason:
        st.caption(f"Indicators not drawn: {reason}")
    if not series:
        return []
    shown = st.toggle("Indicators", value=True, key=f"details.indicators.{details['backtest_id']}",
                      help="The strategy's indicators over the price; oscillators in panes "
                           "below with the levels its rules compare them with.")
    return series if shown else []


def returns_section(details: dict) -> None:
    """Monthly returns heatmap and trade-return histogram side by side (or what is missing)."""
    equity, trades = details.get("equity"), details.get("trades")
    left, right = st.columns(2)
    if equity is not None and len(equity) > 1:
        left.altair_chart(_charts.monthly_heatmap(equity), width="stretch")
    else:
        left.info("No equity curve to break down by month.")
    if trades is not None and len(trades):
        right.altair_chart(_charts.trade_histogram(trades), width="stretch")
    else:
        right.info("No trades, so no trade returns to chart.")


def trade_log(trades: pd.DataFrame | None, bars: pd.DataFrame | None, name: str) -> None:
    """Summary by exit reason, then the trade log with prices in the instrument's decimals."""
    from core.details import exit_reason_summary

    if trades is None or trades.empty:
        st.info("This backtest made no trades.")
        return
    st.table(summary_view(exit_reason_summary(trades)))
    st.dataframe(trades, hide_index=True, width="stretch", column_config=trade_columns(trades, bars),
                 key="details.trades")
    _ui.download_csv(trades, name, key="details.trades.csv")


def summary_view(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary by exit reason as display text (a small static table)."""
    return pd.DataFrame({
        "exit reason": summary["exit_reason"],
        "trades": summary["trades"].map("{:,}".format),
        "win rate": summary["win_rate"].map("{:.1%}".format),
        "avg return": summary["avg_return"].map("{:+.2%}".format),
        "total P&L": summary["total_pnl"].map("{:+,.2f}".format),
        "avg bars held": summary["avg_bars_held"].map("{:.1f}".format),
    }).set_index("exit reason")


def trade_columns(trades: pd.DataFrame, bars: pd.DataFrame | None) -> dict:
    """Column formats of the trade log: prices in the instrument's decimals, times by frequency."""
    has_bars = bars is not None and len(bars) > 0
    prices = bars["close"].to_numpy() if has_bars else trades["entry_price"].to_numpy()
    stamps = bars.index if has_bars else pd.DatetimeIndex(trades["entry_time"])
    price = f"%.{_charts.price_decimals(prices)}f"
    when = "YYYY-MM-DD HH:mm" if _charts.is_intraday(stamps) else "YYYY-MM-DD"
    config = _ui.column_config(trades)
    for column in ("entry_price", "exit_price"):
        config[column] = st.column_config.NumberColumn(column.replace("_", " "), format=price)
    for column in ("entry_time", "exit_time"):
        config[column] = st.column_config.DatetimeColumn(column.replace("_", " "), format=when)
    return config


def show_configuration(details: dict) -> None:
    """Params and exit rule as readable tables, plus the raw JSON for copying."""
    from core.canonical import canonical_json

    left, right = st.columns(2)
    left.markdown(markdown_table(["param", "value"],
                                 [(k, v) for k, v in details["params"].items()]))
    right.markdown(markdown_table(["exit rule", "settings"],
                                  [(r["type"], _rule_settings(r)) for r in details["exit_rule"]]))
    st.markdown(f"params `{canonical_json(details['params'])}`  \n"
                f"exit_rule `{canonical_json(details['exit_rule'])}`")


def markdown_table(header: list[str], rows: list[tuple]) -> str:
    """A small GitHub-flavoured Markdown table (lighter to draw than an interactive grid)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


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
    """Search the whole store, overlay the chosen backtests' equity and list their metrics."""
    bid = details["backtest_id"]
    picked = _ui.backtest_search(store, key=f"compare.{bid}", exclude=[bid])
    if picked:
        compare(store, [bid, *picked], {bid: details_label(details), **picked}, base=details)
    else:
        st.caption("Pick backtests to overlay their equity curves on this one's.")


def details_label(details: dict) -> str:
    """``SYMBOL · strategy · params · exit rule`` of one backtest's details."""
    from core.exits import exit_label

    return (f"{details['symbol']} · {details['strategy']} · {_ui.params_label(details['params'])}"
            f" · {exit_label(details['exit_rule'])}")


def compare_names(ids: list[str], labels: dict[str, str]) -> list[str]:
    """Legend names: the id first (so names differ at a glance), then the readable label."""
    return _charts.unique_labels([f"#{bid} · {labels.get(bid, bid)}" for bid in ids])


def compare(store, ids: list[str], labels: dict[str, str], base: dict | None = None) -> None:
    """Equity overlay and a metrics table for the given backtests (the first is the base).

    Every curve is rescaled to start from the base's capital, so their growth compares.
    """
    from core.types import METRIC_NAMES

    curves, metrics = [], []
    start = None
    with _ui.user_errors():
        for bid, name in zip(ids, compare_names(ids, labels)):
            item = base if base is not None and bid == base["backtest_id"] else \
                _ui.load_details(store, bid)
            metrics.append({"backtest": name, **(item.get("metrics") or {})})
            equity = item.get("equity")
            if equity is not None and len(equity) and float(equity.iloc[0]) != 0:
                start = float(equity.iloc[0]) if start is None else start
                curves.append(_charts.series_frame(equity / float(equity.iloc[0]) * start, name))
    if len(ids) > 1 and curves:
        st.altair_chart(_charts.overlay_chart(pd.concat(curves, ignore_index=True),
                                              title="Equity compared", legend="bottom"),
                    width="stretch")
    table = pd.DataFrame(metrics, columns=["backtest", *METRIC_NAMES])
    _ui.table(table, name="compare", key=f"compare.table.{ids[0]}")

"""Manager mode "Walk-forward": run one (rolling or anchored) with progress, list the stored
ones, and show one: its windows, the stitched out-of-sample equity against buy and hold and
the walk-forward efficiency."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from views import _charts, _sweep, _ui

SELECTED = "wf.selected"  # widget key: the walk-forward shown
SCHEMES = {"rolling": "Rolling: the in-sample window moves",
           "anchored": "Anchored: the in-sample window starts at the first bar"}
OOS_LABEL = "walk-forward (out of sample)"
#: Display formats of the tables' number columns (the optimised metric's are added).
FORMATS = {"oos_return": "percent", "is_trades": "%d", "oos_trades": "%d",
           "oos_sharpe_ratio": "%.2f", "oos_total_return": "percent", "wf_efficiency": "%.2f"}
DATE_COLUMNS = ("is_start", "is_end", "oos_start", "oos_end")


def panel() -> None:
    """Sidebar form -> walk_forward with a per-window progress bar -> the stored walk-forwards
    and the chosen one's read-outs."""
    from core.types import METRIC_NAMES

    with st.sidebar:
        strategy = _ui.strategy_picker("Strategy", key="wf.strategy")
        _ui.follow_source("wf.symbol", lambda: _ui.first_symbols(1))
        symbol = st.text_input("Symbol", key="wf.symbol",
                               help=f"A symbol of {_ui.source_label(_ui.settings().data_source)}.")
        st.markdown("**Param ranges**")
        ranges = {p.name: _sweep.range_input(p, key=f"wf.{strategy.name}")
                  for p in strategy.params}
        st.markdown("**Exit rules** (each value is one rule)")
        exits = _sweep.exit_rule_grid(key="wf.exits")
        st.markdown("**Windows**")
        scheme = st.radio("Scheme", list(SCHEMES), format_func=SCHEMES.get, key="wf.scheme")
        cols = st.columns(2)
        in_sample = cols[0].number_input("In-sample bars", value=252, step=21, key="wf.is",
                                         help="Bars each optimisation sees; 1 or more.")
        out_of_sample = cols[1].number_input("Out-of-sample bars", value=63, step=21,
                                             key="wf.oos",
                                             help="Bars each winner is tested on; 1 or more.")
        metric = st.selectbox("Winner by", METRIC_NAMES, key="wf.metric",
                              index=METRIC_NAMES.index("sharpe_ratio"))
        min_trades = st.number_input("Min in-sample trades", value=1, step=1, key="wf.min",
                                     help="A winner needs at least this many trades.")
        clicked = st.button("Run walk-forward", type="primary", key="wf.go", width="stretch")

    if clicked:
        run(symbol, strategy, ranges, exits, in_sample=int(in_sample), metric=metric,
            out_of_sample=int(out_of_sample), anchored=scheme == "anchored",
            min_trades=int(min_trades))
    parent_id = past_walk_forwards()
    if parent_id is not None:
        show(parent_id)


def run(symbol: str, strategy, ranges: dict, exits: tuple[bool, dict], **settings) -> None:
    """Check the inputs, load the bars, run and store the walk-forward with a progress bar
    (one step per window); the stored one is then shown."""
    from core.data import validate_symbol
    from core.walkforward import walk_forward

    bar = st.progress(0.0, text="Loading the bars...")

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Window {done} of {total}")

    with _ui.user_errors():
        name = validate_symbol(symbol.strip())
        _sweep.check_ranges(strategy, ranges)
        rules = _sweep.exit_rules_from(*exits)
        report = walk_forward(_ui.load_bars(name), strategy.name, ranges, rules,
                              store=_ui.store(), symbol=name, progress=progress, **settings)
        if report.stored_ids:
            st.session_state[SELECTED] = report.parent_id
        else:
            st.warning("No window had an in-sample winner with enough trades, so nothing was "
                       "stored. Lower the min trades or widen the param ranges.",
                       icon=":material/warning:")
    bar.empty()


def past_walk_forwards() -> str | None:
    """The stored walk-forwards as a table and a picker; returns the picked id (None: none)."""
    from core.walkforward import list_walk_forwards

    with _ui.user_errors() as failed:
        table = list_walk_forwards(_ui.store())
    if failed:
        return None
    if table.empty:
        st.info("No walk-forward stored yet. Pick a symbol, a strategy, its param ranges and "
                "the windows in the sidebar, then click **Run walk-forward**.")
        return None
    st.subheader("Stored walk-forwards")
    show_table(table, FORMATS, name="walk_forwards", key="wf.list")
    labels = {row.parent_id: f"{row.parent_id} · {row.symbol} · {row.strategy} · "
                             f"{'imported' if pd.isna(row.scheme) else row.scheme}"
              for row in table.itertuples()}
    if st.session_state.get(SELECTED) not in labels:
        st.session_state[SELECTED] = table["parent_id"].iloc[0]
    return st.selectbox("Show walk-forward", list(labels), format_func=labels.get, key=SELECTED)


def show(parent_id: str) -> None:
    """One stored walk-forward: efficiency and return cards, the OOS equity chart, the windows."""
    from core.walkforward import load_walk_forward

    with _ui.user_errors() as failed:
        report = load_walk_forward(_ui.store(), parent_id)
    if failed:
        return
    st.subheader(f"{report.symbol} · {report.strategy} · {parent_id}")
    st.caption(spec_text(report))
    cards(report)
    oos_chart(report)
    show_table(window_table(report), window_formats(report), name=f"walk_forward_{parent_id}",
               key="wf.windows")


def show_table(table: pd.DataFrame, formats: dict[str, str], name: str, key: str) -> None:
    """A table with its number formats (dates without a time on daily data) and a CSV download."""
    config = {**_ui.column_config(table),
              **{column: st.column_config.NumberColumn(column.replace("_", " "), format=fmt)
                 for column, fmt in formats.items() if column in table}}
    for column in DATE_COLUMNS:
        if column in table and not _charts.is_intraday(pd.DatetimeIndex(table[column])):
            config[column] = st.column_config.DatetimeColumn(column.replace("_", " "),
                                                             format="YYYY-MM-DD")
    st.dataframe(table, hide_index=True, column_config=config, key=key, width="stretch")
    _ui.download_csv(table.drop(columns=["details"], errors="ignore"), name, key=f"{key}.csv")


def spec_text(report) -> str:
    """What the walk-forward ran with, in one line (or that it was not recorded)."""
    spec = report.spec
    if not spec:
        return "Imported from a walkforward.zarr: its scheme, windows and metric were not recorded."
    return (f"{spec['scheme'].capitalize()} windows: {spec['in_sample']} bars in sample, "
            f"{spec['out_of_sample']} out of sample, step {spec['step']}; winner by "
            f"{report.metric} with at least {spec['min_trades']} trade(s).")


def cards(report) -> None:
    """Walk-forward efficiency, compounded OOS return, windows with a winner, mean metric."""
    summary = report.summary()
    cols = st.columns(4)
    cols[0].metric("Walk-forward efficiency", _ui.format_metric("ratio", summary["wf_efficiency"]),
                   border=True,
                   help="Mean out-of-sample annualised return over mean in-sample annualised "
                        "return of the windows with a winner (1: the in-sample return held up "
                        "out of sample). Empty when the in-sample mean is not above 0.")
    cols[1].metric("Out-of-sample return",
                   _ui.format_metric("total_return", summary["oos_total_return"]), border=True,
                   help="The out-of-sample windows compounded (a window in cash adds 0).")
    cols[2].metric("Windows with a winner",
                   f"{summary['windows_with_winner']} of {summary['windows']}", border=True)
    if report.metric:
        metric = report.metric
        cols[3].metric(f"Mean {_ui.METRIC_TITLES.get(metric, metric)}, IS → OOS",
                       f"{_ui.format_metric(metric, summary[f'is_{metric}_mean'])} → "
                       f"{_ui.format_metric(metric, summary[f'oos_{metric}_mean'])}",
                       border=True)


def oos_chart(report) -> None:
    """The stitched OOS equity against buy and hold of the symbol over the same dates."""
    from core.errors import HindsightError

    equity = report.oos_equity
    benchmark = None
    try:
        close = _ui.load_bars(report.symbol)["close"]
        benchmark = _charts.benchmark_curve(close, equity, float(equity.iloc[0]))
    except HindsightError as exc:
        st.caption(f"No buy-and-hold line: {exc}")
    st.altair_chart(_charts.equity_chart(equity, benchmark, label=OOS_LABEL), width="stretch")


def window_table(report) -> pd.DataFrame:
    """One row per window: IS period, winner and its metric, OOS period and results, a link to
    the OOS backtest's details."""
    from core.exits import exit_label

    w = report.windows
    winners = ["in cash (no winner)" if pd.isna(p) else
               f"{_ui.params_label(json.loads(p))} · {exit_label(json.loads(e))}"
               for p, e in zip(w["params_json"], w["exit_json"])]
    columns = {"window": w["window"], "is_start": w["is_start"], "is_end": w["is_end"],
               "is_winner": winners}
    if report.metric:
        columns[f"is_{report.metric}"] = w[f"is_{report.metric}"]
    columns.update({name: w[name] for name in ("is_trades", "oos_start", "oos_end", "oos_return",
                                               "oos_sharpe_ratio", "oos_trades", "is_id",
                                               "oos_id")})
    return _ui.with_details_links(pd.DataFrame(columns), id_column="oos_id")


def window_formats(report) -> dict[str, str]:
    """The window table's formats, with the optimised metric's format for its IS column."""
    if not report.metric:
        return FORMATS
    return {**FORMATS, f"is_{report.metric}": _ui.METRIC_FORMATS.get(report.metric, "%.2f")}

"""Manager mode "Run a sweep": grid form, size check, progress, then heatmap and top configs."""
from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from views import _charts, _ui

REPORT = "sweep.report"  # session key: summary and cells of the last sweep run
CELLS = "sweep.cells"  # widget key: which stored cells the read-outs show
CELL_SETS = {"last": "The sweep just run", "source": "Every stored cell in {default}",
             "all": "Every stored cell of this strategy, in every scope"}


def panel() -> None:
    """Sidebar grid form -> count (cap) -> run_sweep with progress -> read-outs of stored cells."""
    from core import sweep

    with st.sidebar:
        strategy = _ui.strategy_picker("Strategy", key="sweep.strategy")
        st.markdown("**Param ranges**")
        ranges = {p.name: range_input(p, key=f"sweep.{strategy.name}") for p in strategy.params}
        st.markdown("**Symbols**")
        every, typed = symbols_picker()
        st.markdown("**Exit rules** (each value is one rule)")
        use_signal, exit_values = exit_rule_grid(key="sweep.exits")

    cells = None
    with _ui.user_errors():
        symbols = tuple(_ui.source_symbols()) if every else _ui.parse_symbols(typed)
        check_ranges(strategy, ranges)
        exit_rules = exit_rules_from(use_signal, exit_values)
        cells = sweep.count_grid(ranges, symbols, exit_rules)
    if cells is not None:
        cap = _ui.settings().max_grid_cells
        st.metric("Grid size", f"{sweep.grid_size_text(cells)} cells",
                  help=f"Cap: {cap:,} cells (max_grid_cells).",
                  border=True, width="content")
        with _ui.user_errors() as too_big:
            sweep.check_grid_size(cells, cap)
        if not too_big and st.button(f"Run sweep of {cells:,} backtests", type="primary",
                                     key="sweep.go"):
            run(strategy, ranges, symbols, exit_rules)
    report = st.session_state.get(REPORT)
    if report:
        show_report(report)
    readouts(strategy)


def symbols_picker() -> tuple[bool, str]:
    """Symbols widgets: every symbol of the data source, or a typed list (starting on its first
    three symbols); returns (every, typed text), checked by the caller so errors show in the
    main area."""
    label = _ui.source_label(_ui.settings().data_source)
    every = st.checkbox(f"All symbols of {label}", value=False, key="sweep.all_symbols")
    if every:
        return True, ""
    _ui.follow_source("sweep.symbols", lambda: _ui.first_symbols(3))
    return False, st.text_area("Symbols", key="sweep.symbols", label_visibility="collapsed",
                               help=f"Comma- or space-separated symbols of {label}.")


def range_input(param, key: str):
    """start/stop/step inputs for a numeric param (a fixed value when start == stop).

    The boxes take any number (a bounded box would keep an out-of-range value unapplied);
    :func:`check_ranges` names a value outside the param's range before anything runs.
    """
    if param.kind_name == "choice":
        return st.multiselect(param.name, list(param.choices), default=[param.default],
                              key=f"{key}.{param.name}")
    cols = st.columns(3)
    is_int = param.kind_name == "int"
    cast = int if is_int else float
    step_default = cast(param.step or (1 if is_int else 0.1))
    fmt = None if is_int else "%g"
    help_text = _ui.param_help(param)
    start = cols[0].number_input(f"{param.name} from", value=cast(param.default),
                                 step=step_default, key=f"{key}.{param.name}.start", format=fmt,
                                 help=help_text)
    stop = cols[1].number_input("to", value=cast(param.default), step=step_default,
                                key=f"{key}.{param.name}.stop", format=fmt, help=help_text)
    step = cols[2].number_input("step", value=step_default, step=step_default,
                                key=f"{key}.{param.name}.step", format=fmt,
                                help="Distance between grid values; more than 0.")
    if start == stop:
        return start
    return {"start": start, "stop": stop, "step": step}


def check_ranges(strategy, ranges: dict) -> None:
    """Each range's ends checked against the param's schema (``ParamError`` names the fix)."""
    for param in strategy.params:
        spec = ranges.get(param.name)
        if param.kind_name == "choice":
            if isinstance(spec, list) and not spec:
                from core.errors import ParamError

                raise ParamError(f"{strategy.name}: pick at least one value of {param.name}.")
            continue
        ends = (spec["start"], spec["stop"]) if isinstance(spec, dict) else (spec,)
        for value in ends:
            param.coerce(value, strategy.name)


def exit_rule_grid(key: str) -> tuple[bool, dict[str, str]]:
    """Exit-rule widgets: the strategy's own exit alone, and typed values per exit type."""
    from core.exits import EXIT_RULE_TYPES

    use_signal = st.checkbox("Strategy exit signal only", value=True, key=f"{key}.signal")
    values = {}
    for kind, params in EXIT_RULE_TYPES.items():
        if not params:
            continue
        first = params[0]
        values[kind] = st.text_input(
            f"{kind.replace('_', ' ')}: {first.name} values", value="", key=f"{key}.{kind}",
            placeholder=f"e.g. {first.default}",
            help=f"{first.help}. Comma-separated; each value adds a rule (signal exit + this).")
    return use_signal, values


def exit_rules_from(use_signal: bool, values: dict[str, str]) -> list:
    """The sweep's exit rules: None (signal only) and one rule per typed value of each type."""
    from core.exits import EXIT_RULE_TYPES

    rules: list = [None] if use_signal else []
    for kind, text in values.items():
        name = EXIT_RULE_TYPES[kind][0].name
        rules += [{"type": kind, name: value} for value in _numbers(text, f"{kind} {name}")]
    return rules


def _numbers(text: str, what: str) -> list[float]:
    from core.errors import ParamError

    values = []
    for part in text.replace(";", ",").split(","):
        if not part.strip():
            continue
        try:
            values.append(float(part))
        except ValueError:
            raise ParamError(f"{what}: {part.strip()!r} is not a number. Type numbers separated "
                             "by commas, e.g. 0.03, 0.05.") from None
    return values


def run(strategy, ranges: dict, symbols, exit_rules: list) -> None:
    """Run and store the sweep with a progress bar; remembers its summary and cells."""
    from core.sweep import run_sweep

    bar = st.progress(0.0, text="Loading the bars and counting what is stored already...")

    def progress(done: int, total: int) -> None:
        bar.progress(min(1.0, done / total) if total else 1.0,
                     text=f"{done:,} of {total:,} backtests")

    st.session_state.pop(REPORT, None)  # a failed sweep must not leave the last one's summary
    with _ui.user_errors():
        report = run_sweep(strategy.name, ranges, list(symbols), exit_rules, _ui.store(),
                           _ui.provider(), progress=progress, skip_bad_data=True)
        summary = report.summary()
        summary["cells"] = sweep_cells(strategy, ranges, report.symbols, exit_rules)
        summary["skipped_symbols"] = list(report.skipped)
        st.session_state[REPORT] = summary
        st.session_state[CELLS] = "last"  # the read-outs below show this sweep
    bar.empty()


def sweep_cells(strategy, ranges: dict, symbols, exit_rules: list) -> dict:
    """The exact cells of a sweep: its strategy, store scope (the source's full history),
    symbols, params hashes and exit-rule hashes."""
    from core.canonical import stable_hash
    from core.exits import canonical_exit_rule
    from core.scope import default_scope
    from core.sweep import expand_grid

    return {"strategy": strategy.name, "scope": default_scope(_ui.settings()),
            "symbols": list(symbols),
            "params_hash": [stable_hash(p) for p in expand_grid(strategy.name, ranges)],
            "exit_hash": [stable_hash(canonical_exit_rule(r)) for r in exit_rules]}


def show_report(report: dict) -> None:
    """What the last sweep did (and which symbols it had to leave out)."""
    st.success(f"Sweep done: {report['n_computed']:,} computed, {report['n_skipped']:,} "
               f"already stored and skipped, {report['n_stored']:,} stored in "
               f"{report['elapsed_s']:.1f} s ({report['backend']}).", icon=":material/check:")
    skipped = report.get("skipped_symbols") or []
    if skipped:
        st.warning(f"Left out {len(skipped)} symbol(s) whose data could not be loaded: "
                   + "; ".join(f"{s['symbol']}: {s['error']}" for s in skipped[:5])
                   + (" …" if len(skipped) > 5 else ""), icon=":material/warning:")


def readouts(strategy) -> None:
    """Heatmap, stability and top configurations of the chosen stored cells of this strategy."""
    from core import sweep

    scope, filters = cell_filters(strategy)
    with _ui.user_errors() as failed:
        cells = sweep.sweep_frame(_ui.store(), strategy.name, filters, scope=scope)
    if failed:
        return
    if cells.empty:
        st.info(f"No stored backtests of {strategy.title} among these cells yet. Set ranges in "
                "the sidebar and run a sweep; its heatmap and top configurations appear here.")
        return
    st.subheader(f"{cell_set_label(st.session_state[CELLS])}: {len(cells):,} cells of "
                 f"{strategy.title}")
    mixed = sorted(cells["scope"].astype(str).unique())
    if len(mixed) > 1:
        st.caption(f"These cells mix {len(mixed)} scopes ({'; '.join(mixed[:4])}"
                   f"{' …' if len(mixed) > 4 else ''}): a configuration may count once per "
                   "scope. Pick another set of cells to compare like with like.")
    heatmap(cells, strategy)
    top = top_configurations(cells, strategy)
    if top is not None and len(top):
        universe(cells, strategy, top)


def cell_filters(strategy) -> tuple[dict | str, dict]:
    """The store scope and cell filters the read-outs use; defaults to the sweep just run."""
    from core.scope import ALL_SCOPES, default_scope

    report = st.session_state.get(REPORT) or {}
    last = report.get("cells") or {}
    options = list(CELL_SETS) if last.get("strategy") == strategy.name else ["source", "all"]
    if st.session_state.get(CELLS) not in options:
        st.session_state[CELLS] = options[0]
    choice = st.radio("Read-outs of", options, format_func=cell_set_label, key=CELLS,
                      horizontal=True)
    if choice == "last":
        return last["scope"], {"symbol": last["symbols"], "params_hash": last["params_hash"],
                               "exit_hash": last["exit_hash"]}
    if choice == "source":
        return default_scope(_ui.settings()), {}
    return ALL_SCOPES, {}


def cell_set_label(choice: str) -> str:
    """How a set of cells is named ("source": the configured default scope, by its label)."""
    from core.scope import default_scope, scope_label

    return CELL_SETS[choice].format(default=scope_label(default_scope(_ui.settings())))


def heatmap(cells: pd.DataFrame, strategy) -> None:
    """Any metric over any two params, sliced by symbol and exit rule (median otherwise)."""
    from core import sweep
    from core.exits import exit_label
    from core.strategies import param_columns, validate_params
    from core.types import METRIC_NAMES

    columns = param_columns(strategy, validate_params(strategy, {}))  # numeric params only
    names = [p.name for p in strategy.params if f"{strategy.prefix}_{p.name}" in columns]
    if len(names) < 2:
        st.info("The heatmap needs a strategy with at least two numeric params.")
        return
    cols = st.columns(6)
    metric = cols[0].selectbox("Metric", METRIC_NAMES, index=METRIC_NAMES.index("sharpe_ratio"),
                               key="sweep.hm.metric")
    x = cols[1].selectbox("x param", names, index=0, key="sweep.hm.x")
    y = cols[2].selectbox("y param", names, index=1, key="sweep.hm.y")
    symbol = cols[3].selectbox("Symbol", ["all (median)", *sorted(cells["symbol"].unique())],
                               key="sweep.hm.symbol")
    exits = dict(zip(cells["exit_hash"], cells["exit_json"]))
    exit_hash = cols[4].selectbox("Exit rule", ["all (median)", *exits], key="sweep.hm.exit",
                                  format_func=lambda h: h if h not in exits
                                  else exit_label(json.loads(exits[h])))
    min_trades = int(cols[5].number_input("Min trades", min_value=0, value=1, key="sweep.hm.min"))
    filters = {}
    if symbol != "all (median)":
        filters["symbol"] = symbol
    if exit_hash != "all (median)":
        filters["exit_hash"] = exit_hash
    if x == y:
        st.warning("Pick two different params for the heatmap axes.")
        return
    with _ui.user_errors():
        pivot = sweep.heatmap_data(cells, metric, x, y, filters, strategy=strategy.name,
                                   min_trades=min_trades)
        long = pivot.stack(future_stack=True).rename(metric).reset_index()
        long.columns = [y, x, metric]
        st.altair_chart(_charts.param_heatmap(long, x, y, metric), width="stretch",
                        height=_charts.heatmap_height(long, y))
        _ui.download_csv(long, f"heatmap_{strategy.name}_{metric}", key="sweep.hm.csv")
        score = sweep.stability_score(cells, metric, filters, strategy=strategy.name,
                                      min_trades=min_trades)
        best = json.loads(score["best_params_json"])  # every param as stored (choices by name)
        rule = exit_label(json.loads(score["exit_json"]))
        st.caption(f"Best cell {_ui.params_label(best)} · {rule}: {metric} "
                   f"{score['best']:.3f}; its "
                   f"{score['n_neighbours']} neighbours average {score['neighbour_mean']:.3f} "
                   f"(stability score {score['score']:.2f}: 1 = plateau, 0 = isolated spike).")


def top_configurations(cells: pd.DataFrame, strategy) -> pd.DataFrame | None:
    """The best configurations by the heatmap's metric (median across symbols), as a table."""
    from core import sweep
    from core.exits import exit_label

    metric = st.session_state.get("sweep.hm.metric", "sharpe_ratio")
    min_trades = int(st.session_state.get("sweep.hm.min", 1))
    st.markdown(f"**Top configurations by median {metric}**")
    with _ui.user_errors() as failed:
        top = sweep.top_configurations(cells, metric, n=15, strategy=strategy.name,
                                       min_trades=max(1, min_trades))
    if failed:
        return None
    if top.empty:
        st.info("No configuration has enough trades; lower Min trades.")
        return top
    view = top.assign(params=[_ui.params_label(json.loads(t)) for t in top["params_json"]],
                      exit_rule=[exit_label(json.loads(t)) for t in top["exit_json"]])
    shown = ["params", "exit_rule", metric, f"{metric}_mean", "n_symbols", "trades",
             "pooled_win_rate", "share_positive"]
    _ui.table(view[[c for c in shown if c in view]], name=f"top_{strategy.name}",
              key="sweep.top")
    return top


def universe(cells: pd.DataFrame, strategy, top: pd.DataFrame) -> None:
    """One configuration across every symbol in scope: share positive, pooled win rate,
    best/worst. The picker's values are the configurations' identities (params and exit-rule
    hashes), so the label always names the configuration whose numbers the cards show."""
    from core import sweep
    from core.exits import exit_label

    identity = top[["params_hash", "exit_hash", "params_json", "exit_json"]]
    configs = {f"{ph}/{eh}": (json.loads(p), json.loads(e))
               for ph, eh, p, e in identity.itertuples(index=False)}
    pick = st.selectbox("Universe view of configuration", list(configs), key="sweep.universe",
                        format_func=lambda k: f"{_ui.params_label(configs[k][0])} · "
                                              f"{exit_label(configs[k][1])}")
    params, exit_rule = configs[pick]
    with _ui.user_errors():
        view = sweep.universe_view(cells, strategy.name, params, exit_rule)
        cols = st.columns(5)
        cols[0].metric("Symbols", view["n_symbols"], border=True)
        cols[1].metric("Positive return", _ui.format_metric("win_rate", view["share_positive"]),
                       border=True)
        cols[2].metric("Median Sharpe", _ui.format_metric("sharpe_ratio", view["median_sharpe"]),
                       border=True)
        cols[3].metric("Pooled trades", f"{view['pooled_trades']:,}", border=True)
        cols[4].metric("Pooled win rate", _ui.format_metric("win_rate", view["pooled_win_rate"]),
                       border=True)
        st.caption(f"{_ui.params_label(view['params'])} · {exit_label(view['exit_rule'])} — "
                   f"best: {', '.join(view['best'])} · worst: {', '.join(view['worst'])}")
        _ui.table(view["table"], name=f"universe_{strategy.name}", key="sweep.universe.table")

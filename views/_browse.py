"""Manager mode "Browse stored": filter, sort, compare and delete stored backtests."""
from __future__ import annotations

import hashlib
from collections import Counter

import pandas as pd
import streamlit as st

from views import _details_ui, _ui

LIMIT = 5_000  # rows fetched for the table
TABLE = "browse.table"  # prefix of the table's widget key (see table_key)
CONFIRM = "browse.confirm_delete"  # session key: ids waiting for a delete confirmation
DELETED = "browse.deleted"  # session key: what the last delete did, shown once after it
SHOWN = ("details", "symbol", "strategy", "direction", "params", "exit_rule", "scope",
         "definition",
         "num_trades", "win_rate", "total_return", "cagr", "sharpe_ratio", "max_drawdown",
         "expectancy", "profit_factor", "exposure", "start", "end", "backtest_id")
OLDER = "older definition"  # a rule strategy's row computed before its file was edited
MISSING = "strategy missing"  # a row of a strategy no longer registered


def panel() -> None:
    """Sidebar filters -> ``store.query`` -> selectable table -> compare / delete the selection."""
    from core.details import direction_summary

    with _ui.user_errors() as failed:
        the_store = _ui.store()
        everything = the_store.count()
    if failed:
        return
    if everything == 0:
        st.info("The store holds no backtests yet. Switch to **Run one backtest** or **Run a "
                "sweep** in the sidebar; stored results are listed here.")
        return
    with st.sidebar:
        criteria = filters(the_store)
    with _ui.user_errors() as failed:
        rows = the_store.query(**criteria, limit=LIMIT)
    if failed:
        return
    st.caption(f"{len(rows):,} of {everything:,} stored backtests match"
               + (f" (showing the first {LIMIT:,})" if len(rows) >= LIMIT else "") + ".")
    if rows.empty:
        st.info("No stored backtest matches these filters. Loosen them in the sidebar.")
        return
    view = readable(rows)
    event = _ui.table(view, name="backtests", key=table_key(view["backtest_id"]),
                      selectable=True, height=420)
    by_side = direction_summary(view)
    if by_side is not None:
        st.caption("Long and short runs side by side (medians over the listed backtests):")
        _ui.table(by_side, name="backtests-by-direction", key=f"{TABLE}.by_direction")
    chosen = selected_ids(event, view)
    actions(the_store, chosen, view)


def table_key(ids) -> str:
    """Widget key of the table for exactly these rows in this order.

    A selection is a list of row positions; when the rows change (a delete, a filter, another
    sort) the key changes too, so the new table starts unselected instead of carrying the old
    positions onto backtests the user never picked.
    """
    digest = hashlib.sha1("\n".join(map(str, ids)).encode()).hexdigest()[:16]
    return f"{TABLE}.{digest}"


def selected_ids(event, view: pd.DataFrame) -> list[str]:
    """Backtest ids of the selected rows (positions outside the table are ignored)."""
    ids = view["backtest_id"].tolist()
    return [str(ids[i]) for i in _ui.selected_rows(event) if 0 <= i < len(ids)]


def filters(the_store) -> dict:
    """Filter widgets; returns keyword arguments for ``store.query``."""
    from core.strategies import get_strategy, list_strategies

    names = [s.name for s in list_strategies()]
    strategy = st.selectbox("Strategy", ["(any)", *names], key="browse.strategy")
    symbols = st.text_input("Symbols (empty: all)", key="browse.symbols",
                            help=f"Comma-separated, e.g. {_ui.first_symbols(2) or 'AAPL, MSFT'}")
    conditions = []
    min_win = st.slider("Win rate at least (%)", 0, 100, 0, step=5, key="browse.min_win")
    if min_win:
        conditions.append(f"win_rate >= {min_win / 100}")
    min_trades = int(st.number_input("Trades at least", min_value=0, value=0, key="browse.trades"))
    if min_trades:
        conditions.append(f"num_trades >= {min_trades}")
    min_sharpe = st.number_input("Sharpe at least", value=None, step=0.1, key="browse.sharpe",
                                 placeholder="any")
    if min_sharpe is not None:
        conditions.append(f"sharpe_ratio >= {min_sharpe}")
    max_dd = st.slider("Max drawdown no deeper than (%)", 0, 100, 100, step=5, key="browse.dd")
    if max_dd < 100:
        conditions.append(f"max_drawdown >= {-max_dd / 100}")
    conditions += choice_conditions("Scopes (empty: all)", "scope_hash", scope_choices(the_store),
                                    key="browse.scopes",
                                    help="Data source, window, costs and settings a backtest "
                                         "ran with; one configuration may be stored in several.")
    conditions += choice_conditions("Exit rules (empty: all)", "exit_hash",
                                    exit_choices(the_store), key="browse.exits")
    if strategy != "(any)":
        conditions += param_conditions(get_strategy(strategy))
    order = st.selectbox("Sort by", ["sharpe_ratio", "win_rate", "total_return", "cagr",
                                     "num_trades", "max_drawdown", "expectancy"],
                         key="browse.order")
    criteria: dict = {"where": " and ".join(conditions) or None, "order_by": f"-{order}",
                      "scope": "all"}
    if strategy != "(any)":
        criteria["strategy"] = strategy
    typed = _ui.parse_symbols(symbols) if symbols.strip() else ()
    if typed:
        criteria["symbol"] = list(typed)
    return criteria


def choice_conditions(label: str, column: str, choices: dict[str, str], key: str,
                      help: str | None = None) -> list[str]:
    """A multiselect over ``{hash: label}``; the picked hashes as one ``where`` condition."""
    picked = st.multiselect(label, list(choices), format_func=choices.get, key=key, help=help)
    if not picked:
        return []
    return ["(" + " or ".join(f"{column} == '{h}'" for h in picked) + ")"]


def scope_choices(the_store) -> dict[str, str]:
    """``{scope hash: label}`` of the store's scopes, by label (a shared label gets its hash)."""
    from core.scope import scope_label

    labels = {h: scope_label(scope) for h, scope in the_store.scopes().items()}
    return unique_labels(labels)


def exit_choices(the_store) -> dict[str, str]:
    """``{exit hash: label}`` of the exit rules stored, by label."""
    from core.canonical import stable_hash
    from core.exits import stored_exit_rules

    return unique_labels({stable_hash(rule): label for label, rule in stored_exit_rules(the_store)})


def unique_labels(labels: dict[str, str]) -> dict[str, str]:
    """``labels`` sorted by label; a label two hashes share is told apart by the hash."""
    counts = Counter(labels.values())
    named = {h: f"{text} [{h[:8]}]" if counts[text] > 1 else text
             for h, text in labels.items()}
    return dict(sorted(named.items(), key=lambda item: item[1].lower()))


def param_conditions(strategy) -> list[str]:
    """Range conditions on the numeric params of one strategy (``<prefix>_<param>`` columns)."""
    conditions = []
    with st.expander("Param ranges"):
        for p in strategy.params:
            if p.kind_name == "choice" or p.low is None or p.high is None:
                continue
            low, high = st.slider(p.name, float(p.low), float(p.high),
                                  (float(p.low), float(p.high)), key=f"browse.{strategy.name}.{p.name}")
            column = f"{strategy.prefix}_{p.name}"
            if low > p.low:
                conditions.append(f"{column} >= {low}")
            if high < p.high:
                conditions.append(f"{column} <= {high}")
    return conditions


def readable(rows: pd.DataFrame) -> pd.DataFrame:
    """Stored rows with details links and human-readable params / exit rule columns."""
    from core.details import directions
    from core.exits import exit_label

    out = _ui.with_details_links(rows)
    out["params"] = [_ui.params_label(_ui.from_json(t)) for t in out["params"]]
    out["exit_rule"] = [exit_label(_ui.from_json(t)) for t in out["exit_rule"]]
    out["definition"] = definition_marks(out)
    out["direction"] = directions(rows)
    for column in ("start", "end"):
        if column in out:
            out[column] = pd.to_datetime(out[column]).dt.date
    return out[[c for c in SHOWN if c in out]]


def definition_marks(rows: pd.DataFrame) -> list[str]:
    """Per row: "" when it ran the strategy's current definition, else ``OLDER`` (the rule
    file was edited since) or ``MISSING`` (the strategy is no longer registered)."""
    from core.strategies import current_definition

    current = {name: current_definition(name) for name in rows["strategy"].astype(str).unique()}
    return ["" if current[s] == str(d) else (MISSING if current[s] is None else OLDER)
            for s, d in zip(rows["strategy"].astype(str), rows["definition"])]


def actions(the_store, chosen: list[str], view: pd.DataFrame) -> None:
    """Compare or delete the selected rows (delete asks for confirmation first)."""
    done = st.session_state.pop(DELETED, None)
    if done:
        st.success(done, icon=":material/check:")
    pending = st.session_state.get(CONFIRM)
    if pending and set(pending) != set(chosen):
        st.session_state.pop(CONFIRM, None)  # the selection changed: ask again for the new one
        pending = None
    if not chosen:
        st.caption("Select rows (left edge of the table) to compare or delete them.")
        return
    labels = row_labels(view)
    left, right = st.columns(2)
    if left.button(f"Compare {len(chosen)} selected", key="browse.compare",
                   icon=":material/compare_arrows:"):
        _details_ui.compare(the_store, chosen, labels)
    if right.button(f"Delete {len(chosen)} selected…", key="browse.delete",
                    icon=":material/delete:"):
        st.session_state[CONFIRM] = pending = list(chosen)
    if pending:
        confirm_delete(the_store, pending, labels)


def row_labels(view: pd.DataFrame) -> dict[str, str]:
    """``backtest_id -> "SYMBOL params exit rule"`` for the rows shown."""
    return {str(b): f"{s} {p} {e}" for b, s, p, e in
            view[["backtest_id", "symbol", "params", "exit_rule"]].itertuples(index=False)}


def confirm_delete(the_store, pending: list[str], labels: dict[str, str]) -> None:
    """Ask before deleting, naming each backtest; deletes only on the confirmation button."""
    named = "\n".join(f"- `{b}` {labels.get(b, '')}" for b in pending[:10])
    more = f"\n- … and {len(pending) - 10} more" if len(pending) > 10 else ""
    st.warning(f"Delete {len(pending)} stored backtest(s)? This cannot be undone.\n\n"
               f"{named}{more}")
    yes, no = st.columns(2)
    if yes.button(f"Yes, delete {len(pending)}", type="primary", key="browse.delete.yes"):
        with _ui.user_errors() as failed:
            deleted = the_store.delete_backtest(pending)
        st.session_state.pop(CONFIRM, None)
        if not failed:
            st.session_state[DELETED] = f"Deleted {deleted} stored backtest(s)."
            st.rerun()
    if no.button("Cancel", key="browse.delete.no"):
        st.session_state.pop(CONFIRM, None)
        st.rerun()

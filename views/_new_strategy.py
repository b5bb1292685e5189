"""Manager mode "New strategy": write a rule strategy in the browser, preview it, save it.

The form holds a strategy file's fields (docs/strategies.md). Each box is checked whenever it
changes, with the parser that loads files; the preview marks where the unsaved rules fire on
one symbol's prices with the default params; **Save** writes the TOML file into the strategies
folder (``core.rule_files.save_strategy``: checked, atomic, never replacing a file unasked), and
every strategy picker lists the strategy at once. Files that fail to load are listed here.
"""
from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd
import streamlit as st

from core import rule_files
from core.errors import HindsightError, StrategyFileError
from views import _charts, _ui

KINDS = ("int", "float", "choice")
#: The params table's columns and their empty values (the editor's types come from these).
PARAM_COLUMNS = {"name": "", "kind": "", "default": math.nan, "low": math.nan,
                 "high": math.nan, "choices": "", "help": ""}
EXAMPLE_ENTRY = "rsi(close, period) crosses_below oversold and close > sma(close, trend)"
EXAMPLE_EXIT = "rsi(close, period) crosses_above 70"
SAVED = "new.saved"  # session key: name and path of the strategy saved last
_INTEGER = re.compile(r"[+-]?\d+")


def panel() -> None:
    """The form, the checks under each box, the preview and Save."""
    folder = _ui.settings().strategies_folder
    _problem_files()
    definition, rules_ok = _form()
    strategy = _checked(definition, folder) if rules_ok else None
    st.subheader("Preview")
    _preview(definition if strategy is not None else None)
    st.subheader("Save")
    _save(definition, folder, strategy)


def sidebar_problems() -> None:
    """A sidebar warning counting the strategy files that could not be loaded (any mode)."""
    from core.strategies import strategy_problems

    count = len(strategy_problems())
    if count:
        files = "file" if count == 1 else "files"
        st.sidebar.warning(f"{count} strategy {files} could not be loaded; **New strategy** "
                           "lists each with its error.", icon=":material/warning:")


def _problem_files() -> None:
    """Every strategy file of the folder that could not be loaded, with its error."""
    from core.strategies import strategy_problems

    problems = strategy_problems()
    if not problems:
        return
    with st.expander(f"Strategy files that could not be loaded ({len(problems)})",
                     icon=":material/warning:"):
        for problem in problems:
            st.error(problem.error, icon=":material/error:")
        st.caption("The other strategies load normally. Fix a file (or remove it) and it is "
                   "read again at once.")


# --- the form ------------------------------------------------------------------------------------

def _form() -> tuple[dict[str, Any], bool]:
    """The definition as typed, and whether its params and rules are valid."""
    left, middle, right = st.columns([2, 3, 1])
    name = left.text_input("Name", key="new.name", placeholder="rsi_trend",
                           help="Lowercase letters, digits and _; also the prefix of the "
                                "stored param columns (name_param).")
    title = middle.text_input("Title", key="new.title", placeholder="RSI dip in an uptrend")
    direction = right.radio("Direction", rule_files.DIRECTIONS, key="new.direction",
                            horizontal=True)
    description = st.text_area("Description", key="new.description", height=68)
    st.markdown("**Params**")
    rows = st.data_editor(pd.DataFrame({k: pd.Series(dtype=type(v)) for k, v in
                                        PARAM_COLUMNS.items()}),
                          key="new.params", num_rows="dynamic", hide_index=True,
                          width="stretch", column_config=_param_columns())
    params, params_ok = _params_feedback(rows)
    entry = st.text_area("Entry rule", key="new.entry", height=68,
                         placeholder=EXAMPLE_ENTRY)
    entry_ok = _rule_feedback(entry, params, "entry")
    exit_ = st.text_area("Exit rule", key="new.exit", height=68, placeholder=EXAMPLE_EXIT)
    exit_ok = _rule_feedback(exit_, params, "exit")
    require = st.text_area("Conditions on params (optional, one per line)", key="new.require",
                           height=68, placeholder="oversold < overbought",
                           help="Params sets that break one are refused; sweeps skip them.")
    definition = {"name": name.strip(), "title": title, "description": description,
                  "direction": direction, "entry": entry, "exit": exit_,
                  "require": [line.strip() for line in require.splitlines() if line.strip()],
                  "params": params_table(rows) if params_ok else {}}
    return definition, params_ok and entry_ok and exit_ok


def _param_columns() -> dict[str, Any]:
    """The params table's column editors: kind from a list, numbers as numbers, help texts."""
    number = "Leave empty for no bound."
    return {
        "name": st.column_config.TextColumn("name", help="A lowercase identifier used in the "
                                                         "rules, e.g. period."),
        "kind": st.column_config.SelectboxColumn("kind", options=list(KINDS)),
        "default": st.column_config.NumberColumn("default", help="The value a run starts with."),
        "low": st.column_config.NumberColumn("low", help=number),
        "high": st.column_config.NumberColumn("high", help=number),
        "choices": st.column_config.TextColumn("choices", help="For kind choice: numbers "
                                                               "separated by commas, e.g. 10, 20"),
        "help": st.column_config.TextColumn("help", help="Shown next to the param's box."),
    }


def params_table(rows: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The params table's rows as a definition's ``params`` (empty rows and cells left out).

    Whole numbers of an int param (and of a choice param whose choices are whole) become ints;
    ``StrategyFileError`` names a row without a name, a name listed twice or a choice that is
    not a number.
    """
    params: dict[str, dict[str, Any]] = {}
    for number, row in enumerate(rows.to_dict("records"), start=1):
        if all(_blank(v) for v in row.values()):
            continue
        name = "" if _blank(row.get("name")) else str(row["name"]).strip()
        if not name:
            raise StrategyFileError(f"params row {number}: give the param a name, e.g. period.")
        if name in params:
            raise StrategyFileError(f"param {name!r} is listed twice; remove one of the rows.")
        params[name] = _param_spec(name, row)
    return params


def _param_spec(name: str, row: dict[str, Any]) -> dict[str, Any]:
    """One table row as a param's fields, as its ``[params.<name>]`` table would hold them."""
    kind = None if _blank(row.get("kind")) else str(row["kind"])
    spec: dict[str, Any] = {"kind": kind}
    whole = kind == "int"
    if kind == "choice":
        spec["choices"] = _choices(name, row.get("choices"))
        whole = all(isinstance(c, int) for c in spec["choices"])
    for field in ("default", "low", "high"):
        if not _blank(row.get(field)):
            value = float(row[field])
            spec[field] = int(value) if whole and value.is_integer() else value
    if not _blank(row.get("help")):
        spec["help"] = str(row["help"]).strip()
    return spec


def _choices(name: str, text: Any) -> list[int | float]:
    """``"10, 20, 50"`` as numbers (whole ones as ints)."""
    words = [] if _blank(text) else str(text).replace(",", " ").split()
    values = []
    for word in words:
        try:
            values.append(int(word) if _INTEGER.fullmatch(word) else float(word))
        except ValueError:
            raise StrategyFileError(f"[params.{name}] choices: {word!r} is not a number; list "
                                    "numbers separated by commas, e.g. 10, 20, 50.") from None
    return values


def _blank(value: Any) -> bool:
    """An empty cell of the params table: None, NaN or blank text."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, float) and math.isnan(value)


def _params_feedback(rows: pd.DataFrame) -> tuple[tuple, bool]:
    """The typed params of the table (an error under it when a row is wrong)."""
    try:
        return rule_files.parse_params(params_table(rows)), True
    except HindsightError as exc:
        st.error(str(exc), icon=":material/error:")
        return (), False


def _rule_feedback(text: str, params: tuple, where: str) -> bool:
    """Under a rule box: the parser's error (with the column), or the params the rule uses."""
    if not text.strip():
        example = EXAMPLE_ENTRY if where == "entry" else EXAMPLE_EXIT
        st.caption(f"Write the {where} rule, e.g. `{example}` (the language: docs/strategies.md).")
        return False
    try:
        node = rule_files.check_rule(text, params, where)
    except HindsightError as exc:
        st.error(str(exc), icon=":material/error:")
        missing = rule_files.undeclared_names(text, params)
        if missing:
            names = ", ".join(f"`{n}`" for n in missing)
            st.caption(f"Not declared yet: {names}. Add each as a row of the params table "
                       "(name, kind, default).")
        return False
    used = ", ".join(f"`{n}`" for n in node.params) or "none"
    st.caption(f":material/check_circle: The {where} rule is valid; params it uses: {used}.")
    return True


def _checked(definition: dict[str, Any], folder: str):
    """The strategy the whole definition declares, or None with the error shown."""
    if not definition["name"]:
        st.info("Name the strategy to check it as a whole.", icon=":material/edit:")
        return None
    try:
        return rule_files.check_definition(definition, folder, overwrite=True)
    except HindsightError as exc:
        st.error(str(exc), icon=":material/error:")
        return None


# --- preview and save ----------------------------------------------------------------------------

def _preview(definition: dict[str, Any] | None) -> None:
    """Where the unsaved rules fire on one symbol with the default params, counted and drawn."""
    with _ui.user_errors() as failed:
        symbols = _ui.source_symbols()
    if failed:
        return
    symbol = st.selectbox("Symbol", symbols, key="new.symbol",
                          help=f"A symbol of {_ui.source_label(_ui.settings().data_source)}.")
    if definition is None:
        st.info("The preview appears once the form above has no errors.",
                icon=":material/visibility:")
        return
    with _ui.user_errors() as failed:
        bars = _ui.load_bars(symbol)
        entries, exits = rule_files.draft_signals(definition, bars)
    if failed:
        return
    cells = st.columns(3)
    cells[0].metric("Entries", f"{int(entries.sum()):,}", border=True)
    cells[1].metric("Exits", f"{int(exits.sum()):,}", border=True)
    cells[2].metric("Bars", f"{len(bars):,}", border=True)
    st.caption("Signals with the default params, decided on each bar's close (a backtest fills "
               "them at the next open and takes an entry only while out of the market).")
    st.altair_chart(_charts.signal_chart(bars, entries, exits), width="stretch")


def _save(definition: dict[str, Any], folder: str, strategy) -> None:
    """Save (disabled while the form has errors), with a confirmation before replacing a file."""
    path = rule_files.strategy_path(folder, strategy.name) if strategy is not None else None
    exists = path is not None and path.exists()
    confirmed = exists and st.checkbox(f"Overwrite existing strategy '{strategy.name}'",
                                       key="new.overwrite",
                                       help=f"{path} exists; saving replaces it.")
    if st.button("Save strategy", key="new.save", type="primary", icon=":material/save:",
                 disabled=strategy is None or (exists and not confirmed)):
        st.session_state.pop(SAVED, None)
        with _ui.user_errors():
            saved = rule_files.save_strategy(definition, folder, overwrite=confirmed)
            st.session_state[SAVED] = (strategy.name, str(saved))
    if strategy is None:
        st.caption("Save is available once the form above has no errors.")
    saved = st.session_state.get(SAVED)
    if saved is not None:
        name, where = saved
        st.success(f"Saved '{name}' to `{where}`; every strategy picker lists it now.",
                   icon=":material/check:")
        st.button(f"Run '{name}' now", key="new.run", icon=":material/play_arrow:",
                  on_click=_go_run, args=(name,))


def _go_run(name: str) -> None:
    """Button callback: switch to Run one backtest with the saved strategy picked."""
    st.session_state["manager.mode"] = "run"
    st.session_state["run.strategy"] = name

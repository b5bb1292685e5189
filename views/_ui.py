"""Shared widgets and cached resources for the Streamlit pages.

Pages stay thin: they lay out widgets, call one ``core`` service and render. What more than one
page needs lives here: the open store and data provider (one per process), cached price loading,
the schema-driven strategy-params and exit-rule forms, error display, CSV download and links to
the details page. Nothing here computes a backtest or touches zarr directly.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd
import streamlit as st

from core.config import Settings, load_settings
from core.errors import HindsightError

DETAILS_PATH = "details"  # url_path of the Backtest Details page (see app.py)
DEMO_LABEL = "synthetic demo data"
PRICE_TTL_S = 600  # memoised bars are re-read after this long (a refresh or edited CSV shows up)

#: Metrics shown in tables, with their display format (Streamlit printf style).
METRIC_FORMATS: dict[str, str] = {
    "num_trades": "%d",
    "win_rate": "percent",
    "total_return": "percent",
    "cagr": "percent",
    "sharpe_ratio": "%.2f",
    "sortino_ratio": "%.2f",
    "max_drawdown": "percent",
    "calmar_ratio": "%.2f",
    "expectancy": "percent",
    "profit_factor": "%.2f",
    "exposure": "percent",
    "avg_bars_held": "%.1f",
    "best_trade": "percent",
    "worst_trade": "percent",
    "pooled_trades": "%d",
    "pooled_win_rate": "percent",
    "share_positive": "percent",
    "return": "percent",
    "pnl": "%.2f",
    "entry_price": "%.2f",
    "exit_price": "%.2f",
}


# --- settings, store, provider ------------------------------------------------------------------

def settings() -> Settings:
    """Current settings: the data source chosen in the app over env > config.toml > defaults."""
    base = load_settings()
    chosen = _source_choice(repr(base))
    return load_settings(**chosen) if chosen else base


@st.cache_resource(show_spinner=False)
def _source_choice(baseline: str) -> dict[str, str]:
    """The data source picked in the sidebar panel for one configuration (empty: configured).

    Held once per server process, so every tab (and a details link opened in a new one) reads
    the same data; a restart or another config file starts from the configuration again.
    """
    return {}


@st.cache_resource(show_spinner=False)
def _open_store(url: str):
    from core.store import BacktestStore
    from core.walkforward import import_legacy_walkforward_store

    import_legacy_walkforward_store(url)  # a walkforward.zarr of earlier versions, once
    return BacktestStore(url)


def store():
    """The one backtest store handle of this process, for the configured store URL."""
    return _open_store(settings().store_url)


@st.cache_resource(show_spinner=False, hash_funcs={Settings: repr})
def _provider(config: Settings):
    from core.data import get_provider

    return get_provider(config)


def provider(source: str | None = None):
    """The data provider for ``source`` ("demo", "folder", "yahoo"; default: the configured one)."""
    config = settings()
    if source is not None and source != config.data_source:
        config = replace(config, data_source=source)
    return _provider(config)


def source_key() -> str:
    """Names the data the app reads now: the source, and the folder for the folder source."""
    config = settings()
    return f"folder:{config.data_folder}" if config.data_source == "folder" else config.data_source


def follow_source(key: str, default) -> None:
    """Set widget ``key`` to ``default()`` on first use and whenever the data source changes.

    The symbol boxes of the pages call this before drawing the widget (without ``value=``), so
    they start on the current source's symbols and keep what the user typed otherwise.
    """
    marker = f"{key}.source"
    if st.session_state.get(marker) != source_key():
        st.session_state[key] = default()
        st.session_state[marker] = source_key()


def sidebar_status() -> None:
    """Sidebar footer: the open store, the data source (with its settings panel) and how many
    backtests the store holds."""
    with st.sidebar:
        st.divider()
        with user_errors():
            config = settings()
            held = store().count()
            st.caption(f"**Store** `{config.store_url}`  \n"
                       f"**Data** {source_label(config.data_source)}  \n"
                       f"**Backtests stored** {held:,}")
        settings_panel()


SOURCE_TITLES = {"demo": f"Demo ({DEMO_LABEL})", "folder": "My data folder (CSV files)",
                 "yahoo": "Yahoo Finance (needs internet)"}
SOURCE_ERROR = "settings.error"  # session key: why the last Apply was refused


def settings_panel() -> None:
    """Sidebar panel switching the data source (and folder) for the whole app, no restart."""
    config = settings()
    with st.expander("Data source settings", icon="⚙️"):
        with st.form("settings.form", border=False, enter_to_submit=False):
            sources = list(SOURCE_TITLES)
            st.radio("Data source", sources, index=sources.index(config.data_source),
                     format_func=SOURCE_TITLES.get, key="settings.source")
            st.text_input("Data folder", value=config.data_folder, key="settings.folder",
                          help="The folder source reads one CSV (or Parquet) file per symbol "
                               "from here, e.g. AAPL.csv.")
            st.form_submit_button("Apply", on_click=_apply_source, type="primary",
                                  key="settings.apply")
        error = st.session_state.pop(SOURCE_ERROR, None)
        if error:
            st.error(error, icon=":material/error:")
        base = load_settings()
        if (base.data_source, base.data_folder) != (config.data_source, config.data_folder):
            st.caption(f"Configured (config.toml / env): {source_label(base.data_source, base)}. "
                       "The choice here lasts until the server restarts.")


def _apply_source() -> None:
    """Form callback: check the chosen source and folder, then switch every page to them."""
    source = st.session_state.get("settings.source", "demo")
    folder = str(st.session_state.get("settings.folder", "")).strip()
    base = load_settings()
    if source == "folder":
        from pathlib import Path

        where = Path(folder).expanduser()
        if not folder or not where.is_dir():
            st.session_state[SOURCE_ERROR] = (
                f"The data folder {folder!r} does not exist. Type the path of a folder of CSV "
                "files (one per symbol, e.g. AAPL.csv), or create it first.")
            return
        folder = str(where)
    choice = _source_choice(repr(base))
    choice.clear()
    if source != base.data_source:
        choice["data_source"] = source
    if folder and folder != base.data_folder:
        choice["data_folder"] = folder


def source_label(source: str, config: Settings | None = None) -> str:
    """How a data source is named in the UI; the demo universe is always labelled synthetic."""
    if source == "demo":
        return f"demo ({DEMO_LABEL})"
    if source == "folder":
        return f"folder {(config or settings()).data_folder}"
    return source


@st.cache_data(show_spinner=False, max_entries=256, ttl=PRICE_TTL_S, hash_funcs={Settings: repr})
def _bars(config: Settings, symbol: str, start: str | None, end: str | None) -> pd.DataFrame:
    return _provider(config).load_bars(symbol, start=start, end=end)


def load_bars(symbol: str, start=None, end=None, source: str | None = None) -> pd.DataFrame:
    """Bars of one symbol through the provider (and its price cache), memoised for a while."""
    config = settings()
    if source is not None:
        config = replace(config, data_source=source)
    return _bars(config, symbol, _iso(start), _iso(end))


@st.cache_data(show_spinner=False, max_entries=4, ttl=PRICE_TTL_S, hash_funcs={Settings: repr})
def _many(config: Settings, symbols: tuple[str, ...], start, end):
    bars, skipped = _provider(config).load_available(list(symbols), start=start, end=end)
    return dict(bars), [{"symbol": name, "error": error} for name, error in skipped.items()]


def load_universe(symbols: Sequence[str], start=None, end=None, source: str | None = None
                  ) -> tuple[dict[str, pd.DataFrame], list[dict[str, str]]]:
    """Bars of many symbols (memoised for the scanner) and the ones that failed to load.

    A file that cannot be read does not stop the others: it is returned in the second item as
    ``{"symbol", "error"}`` so the page can list it.
    """
    config = settings()
    if source is not None:
        config = replace(config, data_source=source)
    return _many(config, tuple(symbols), _iso(start), _iso(end))


def _iso(value) -> str | None:
    return None if value is None else pd.Timestamp(value).strftime("%Y-%m-%d")


# --- errors ------------------------------------------------------------------------------------

@contextmanager
def user_errors() -> Iterator[list[HindsightError]]:
    """Show any ``HindsightError`` raised inside as ``st.error`` (its message says the fix).

    The yielded list receives the error so the caller can tell whether the block succeeded.
    """
    caught: list[HindsightError] = []
    try:
        yield caught
    except HindsightError as exc:
        caught.append(exc)
        st.error(str(exc), icon=":material/error:")


# --- forms -------------------------------------------------------------------------------------

def param_input(param, key: str, default: Any = None) -> Any:
    """One widget for one strategy/exit-rule ``Param``, typed by its kind.

    Numeric boxes take any number: the valid range is in the help text and checked with the
    submitted value (``core`` names the param and the range). A bounded box would keep a typed
    out-of-range value in the browser, unapplied, and the app would run with the old one.
    """
    value = param.default if default is None else default
    label = param.name.replace("_", " ")
    if param.kind_name == "choice":
        choices = list(param.choices)
        index = choices.index(value) if value in choices else 0
        return st.selectbox(label, choices, index=index, key=key, help=param.help or None)
    help_text = param_help(param)
    if param.kind_name == "int":
        return int(st.number_input(label, value=int(value), step=int(param.step or 1), key=key,
                                   help=help_text))
    return float(st.number_input(label, value=float(value), step=float(param.step or 0.01),
                                 format="%g", key=key, help=help_text))


def param_help(param) -> str | None:
    """A param's help text followed by its valid range, e.g. "RSI look-back (2 to 500)"."""
    if param.low is None and param.high is None:
        return param.help or None
    low = "any" if param.low is None else f"{param.low:g}"
    high = "any" if param.high is None else f"{param.high:g}"
    bounds = f"valid: {low} to {high}"
    return f"{param.help} ({bounds})" if param.help else bounds.capitalize()


def json_toggle(key: str) -> bool:
    """The switch between the params widgets and a JSON text area (for power users)."""
    return st.toggle("Edit params as JSON", key=f"{key}.use_json",
                     help="For power users: paste or type the params as a JSON object.")


def params_form(strategy, key: str, as_json: bool = False) -> dict[str, Any] | str:
    """Widgets generated from ``strategy.params``; returns the params dict.

    With ``as_json`` a text area (pre-filled with the defaults) is shown instead and its raw
    text returned, to be parsed with :func:`parse_params_json` (a typo becomes an ``st.error``).
    """
    if as_json:
        current = {p.name: st.session_state.get(f"{key}.{strategy.name}.{p.name}", p.default)
                   for p in strategy.params}  # what the widgets held before the switch
        return st.text_area("Params JSON", value=json.dumps(current),
                            key=f"{key}.json.{strategy.name}", height=90)
    return {p.name: param_input(p, key=f"{key}.{strategy.name}.{p.name}") for p in strategy.params}


def parse_params_json(text: str) -> dict[str, Any]:
    """Parse the JSON editor's text into a dict, or raise a ``ParamError`` saying what to fix."""
    from core.errors import ParamError

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamError(
            f"Params JSON is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}). "
            'Write an object such as {"period": 14, "lower": 30}.'
        ) from None
    if not isinstance(value, dict):
        raise ParamError(
            f"Params JSON must be an object of name: value pairs, got {type(value).__name__}. "
            'Write an object such as {"period": 14, "lower": 30}.'
        )
    return value


def exit_kinds_picker(key: str) -> list[str]:
    """Which extra exit types (stop loss, take profit, ...) the rule adds to the signal exit."""
    from core.exits import EXIT_RULE_TYPES

    kinds = [name for name in EXIT_RULE_TYPES if name != "signal"]
    return st.multiselect("Extra exits", kinds, default=[], key=f"{key}.kinds",
                          format_func=lambda k: k.replace("_", " "))


def exit_rule_form(key: str, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Exit-rule widgets generated from ``core.exits.EXIT_RULE_TYPES``; returns the rule list.

    ``kinds``: the extra exit types chosen outside a form (see :func:`exit_kinds_picker`);
    None shows that picker here.
    """
    from core.exits import EXIT_RULE_TYPES

    use_signal = st.checkbox("Exit on the strategy's exit signal", value=True, key=f"{key}.signal")
    chosen = exit_kinds_picker(key) if kinds is None else list(kinds)
    rule: list[dict[str, Any]] = [{"type": "signal"} if use_signal
                                  else {"type": "signal", "enabled": False}]
    for kind in chosen:
        entry: dict[str, Any] = {"type": kind}
        for param in EXIT_RULE_TYPES[kind]:
            entry[param.name] = param_input(param, key=f"{key}.{kind}.{param.name}")
        rule.append(entry)
    return rule


def check_range(label: str, value: float, low: float | None = None,
                high: float | None = None) -> float:
    """``value`` when ``low <= value <= high``, else a ``ParamError`` naming the box and range."""
    from core.errors import ParamError

    if (low is not None and value < low) or (high is not None and value > high):
        bounds = (f"{low:g} to {high:g}" if low is not None and high is not None
                  else f"at least {low:g}" if low is not None else f"at most {high:g}")
        raise ParamError(f"{label} = {value:g} is out of range; use {bounds}.")
    return value


def strategy_picker(label: str, key: str, multi: bool = False):
    """Select one (or several) registered strategies by title; returns Strategy object(s)."""
    from core.strategies import list_strategies

    strategies = {s.name: s for s in list_strategies()}
    names = list(strategies)

    def title(name: str) -> str:
        return f"{strategies[name].title} ({name})"

    if multi:
        picked = st.multiselect(label, names, default=names[:1], key=key, format_func=title)
        return [strategies[n] for n in picked]
    return strategies[st.selectbox(label, names, key=key, format_func=title)]


# --- tables ------------------------------------------------------------------------------------

SEARCH_LIMIT = 200  # backtests a search offers at most (newest first)


def search_backtests(the_store, text: str, limit: int = SEARCH_LIMIT) -> pd.DataFrame:
    """Stored backtests matching ``text`` anywhere in the store, newest first, with labels.

    ``text`` holds ids (``42 57``), symbols (``AAPL, MSFT``) and/or strategy names
    (``rsi_meanrev``): ids match exactly; symbols and strategies narrow together. Returns
    columns ``backtest_id`` and ``label``; empty text returns the newest backtests.
    """
    from core.strategies import list_strategies

    words = [w for w in text.replace(",", " ").split() if w]
    ids = [w for w in words if w.isdigit()]
    strategies = {s.name for s in list_strategies()}
    chosen = [w for w in words if w in strategies]
    symbols = parse_symbols(" ".join(w for w in words if not w.isdigit() and w not in strategies))
    frames = []
    if ids:
        frames.append(the_store.query(where=" or ".join(f"backtest_id == {i}" for i in ids),
                                      scope="all"))
    if symbols or chosen or not words:
        frames.append(the_store.query(symbol=list(symbols) or None, strategy=chosen or None,
                                      order_by="-created_at", limit=limit, scope="all"))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame({"backtest_id": pd.Series(dtype=str), "label": pd.Series(dtype=str)})
    rows = pd.concat(frames, ignore_index=True).drop_duplicates("backtest_id").head(limit)
    return pd.DataFrame({"backtest_id": rows["backtest_id"].astype(str).to_numpy(),
                         "label": backtest_labels(rows)})


def backtest_labels(rows: pd.DataFrame) -> list[str]:
    """``SYMBOL · strategy · params · exit rule`` for stored rows (``store.query`` output)."""
    from core.exits import exit_label

    if len(rows) == 0:
        return []
    return [f"{symbol} · {strategy} · {params_label(from_json(params))} · "
            f"{exit_label(from_json(rule))}"
            for symbol, strategy, params, rule in
            rows[["symbol", "strategy", "params", "exit_rule"]].itertuples(index=False)]


def backtest_search(the_store, key: str, exclude: Sequence[str] = (),
                    label: str = "Compare with", max_selections: int = 8) -> dict[str, str]:
    """Search box over the whole store plus a picker of what it found.

    Returns the picked backtests as ``{id: label}`` in the order picked; picked backtests stay
    picked while the search text changes. ``exclude``: ids never offered (e.g. the one shown).
    """
    text = st.text_input("Find backtests by id, symbol or strategy", key=f"{key}.search",
                         placeholder="e.g. 42, AAPL or rsi_meanrev",
                         help="Searches every stored backtest, not only the newest.")
    with user_errors() as failed:
        found = search_backtests(the_store, text)
    if failed:
        return {}
    labels = dict(zip(found["backtest_id"], found["label"]))
    known = st.session_state.setdefault(f"{key}.labels", {})
    known.update(labels)
    picked = [b for b in st.session_state.get(key, []) if b in known]
    options = list(dict.fromkeys([*picked, *(b for b in found["backtest_id"]
                                             if b not in exclude)]))
    if text.strip() and not len(found):
        st.caption(f"No stored backtest matches {text.strip()!r}.")
    chosen = st.multiselect(label, options, key=key, max_selections=max_selections,
                            format_func=lambda b: f"{known.get(b, b)} [{b}]")
    return {b: known.get(b, b) for b in chosen}


def details_url(backtest_id: str) -> str:
    """Relative URL of a backtest's details page (works from any page of the app)."""
    return f"/{DETAILS_PATH}?id={backtest_id}"


def with_details_links(df: pd.DataFrame, id_column: str = "backtest_id") -> pd.DataFrame:
    """Copy of ``df`` with a leading ``details`` column of links (empty where no id)."""
    out = df.copy()
    ids = out[id_column] if id_column in out else pd.Series([None] * len(out), index=out.index)
    out.insert(0, "details", [None if pd.isna(b) else details_url(str(b)) for b in ids])
    return out


def column_config(df: pd.DataFrame) -> dict[str, Any]:
    """Column formats for a results table: link column, percents, ratios."""
    config: dict[str, Any] = {}
    if "details" in df:
        config["details"] = st.column_config.LinkColumn("details", display_text="open",
                                                        width="small")
    for name, fmt in METRIC_FORMATS.items():
        for column in (name, f"{name}_mean"):  # sweep read-outs add a mean next to a median
            if column in df:
                config[column] = st.column_config.NumberColumn(column.replace("_", " "),
                                                               format=fmt)
    return config


def table(df: pd.DataFrame, name: str, key: str, selectable: bool = False, height: int | None = None):
    """A dense sortable table with a CSV download; returns the selection event when selectable."""
    kwargs: dict[str, Any] = dict(hide_index=True, column_config=column_config(df), key=key,
                                  width="stretch")
    if height is not None:
        kwargs["height"] = height
    if selectable:
        kwargs.update(on_select="rerun", selection_mode="multi-row")
    event = st.dataframe(df, **kwargs)
    download_csv(df.drop(columns=["details"], errors="ignore"), name, key=f"{key}.csv")
    return event


def download_csv(df: pd.DataFrame, name: str, key: str) -> None:
    """A download button for ``df`` as CSV named ``<name>.csv``."""
    st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name=f"{name}.csv",
                       mime="text/csv", key=key, icon=":material/download:")


def selected_rows(event) -> list[int]:
    """Positional rows picked in a selectable ``st.dataframe`` (empty when none)."""
    try:
        return list(event.selection.rows)
    except AttributeError:
        return []


# --- universes ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Universe:
    """The symbols to scan or sweep, the data source they come from and how to name them."""

    symbols: tuple[str, ...]
    source: str
    label: str


UNIVERSE_KINDS = ("source", "typed")


def parse_symbols(text: str) -> tuple[str, ...]:
    """Symbols typed by the user (commas, spaces or new lines), validated, unique, in order."""
    from core.data import validate_symbol

    names = [part.strip() for part in text.replace(",", " ").split()]
    return tuple(dict.fromkeys(validate_symbol(name) for name in names if name))


def source_symbols() -> list[str]:
    """Every symbol of the current data source (an error names the fix when there are none)."""
    from core.errors import ValidationError

    config = settings()
    symbols = list(provider().symbols())
    if not symbols:
        where = (f"the data folder {config.data_folder!r} has no price files"
                 if config.data_source == "folder" else "the data source lists no symbols")
        raise ValidationError(f"The universe is empty: {where}. Add CSV files (one per symbol) "
                              "or switch the data source under Data source settings.")
    return symbols


def first_symbols(count: int) -> str:
    """The first ``count`` symbols of the current data source as text ("" when unavailable)."""
    from core.errors import HindsightError

    try:
        return ", ".join(source_symbols()[:count])
    except HindsightError:
        return ""


def universe_picker(key: str) -> Universe | None:
    """Sidebar widgets choosing a universe from the current data source; None when unusable."""
    config = settings()
    label = source_label(config.data_source)
    kind = st.radio("Universe", UNIVERSE_KINDS, key=f"{key}.kind", label_visibility="collapsed",
                    format_func={"source": f"All symbols of {label}",
                                 "typed": "Typed list of symbols"}.get)
    typed = ""
    if kind == "typed":
        follow_source(f"{key}.typed", lambda: first_symbols(3))
        typed = st.text_area("Symbols", key=f"{key}.typed",
                             help=f"Comma- or space-separated symbols of {label}.")
    with user_errors() as failed:
        if kind == "typed":
            symbols = parse_symbols(typed)
            if not symbols:
                from core.errors import ValidationError

                raise ValidationError("The universe is empty: no symbols were typed. Type "
                                      "symbols or pick all symbols of the data source.")
            name = "the typed list"
        else:
            symbols = tuple(source_symbols())
            name = label
    return None if failed else Universe(symbols, config.data_source, name)


# --- running and storing -----------------------------------------------------------------------

def run_and_store(symbol: str, strategy: str, params, exit_rule, *, start=None, end=None,
                  source: str | None = None, **run_kwargs) -> dict[str, Any]:
    """Load bars, ``run_backtest``, ``store_backtest``; says whether it replaced a stored result.

    Returns ``{"id", "replaced", "label", "scope", "metrics"}`` for the page to show (replaced:
    an earlier run of this configuration in the same scope was stored). Any bad input raises a
    ``HindsightError`` before anything is stored.
    """
    from core.engine import run_backtest
    from core.exits import canonical_exit_rule, exit_label
    from core.strategies import validate_params

    validate_params(strategy, params)  # the typed values against the schema, before any work
    canonical_exit_rule(exit_rule)
    bars = load_bars(symbol, start, end, source=source)
    result = run_backtest(bars, strategy, params, exit_rule, symbol=symbol, **run_kwargs)
    the_store = store()
    backtest_id = the_store.store_backtest(result)
    stored = the_store.query(where=f"backtest_id == {backtest_id}", scope="all")
    versions = the_store.history(result.symbol, result.strategy, result.params, result.exit_rule,
                                 scope=str(stored["scope_hash"].iloc[0]))
    label = (f"{result.symbol} · {result.strategy} {params_label(result.params)} · "
             f"{exit_label(result.exit_rule)}")
    return {"id": backtest_id, "replaced": len(versions) > 1, "label": label,
            "scope": str(stored["scope"].iloc[0]), "metrics": dict(result.metrics)}


def from_json(value: Any) -> Any:
    """A params / exit-rule value as stored (canonical JSON text) or already parsed."""
    return json.loads(value) if isinstance(value, str) else value


def params_label(params: dict[str, Any]) -> str:
    """``period=14, oversold=30`` — params as a short readable text."""
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items())


# --- metric display ----------------------------------------------------------------------------

SUMMARY_METRICS = ("win_rate", "num_trades", "sharpe_ratio", "cagr", "max_drawdown")
CARD_METRICS = ("win_rate", "num_trades", "sharpe_ratio", "cagr", "max_drawdown",
                "total_return", "expectancy", "profit_factor", "exposure")
METRIC_TITLES = {
    "win_rate": "Win rate", "num_trades": "Trades", "sharpe_ratio": "Sharpe", "cagr": "CAGR",
    "max_drawdown": "Max drawdown", "total_return": "Total return", "expectancy": "Expectancy",
    "profit_factor": "Profit factor", "exposure": "Exposure", "sortino_ratio": "Sortino",
    "calmar_ratio": "Calmar", "avg_bars_held": "Avg bars held", "best_trade": "Best trade",
    "worst_trade": "Worst trade",
}
_PERCENT = {"win_rate", "cagr", "max_drawdown", "total_return", "expectancy", "exposure",
            "best_trade", "worst_trade"}


def format_metric(name: str, value: Any) -> str:
    """A metric as text: percents with one decimal, ratios with two, counts whole; NaN as '—'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "—"
    if number != number:
        return "—"
    if name in _PERCENT:
        return f"{number * 100:.1f} %"
    if name == "num_trades":
        return f"{int(number):,}"
    if name == "profit_factor" and number == float("inf"):
        return "∞"
    return f"{number:.2f}"


def metric_cards(metrics: dict[str, Any], columns: int = 5,
                 names: Sequence[str] = CARD_METRICS) -> None:
    """A grid of ``st.metric`` cards for the given metric names."""
    cells = st.columns(columns)
    for i, name in enumerate(names):
        cells[i % columns].metric(METRIC_TITLES.get(name, name), format_metric(name, metrics.get(name)),
                                  border=True)


def load_details(the_store, backtest_id: str) -> dict[str, Any]:
    """``core.details.load_details`` with the configured provider (to recompute equity)."""
    from core.details import load_details as load

    return load(the_store, backtest_id, provider())

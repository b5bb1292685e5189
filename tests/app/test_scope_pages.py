"""Scopes through the pages: a window run is stored beside the full-history one, never over it;
Browse lists every scope and filters on scope and exit rule; older rule definitions are marked."""
from __future__ import annotations

import datetime as dt
import os
import re
import time

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import FILLED_SYMBOLS, open_test_store
from tests.app.test_pages import manager_run, open_page, texts
from tests.conftest import strategies_folder

FULL = "demo · full history"
START, END = dt.date(2016, 1, 4), dt.date(2019, 12, 31)  # inside the demo data (2014-2025)
WINDOW = f"demo · {START} → {END}"
RSI = {"period": 14, "oversold": 30, "overbought": 70}  # the forms' defaults
STOP = "signal + stop loss 8 %"  # the exit rule of the filled fixture's second configuration


def stored_id(at: AppTest) -> str:
    """The backtest id named in the run's success message."""
    return re.search(r"as backtest `(\d+)`", texts(at.success)).group(1)


def run_window(at: AppTest, symbol: str = "DEMO01") -> AppTest:
    at.date_input(key="run.start").set_value(START)
    at.date_input(key="run.end").set_value(END)
    return manager_run(at, symbol)


def browse(at: AppTest) -> AppTest:
    at.radio(key="manager.mode").set_value("browse").run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def table(at: AppTest):
    return at.dataframe[0].value


def test_a_window_run_is_stored_beside_the_full_history_run(env):
    at = manager_run(open_page("views/manager.py"))
    full = stored_id(at)
    assert f"under {FULL}" in texts(at.success)
    run_window(at)
    window = stored_id(at)
    assert "Stored DEMO01" in texts(at.success), "another scope: nothing was replaced"
    assert f"under {WINDOW}" in texts(at.success)
    assert window != full

    store = open_test_store(env)
    both = store.query(scope="all").set_index("backtest_id")["scope"].astype(str)
    assert both.to_dict() == {full: FULL, window: WINDOW}
    assert str(store.get_stats("DEMO01", "rsi_meanrev", RSI)["backtest_id"]) == full
    detail = store.get_detailed_results(window)
    assert (detail["start"].date(), detail["end"].date()) == (START, END)

    shown = table(browse(at))
    assert dict(zip(shown["backtest_id"].astype(str), shown["scope"])) == {full: FULL,
                                                                         window: WINDOW}

    scanner = open_page()
    scanner.radio(key="scan.universe.kind").set_value("typed").run()
    scanner.text_area(key="scan.universe.typed").set_value("DEMO01").run()
    scanner.number_input(key="scan.lookback").set_value(250).run()
    assert not scanner.exception, scanner.exception
    assert f"Stats: {FULL}." in texts(scanner.caption)
    signals = table(scanner)
    assert len(signals), "an RSI entry within 250 bars of DEMO01"
    assert set(signals["backtest_id"].astype(str)) == {full}


def test_the_scanner_joins_the_scope_of_the_source_switched_to(env):
    """The store handle opened on the demo source; stats follow the folder picked later."""
    from core.data.demo import generate_demo_universe
    from tests.app.test_source import switch_source

    folder = env / "prices"
    folder.mkdir()
    for name, bars in zip("ABC", generate_demo_universe(count=3, years=4).values()):
        bars.rename_axis("Date").to_csv(folder / f"MY{name}.csv")
    at = switch_source(open_page(), "folder", folder)
    at.number_input(key="scan.lookback").set_value(250).run()
    assert "Stats: folder prices · full history." in texts(at.caption)
    (fill,) = [b for b in at.button if b.label.startswith("Backtest these")]
    fill.click().run()
    assert not at.exception, at.exception
    signals = table(at)
    assert len(signals) and signals["num_trades"].notna().all(), \
        "the runs just stored (folder scope) are the ones joined"
    scopes = open_test_store(env).query(scope="all")["scope"].astype(str)
    assert set(scopes) == {"folder prices · full history"}


def test_browse_filters_on_scope_and_exit_rule(filled, env):
    store = open_test_store(env)
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest

    bars = get_provider(load_settings()).load_bars("DEMO02", START, END)
    window = store.store_backtest(run_backtest(bars, "rsi_meanrev", RSI, None, symbol="DEMO02"))

    at = browse(open_page("views/manager.py"))
    everything = table(at)
    assert len(everything) == len(filled) + 1, "every scope is listed by default"
    assert sorted(set(everything["scope"])) == [WINDOW, FULL]
    assert set(everything["definition"]) == {""}, "built-ins never have an older definition"
    assert list(everything.columns[:8]) == ["details", "symbol", "strategy", "direction",
                                             "params", "exit_rule", "scope", "definition"]

    scopes = at.multiselect(key="browse.scopes")
    assert sorted(scopes.options) == [WINDOW, FULL]
    scopes.set_value([store.scope_hash({"window": {"start": str(START), "end": str(END)}})])
    at.run()
    assert table(at)["backtest_id"].astype(str).tolist() == [window]

    scopes.set_value([]).run()
    exits = at.multiselect(key="browse.exits")
    assert sorted(exits.options) == ["signal", STOP]
    stop = store.query(where="backtest_id == " + str(filled[1]))["exit_hash"].iloc[0]
    exits.set_value([stop]).run()
    assert not at.exception, at.exception
    shown = table(at)
    assert sorted(shown["symbol"]) == sorted(FILLED_SYMBOLS)
    assert set(shown["exit_rule"]) == {STOP}


RULE = """name = "dip_rule"
title = "RSI dip (rule file)"
entry = "rsi(close, period) crosses_below {level}"
exit = "rsi(close, period) crosses_above 70"

[params.period]
kind = "int"
default = 14
low = 2
high = 100
"""


@pytest.fixture
def rule_file(env, monkeypatch):
    """A rule strategy file in a strategies folder the app reads."""
    path = strategies_folder(env, monkeypatch) / "dip_rule.toml"
    path.write_text(RULE.format(level=30))
    return path


def edit(path, level: int) -> None:
    path.write_text(RULE.format(level=level))
    later = time.time_ns() + 10**9  # the registry sees the edit even within the same second
    os.utime(path, ns=(later, later))


def test_an_edited_rule_keeps_the_old_runs_marked_as_an_older_definition(rule_file, env):
    at = open_page("views/manager.py")
    at.selectbox(key="run.strategy").set_value("dip_rule").run()
    old = stored_id(manager_run(at))
    edit(rule_file, 25)
    manager_run(at)
    assert "Stored DEMO01" in texts(at.success), "a new definition replaces nothing"
    new = stored_id(at)
    assert new != old

    store = open_test_store(env)
    assert str(store.get_stats("DEMO01", "dip_rule", {"period": 14})["backtest_id"]) == new
    shown = table(browse(at))
    marks = dict(zip(shown["backtest_id"].astype(str), shown["definition"]))
    assert marks == {old: "older definition", new: ""}

    details = open_page("views/details.py", query={"id": old})
    assert "This backtest ran an older definition of 'dip_rule'" in texts(details.warning)
    assert "scope: demo · full history" in texts(details.caption)
    current = open_page("views/details.py", query={"id": new})
    assert "older definition" not in texts(current.warning)

    rule_file.unlink()
    shown = table(browse(at))
    assert set(shown["definition"]) == {"strategy missing"}
    assert len(shown) == 2, "runs of a removed strategy stay browsable"

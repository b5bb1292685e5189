"""End to end in a real browser: write a rule strategy in the Manager, preview it, save, run it.

The params table is typed cell by cell with the keyboard, as a user does; the entry is first
written with an undeclared name (the error and Save disabled), then fixed; the preview's
counts and chart appear before anything is saved; Save writes the file into a temporary
strategies folder, and its **Run ... now** button opens the Run mode, which runs it. Then a
sweep of it over two periods on three symbols shows its read-outs (no bar left behind), and the
Scanner, with the strategy picked, lists its signals joined with the stored stats of that exact
configuration (read from the table's CSV download). No request may leave 127.0.0.1.
"""
from __future__ import annotations

import re

import pandas as pd
import pytest

from core import rule_files
from core.store import BacktestStore
from tests.conftest import strategies_folder
from tests.e2e.test_browser import (charts_drawn, no_exception, outside_requests, run_backtest,
                                    settled)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAME = "above_sma"
#: A permissive entry: on the fixture data it fires within the Scanner's lookback on every
#: loadable symbol, so the Scanner has signal rows to join stats to.
ENTRY = "close > sma(close, period)"
EXIT = "close < sma(close, period)"
SYMBOL = "GOOG"
SWEPT = ("GOOG", "EURUSD", "SAP.DE")
PERIODS = (10, 14, 4)  # from, to, step: the default 14 (the Scanner's params) is a cell
LOOKBACK = 20


@pytest.fixture
def strategies(tmp_path, monkeypatch):
    """An empty strategies folder for the app (set before the server starts)."""
    return strategies_folder(tmp_path, monkeypatch)


@pytest.fixture
def url(strategies, request) -> str:
    """The app, started once the strategies folder is in its environment."""
    return request.getfixturevalue("app_url")


def press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(250)


#: The focus is in a cell editor's text box (text, number, or the kind dropdown's filter).
EDITING = """() => !!document.activeElement?.closest('.gdg-clip-region')
                  && ['INPUT', 'TEXTAREA'].includes(document.activeElement.tagName)"""
TYPED = "() => document.activeElement?.value ?? ''"
#: Counts the script runs the page has finished (the app root's script state turning
#: "notRunning"), so a step can wait for the rerun its own edit caused.
WATCH_RUNS = """() => {
    if (window.runsDone !== undefined) return;
    window.runsDone = 0;
    const app = document.querySelector('[data-testid="stApp"]');
    new MutationObserver(() => {
        if (app.getAttribute('data-test-script-state') === 'notRunning') window.runsDone += 1;
    }).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""


def type_cell(page, text: str, commit: str = "Tab", back: str = "Shift+Tab") -> None:
    """Open the selected cell's editor (Enter), wait until it has the focus, type ``text`` and
    commit with ``commit``; then wait for the rerun the edit causes to finish. Under load the
    grid now and then drops an edit (no rerun follows): the cell is then selected again with
    ``back`` and typed once more."""
    from playwright.sync_api import TimeoutError as Timeout

    for _ in range(3):
        runs = page.evaluate("window.runsDone")
        press(page, "Enter")
        page.wait_for_function(EDITING)
        page.keyboard.type(text)
        for _ in range(3):  # an editor still mounting can drop keystrokes: type them again
            if page.evaluate(TYPED) == text:
                break
            press(page, "Control+A")
            page.keyboard.type(text)
        assert page.evaluate(TYPED) == text, page.evaluate(TYPED)
        press(page, commit)
        try:
            page.wait_for_function("n => window.runsDone > n", arg=runs, timeout=20_000)
        except Timeout:
            press(page, back)
            continue
        settled(page)
        return
    pytest.fail(f"the params table did not take {text!r}")


def type_param_row(page, name: str, kind: str, *numbers: str) -> None:
    """Add a row to the params table and type name, kind, default, low, high into it.

    Enter opens a cell's editor and Tab commits it and moves right; the kind's dropdown
    commits with Enter, which moves down, so the cursor goes back up and right.
    """
    grid = page.get_by_test_id("stDataFrame").first
    grid.scroll_into_view_if_needed()
    settled(page)
    grid.hover()  # the toolbar shows while the pointer is over the table
    add = page.get_by_test_id("stElementToolbar").get_by_role("button", name="Add row")
    add.wait_for(state="visible")
    add.hover()
    add.click()
    settled(page)
    page.evaluate(WATCH_RUNS)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 90, box["y"] + 35 + 17)  # the name cell of the first row
    type_cell(page, name)
    type_cell(page, kind, commit="Enter", back="ArrowUp")
    press(page, "ArrowUp", "ArrowRight")
    for number in numbers:
        type_cell(page, number)


def write_rule(page, label: str, text: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Control+Enter")
    settled(page)


def test_write_preview_save_run_sweep_and_scan_a_strategy_in_the_browser(
        url, page, strategies, store_path, requests_seen):
    page.goto(f"{url}/manager")
    settled(page)
    page.get_by_test_id("stSidebar").get_by_text("New strategy", exact=True).click()
    name = page.get_by_label("Name", exact=True)
    name.fill(NAME)
    name.press("Enter")
    settled(page)
    type_param_row(page, "period", "int", "14", "2", "100")
    write_rule(page, "Entry rule", "close > sma(close, level)")
    page.get_by_text("unknown name 'level'").wait_for()
    page.get_by_text("Not declared yet").wait_for()
    assert page.get_by_role("button", name="Save strategy").is_disabled()

    write_rule(page, "Entry rule", ENTRY)
    write_rule(page, "Exit rule", EXIT)
    page.get_by_text("The exit rule is valid; params it uses: period").wait_for()
    pick(page, "Symbol", SYMBOL)
    no_exception(page)
    charts_drawn(page, 1)
    entries = page.get_by_test_id("stMetric").filter(has_text="Entries").inner_text()
    assert int(re.search(r"\d[\d,]*", entries.replace("Entries", "")).group().replace(",", ""))
    assert list(strategies.iterdir()) == [], "the preview writes nothing"

    page.get_by_role("button", name="Save strategy").click()
    page.get_by_text(f"Saved '{NAME}'").wait_for()
    settled(page)
    saved = rule_files.load_file(strategies / f"{NAME}.toml")
    assert saved.params[0].name == "period" and saved.params[0].default == 14
    assert saved.definition_hash == rule_files.draft_strategy(
        {"name": NAME, "entry": ENTRY, "exit": EXIT,
         "params": {"period": {"kind": "int", "default": 14}}}).definition_hash

    page.get_by_role("button", name=f"Run '{NAME}' now").click()
    page.get_by_role("button", name="Run backtest").wait_for()
    page.get_by_role("combobox", name="Symbol").wait_for(state="detached")  # the preview's
    settled(page)
    run_id = run_backtest(page, SYMBOL)
    stored = BacktestStore(str(store_path)).query(scope="all")
    assert stored["strategy"].tolist() == [NAME]
    assert stored[f"{NAME}_period"].tolist() == [14]

    sweep_it(page)
    stored = BacktestStore(str(store_path)).query(strategy=NAME, scope="all")
    assert len(stored) == len(SWEPT) * 2, "symbols x cells, the run's cell stored once"
    assert sorted(set(stored["symbol"])) == sorted(SWEPT)
    assert sorted(set(stored[f"{NAME}_period"])) == [10, 14]

    signals = scan_it(page)
    config = stored[stored[f"{NAME}_period"] == 14].set_index("symbol")
    assert str(config.loc[SYMBOL, "backtest_id"]) == run_id, "the run's record, not a copy"
    assert set(signals["strategy"]) == {NAME}
    assert set(signals["params"]) == {"period=14"}
    assert set(SWEPT) <= set(signals["symbol"]), signals["symbol"].tolist()
    for row in signals.itertuples(index=False):
        if row.symbol not in SWEPT:  # never backtested: its stats are missing, not made up
            assert pd.isna(row.backtest_id) and pd.isna(row.win_rate), row
            continue
        want = config.loc[row.symbol]
        assert str(row.backtest_id) == str(want["backtest_id"])
        assert pd.notna(row.win_rate) and row.num_trades == want["num_trades"] > 0
        assert abs(row.win_rate - want["win_rate"]) < 1e-9
    assert outside_requests(requests_seen) == []


def pick(page, label: str, option: str, tries: int = 3) -> None:
    """Choose ``option`` in the selectbox labelled ``label`` (typed to filter the list, then
    clicked) once the page has settled; again if a rerun redrew the list while it was open."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect

    for attempt in range(tries):
        settled(page)
        box = page.get_by_label(label, exact=True)
        expect(box).to_have_count(1)  # the previous mode's box of that name may linger a moment
        box.click()
        page.keyboard.type(option)
        try:
            page.get_by_role("option", name=option, exact=True).click(timeout=15_000)
            break
        except PlaywrightTimeout:
            if attempt == tries - 1:
                raise
            page.keyboard.press("Escape")
    settled(page)


def sweep_it(page) -> None:
    """Run a sweep of the saved strategy (two periods on SWEPT): no progress bar is left once
    the read-outs of the sweep just run are drawn."""
    page.get_by_test_id("stSidebar").get_by_text("Run a sweep", exact=True).click()
    page.get_by_role("button", name="Run backtest").wait_for(state="detached")
    settled(page)
    pick(page, "Strategy", f"{NAME} ({NAME})")
    page.get_by_role("spinbutton", name="oversold from").wait_for(state="detached")
    settled(page)
    symbols = page.get_by_role("textbox", name="Symbols", exact=True)
    symbols.fill(", ".join(SWEPT))
    symbols.press("Control+Enter")
    settled(page)
    for label, value in zip(("period from", "to", "step"), PERIODS):
        field = page.get_by_role("spinbutton", name=label, exact=True).first
        field.fill(str(value))
        field.press("Enter")
        settled(page)
    no_exception(page)
    page.get_by_role("button", name=f"Run sweep of {len(SWEPT) * 2} backtests").click()
    page.get_by_text("Sweep done").wait_for()
    settled(page)
    no_exception(page)
    # A six-cell sweep can end before the browser paints its bar (the bar's counting is
    # tested by tests/app/test_sweep.py); once done, no bar is left behind.
    assert page.get_by_test_id("stProgress").count() == 0
    done = page.get_by_text("Sweep done").inner_text()
    assert re.search(r"5 computed, 1 already stored and skipped", done), done
    page.get_by_text(f"{len(SWEPT) * 2} cells of {NAME}").wait_for()
    page.get_by_text("Top configurations by median sharpe_ratio").wait_for()
    cards = page.get_by_test_id("stMetric").filter(has_text="Symbols").inner_text()
    assert re.search(rf"\b{len(SWEPT)}\b", cards.replace("Symbols", "")), cards


def scan_it(page) -> pd.DataFrame:
    """Open the Scanner, pick the strategy alone with a lookback of LOOKBACK bars; returns the
    signals table as its CSV download holds it."""
    page.goto(page.url.split("/manager")[0])
    settled(page)
    sidebar = page.get_by_test_id("stSidebar")
    picker = sidebar.get_by_test_id("stMultiSelect").filter(has_text="Strategies")
    picker.get_by_role("button", name=re.compile("Clear all", re.I)).click()
    settled(page)
    picker.click()
    page.get_by_role("option", name=f"{NAME} ({NAME})", exact=True).click()
    page.keyboard.press("Escape")
    settled(page)
    lookback = page.get_by_label("Signal within the last N bars", exact=True)
    lookback.fill(str(LOOKBACK))
    lookback.press("Enter")
    settled(page)
    no_exception(page)
    page.get_by_text(re.compile(rf"signal\(s\) within the last {LOOKBACK} bar")).wait_for()
    settled(page)
    with page.expect_download() as download:
        page.locator(".st-key-scan-table-csv").get_by_role("button").click()  # key scan.table.csv
    return pd.read_csv(download.value.path(), dtype={"backtest_id": str})

"""End to end in a real browser: write a rule strategy in the Manager, preview it, save, run it.

The params table is typed cell by cell with the keyboard, as a user does; the entry is first
written with an undeclared name (the error and Save disabled), then fixed; the preview's
counts and chart appear before anything is saved; Save writes the file into a temporary
strategies folder, and its **Run ... now** button opens the Run mode, which runs it. No
request may leave 127.0.0.1.
"""
from __future__ import annotations

import re

import pytest

from core import rule_files
from core.store import BacktestStore
from tests.e2e.test_browser import (  # noqa: F401 - fixtures are found by name
    app_url, charts_drawn, no_exception, outside_requests, page, requests_seen, run_backtest,
    settled, store_path)

pytestmark = [pytest.mark.slow, pytest.mark.browser]

NAME = "rsi_browser"
ENTRY = "rsi(close, period) crosses_below 35"
EXIT = "rsi(close, period) crosses_above 65"
SYMBOL = "GOOG"


@pytest.fixture
def strategies(tmp_path, monkeypatch):
    """An empty strategies folder for the app (set before the server starts)."""
    folder = tmp_path / "strategies"
    folder.mkdir()
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(folder))
    return folder


@pytest.fixture
def url(strategies, request) -> str:
    """The app, started once the strategies folder is in its environment."""
    return request.getfixturevalue("app_url")


def press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)
        page.wait_for_timeout(250)


def type_param_row(page, name: str, kind: str, *numbers: str) -> None:
    """Add a row to the params table and type name, kind, default, low, high into it.

    Enter opens a cell's editor and Tab commits it and moves right; the kind's dropdown
    commits with Enter, which moves down, so the cursor goes back up and right.
    """
    grid = page.get_by_test_id("stDataFrame").first
    grid.hover()
    page.get_by_test_id("stElementToolbar").get_by_role("button", name="Add row").click()
    page.wait_for_timeout(500)
    box = grid.bounding_box()
    page.mouse.click(box["x"] + 90, box["y"] + 35 + 17)  # the name cell of the first row
    press(page, "Enter")
    page.keyboard.type(name)
    press(page, "Tab", "Enter")
    page.keyboard.type(kind)
    press(page, "Enter", "ArrowUp", "ArrowRight")
    for number in numbers:
        press(page, "Enter")
        page.keyboard.type(number)
        press(page, "Tab")
    settled(page)


def write_rule(page, label: str, text: str) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(text)
    box.press("Control+Enter")
    settled(page)


def test_write_preview_save_and_run_a_strategy_in_the_browser(url, page, strategies,
                                                              store_path, requests_seen):
    page.goto(f"{url}/manager")
    settled(page)
    page.get_by_test_id("stSidebar").get_by_text("New strategy", exact=True).click()
    name = page.get_by_label("Name", exact=True)
    name.fill(NAME)
    name.press("Enter")
    settled(page)
    type_param_row(page, "period", "int", "14", "2", "100")
    write_rule(page, "Entry rule", "rsi(close, period) crosses_below level")
    page.get_by_text("unknown name 'level'").wait_for()
    page.get_by_text("Not declared yet").wait_for()
    assert page.get_by_role("button", name="Save strategy").is_disabled()

    write_rule(page, "Entry rule", ENTRY)
    write_rule(page, "Exit rule", EXIT)
    page.get_by_text("The exit rule is valid; params it uses: period").wait_for()
    page.get_by_label("Symbol", exact=True).click()
    page.get_by_role("option", name=SYMBOL, exact=True).click()
    settled(page)
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
    settled(page)
    run_backtest(page, SYMBOL)
    stored = BacktestStore(str(store_path)).query()
    assert stored["strategy"].tolist() == [NAME]
    assert stored[f"{NAME}_period"].tolist() == [14]
    assert outside_requests(requests_seen) == []

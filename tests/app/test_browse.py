"""Browse stored: the selection stays on the backtests the user picked, through deletes."""
from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_test_store
from tests.app.test_pages import open_page, select_rows, texts


def browse(at: AppTest) -> AppTest:
    at.radio(key="manager.mode").set_value("browse").run()
    assert not at.exception, at.exception
    return at


def shown_ids(at: AppTest) -> list[str]:
    return [str(b) for b in at.dataframe[0].value["backtest_id"]]


def delete_buttons(at: AppTest) -> list:
    return [b for b in at.button if b.label.startswith("Delete ")]


def delete_selected(at: AppTest) -> AppTest:
    (button,) = delete_buttons(at)
    button.click().run()
    assert not at.exception, at.exception
    at.button(key="browse.delete.yes").click().run()
    assert not at.exception, at.exception
    return at


def test_deleting_the_last_row_works_and_leaves_nothing_selected(filled, env):
    store = open_test_store(env)
    keep = [str(b) for b in filled[:-3]]
    store.delete_backtest(keep)  # three left
    at = browse(open_page("views/manager.py"))
    ids = shown_ids(at)
    assert len(ids) == 3
    select_rows(at, [2])
    delete_selected(at)
    assert not at.error, texts(at.error)
    assert sorted(map(str, store.query()["backtest_id"])) == sorted(ids[:2])
    assert shown_ids(at) == ids[:2]
    assert not delete_buttons(at), "nothing is selected after a delete"
    assert "Deleted 1" in texts(at.success)


def test_deleting_the_first_of_two_does_not_select_the_other(filled, env):
    store = open_test_store(env)
    store.delete_backtest([str(b) for b in filled[:-2]])  # two left
    at = browse(open_page("views/manager.py"))
    first, second = shown_ids(at)
    select_rows(at, [0])
    delete_selected(at)
    assert shown_ids(at) == [second]
    assert not delete_buttons(at), "the other backtest must not be ticked"
    assert [str(b) for b in store.query()["backtest_id"]] == [second]


def test_a_filter_change_clears_the_selection(filled, env):
    at = browse(open_page("views/manager.py"))
    select_rows(at, [0])
    assert delete_buttons(at)
    at.selectbox(key="browse.order").set_value("num_trades").run()
    assert not at.exception, at.exception
    assert not delete_buttons(at), "row positions of the old order must not carry over"


def test_confirmation_names_the_backtests_and_a_new_selection_asks_again(filled, env):
    at = browse(open_page("views/manager.py"))
    ids = shown_ids(at)
    select_rows(at, [1])
    delete_buttons(at)[0].click().run()
    assert ids[1] in texts(at.warning)
    select_rows(at, [0, 1])
    assert not at.warning, "a pending confirmation is dropped when the selection changes"
    assert open_test_store(env).count() == len(filled)


def test_compare_shows_exactly_the_selected_backtests(filled, env):
    at = browse(open_page("views/manager.py"))
    ids = shown_ids(at)
    select_rows(at, [0, 2])
    at.button(key="browse.compare").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    compared = at.dataframe[-1].value
    assert len(compared) == 2
    shown = [re.search(r"#(\w+) ·", str(name)).group(1) for name in compared.iloc[:, 0]]
    assert sorted(shown) == sorted([ids[0], ids[2]])

"""Finding stored backtests by id, symbol or strategy across the whole store."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import ROOT, open_test_store

SEARCH_PAGE = f"""
import sys
sys.path.insert(0, {str(ROOT)!r})
import streamlit as st
from views import _ui
st.session_state["picked"] = _ui.backtest_search(_ui.store(), key="cmp", exclude=["2"])
"""


@pytest.fixture
def crowded(env):
    """One DEMO02 backtest stored first, then 600 DEMO01 sweep cells on top of it."""
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest, run_many

    provider = get_provider(load_settings())
    store = open_test_store(env)
    first = store.store_backtest(run_backtest(provider.load_bars("DEMO02"), "rsi_meanrev",
                                              {"period": 9}, symbol="DEMO02"))
    grid = [{"period": p, "oversold": o} for p in range(2, 302) for o in (25.0, 30.0)]
    store.store_many(run_many({"DEMO01": provider.load_bars("DEMO01")}, "rsi_meanrev", grid))
    assert store.count() == 601
    return str(first)


def test_search_reaches_past_the_newest_backtests(crowded, env):
    from views import _ui

    store = open_test_store(env)
    assert _ui.search_backtests(store, crowded)["backtest_id"].tolist() == [crowded]
    by_symbol = _ui.search_backtests(store, "DEMO02")
    assert by_symbol["backtest_id"].tolist() == [crowded]
    assert by_symbol["label"].iloc[0].startswith("DEMO02 · rsi_meanrev · ")
    assert len(_ui.search_backtests(store, "DEMO01")) == _ui.SEARCH_LIMIT
    assert len(_ui.search_backtests(store, "DEMO01 ma_crossover")) == 0
    assert _ui.search_backtests(store, "zzz9").empty


def test_picked_backtests_stay_picked_while_searching(crowded, env):
    at = AppTest.from_string(SEARCH_PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    at.text_input(key="cmp.search").set_value("DEMO02").run()
    at.multiselect(key="cmp").set_value([crowded]).run()
    at.text_input(key="cmp.search").set_value("5").run()
    assert not at.exception, at.exception
    assert list(at.session_state["picked"]) == [crowded]
    assert at.session_state["picked"][crowded].startswith("DEMO02 · rsi_meanrev")
    options = at.multiselect(key="cmp").options
    assert len(options) == 2 and options[1].endswith("[5]"), options
    at.text_input(key="cmp.search").set_value("2").run()
    assert not any(o.endswith("[2]") for o in at.multiselect(key="cmp").options), "excluded"

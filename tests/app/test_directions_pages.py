"""Short runs are told apart: Details and its trade log name the direction, Browse splits the
headline metrics by direction when long and short runs are listed together (issue #18)."""
from __future__ import annotations

from tests.app.conftest import open_test_store
from tests.app.test_browse import browse
from tests.app.test_pages import open_page, texts


def _store_long_and_short(env) -> tuple[str, str]:
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest

    bars = get_provider(load_settings()).load_bars("DEMO01")
    store = open_test_store(env)
    long_id = store.store_backtest(run_backtest(bars, "rsi_meanrev", {"period": 9}))
    short_id = store.store_backtest(
        run_backtest(bars, "rsi_meanrev", {"period": 9, "direction": "short"}))
    return long_id, short_id


def test_details_names_a_short_run_and_its_trades(env):
    _, short_id = _store_long_and_short(env)
    at = open_page("views/details.py", {"id": short_id})
    assert texts(at.subheader) == "DEMO01 · RSI mean reversion · short"
    logs = [df.value for df in at.dataframe if "direction" in df.value.columns]  # first tab
    assert logs and set(logs[0]["direction"].astype(str)) == {"short"}


def test_browse_splits_the_metrics_by_direction(env):
    long_id, short_id = _store_long_and_short(env)
    at = browse(open_page("views/manager.py"))
    listing = at.dataframe[0].value
    sides = dict(zip(listing["backtest_id"].astype(str), listing["direction"]))
    assert sides == {long_id: "long", short_id: "short"}
    (split,) = [df.value for df in at.dataframe if "backtests" in df.value.columns]
    assert split["direction"].tolist() == ["long", "short"]
    assert split["backtests"].tolist() == [1, 1]
    store = open_test_store(env)
    short_trades = store.get_stats("DEMO01", "rsi_meanrev", {"period": 9, "direction": "short"},
                                   None)["num_trades"]
    assert split.set_index("direction").loc["short", "trades"] == short_trades

"""Every page through Streamlit's AppTest: empty store, filled store, the run flow, bad input."""
from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP, open_test_store

TIMEOUT = 120  # the first run imports numba and generates the demo universe


def open_page(page: str | None = None, query: dict | None = None) -> AppTest:
    """Run the app, switch to ``page`` (e.g. "views/manager.py") and run it; no exception."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    if query:
        at.query_params.update(query)
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def sidebar_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in at.sidebar.caption)


@pytest.mark.parametrize("page", [None, "views/manager.py", "views/details.py"])
def test_pages_render_on_an_empty_store_with_a_hint(env, page):
    at = open_page(page)
    assert not at.error, texts(at.error)
    assert at.info, "an empty store shows a hint of what to do first"
    assert "Backtests stored** 0" in sidebar_text(at)
    assert "synthetic demo data" in sidebar_text(at)


@pytest.mark.parametrize("mode", ["sweep", "browse"])
def test_manager_modes_render_on_an_empty_store_with_a_hint(env, mode):
    at = open_page("views/manager.py")
    at.radio(key="manager.mode").set_value(mode).run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert "no" in texts(at.info).lower()


def test_sidebar_names_the_store_and_counts_backtests(filled, env):
    at = open_page()
    text = sidebar_text(at)
    assert str(env / "store.zarr") in text
    assert f"Backtests stored** {len(filled)}" in text


def manager_run(at: AppTest, symbol: str = "DEMO01") -> AppTest:
    at.text_input(key="run.symbol").set_value(symbol)
    at.button(key="run.go").click().run()
    assert not at.exception, at.exception
    return at


def test_run_a_backtest_stores_it_and_links_to_details(env):
    at = manager_run(open_page("views/manager.py"))
    assert not at.error, texts(at.error)
    store = open_test_store(env)
    assert store.count() == 1
    stored = store.query()
    assert stored["symbol"].tolist() == ["DEMO01"]
    assert "Stored" in texts(at.success)
    assert str(stored["backtest_id"].iloc[0]) in texts(at.success)
    assert "Backtests stored** 1" in sidebar_text(at)
    # The same configuration again replaces the stored result, and says so.
    at.button(key="run.go").click().run()
    assert "Replaced the stored result" in texts(at.success)
    assert store.count() == 1


BAD_PARAMS_JSON = (
    ('{"period": 14, "oversold": 30', "not valid JSON"),
    ('[14, 30, 70]', "must be an object"),
    ('{"period": 1}', "period"),
    ('{"perod": 14}', "Did you mean 'period'"),
    ('{"oversold": 80, "overbought": 70}', "oversold"),
)


def test_bad_params_json_shows_an_error_and_stores_nothing(env):
    at = open_page("views/manager.py")
    at.toggle(key="run.params.use_json").set_value(True).run()
    for json_text, expected in BAD_PARAMS_JSON:
        at.text_area(key="run.params.json.rsi_meanrev").set_value(json_text)
        manager_run(at)
        assert expected in texts(at.error), json_text
        assert not at.success
    assert open_test_store(env).count() == 0
    at.text_area(key="run.params.json.rsi_meanrev").set_value('{"period": 9}')
    manager_run(at)  # valid JSON is used as typed
    assert open_test_store(env).query()["rsi_period"].tolist() == [9]


def test_unknown_symbol_and_empty_date_range_are_errors(env):
    import datetime as dt

    at = manager_run(open_page("views/manager.py"), symbol="DEMO1")
    assert "Unknown symbol 'DEMO1'" in texts(at.error)
    assert "Did you mean" in texts(at.error)
    at.date_input(key="run.start").set_value(dt.date(2030, 1, 1))
    manager_run(at, symbol="DEMO01")
    assert "no bars between" in texts(at.error)
    at.date_input(key="run.start").set_value(None)
    manager_run(at, symbol="../etc")
    assert "not allowed" in texts(at.error)
    assert open_test_store(env).count() == 0


def test_deep_link_renders_metric_cards_and_charts(filled):
    at = open_page("views/details.py", query={"id": str(filled[0])})
    assert not at.error, texts(at.error)
    labels = [m.label for m in at.metric]
    for title in ("Win rate", "Trades", "Sharpe", "CAGR", "Max drawdown", "Total return",
                  "Expectancy", "Profit factor", "Exposure"):
        assert title in labels
    assert "DEMO01" in texts(at.subheader)
    charts = at.get("vega_lite_chart")
    assert len(charts) >= 4  # equity, drawdown, price, monthly (+ histogram when trades)
    assert at.dataframe, "the trade log is shown"


def test_unknown_deep_link_id_is_an_error_not_a_traceback(filled):
    at = open_page("views/details.py", query={"id": "999999"})
    assert "999999" in texts(at.error)


def open_details_tab(at: AppTest, label: str) -> AppTest:
    """Click the Details page's tab ``label`` (a tab's content is drawn only while open)."""
    at.session_state["details.tab"] = label
    at.run()
    assert not at.exception, at.exception
    return at


def test_details_draws_only_the_open_tab(filled):
    bid = str(filled[1])
    at = open_page("views/details.py", query={"id": bid})
    assert [t.label for t in at.tabs] == ["Trade log", "Params and exit rule", "Note and tags",
                                          "Compare"]
    assert at.dataframe and not at.text_area and not at.multiselect, "only the trade log"
    open_details_tab(at, "Note and tags")
    assert [t.key for t in at.text_area] == [f"note.text.{bid}"]
    assert not at.dataframe and not at.multiselect
    open_details_tab(at, "Compare")
    assert [m.key for m in at.multiselect] == [f"compare.{bid}"] and not at.text_area


def test_note_and_tags_are_saved_with_the_backtest(filled, env):
    bid = str(filled[1])
    at = open_details_tab(open_page("views/details.py", query={"id": bid}), "Note and tags")
    at.text_area(key=f"note.text.{bid}").set_value("looks robust")
    at.text_input(key=f"note.tags.{bid}").set_value("rsi, keep")
    at.button[[b.label for b in at.button].index("Save note and tags")].click().run()
    assert not at.exception
    details = open_test_store(env).get_detailed_results(bid)
    assert details["note"] == "looks robust"
    assert details["tags"] == ["rsi", "keep"]


def test_scanner_shows_stats_columns_and_fills_missing_ones(env):
    at = open_page()
    at.number_input(key="scan.lookback").set_value(30).run()
    assert not at.exception
    table = at.dataframe[0].value
    for column in ("win_rate", "num_trades", "sharpe_ratio", "cagr", "max_drawdown",
                   "expectancy", "pooled_trades", "pooled_win_rate"):
        assert column in table.columns
    assert table["win_rate"].isna().all()  # empty store: stats missing, shown as missing
    fill = [b for b in at.button if b.label.startswith("Backtest these")]
    assert fill, "missing stats offer the one-click fill"
    fill[0].click().run()
    assert not at.exception
    filled_table = at.dataframe[0].value
    assert filled_table["num_trades"].notna().all()
    assert open_test_store(env).count() == len(table)
    assert not [b for b in at.button if b.label.startswith("Backtest these")]


def test_scanner_stat_filter(filled):
    at = open_page()
    at.number_input(key="scan.lookback").set_value(250).run()
    at.checkbox(key="scan.only_stats").check().run()
    assert not at.exception
    if at.dataframe:
        shown = at.dataframe[0].value
        assert set(shown["symbol"]) <= {"DEMO01", "DEMO02", "DEMO03"}
        assert shown["num_trades"].notna().all()


def test_scanner_typed_universe_errors(env):
    at = open_page()
    at.radio(key="scan.universe.kind").set_value("typed").run()
    at.text_area(key="scan.universe.typed").set_value("DEMO01, ../x").run()
    assert "not allowed" in texts(at.error)
    at.text_area(key="scan.universe.typed").set_value("  ").run()
    assert "universe is empty" in texts(at.error)
    assert not at.exception


def test_browse_filters_and_deletes_after_confirmation(filled, env):
    at = open_page("views/manager.py")
    at.radio(key="manager.mode").set_value("browse").run()
    assert not at.exception
    table = at.dataframe[0].value
    assert len(table) == len(filled)
    at.slider(key="browse.min_win").set_value(100).run()
    assert not at.exception
    at.slider(key="browse.min_win").set_value(0).run()
    select_rows(at, [0, 1])
    delete = [b for b in at.button if b.label.startswith("Delete 2 selected")]
    assert delete
    delete[0].click().run()
    assert "cannot be undone" in texts(at.warning)
    assert open_test_store(env).count() == len(filled)  # nothing deleted before confirming
    at.button(key="browse.delete.yes").click().run()
    assert not at.exception
    assert open_test_store(env).count() == len(filled) - 2


def select_rows(at: AppTest, rows: list[int]) -> AppTest:
    """Tick ``rows`` (positions) in the Browse table, as a click on the row checkboxes does."""
    keys = [k for k, v in at.session_state.items()
            if k.startswith("browse.table") and isinstance(v, dict) and "selection" in v]
    assert len(keys) == 1, keys
    at.session_state[keys[0]] = {"selection": {"rows": rows, "columns": [], "cells": []}}
    return at.run()


def sweep_page(at: AppTest) -> AppTest:
    """Manager in sweep mode with a 3 x 3 grid over 2 symbols and 2 exit rules (36 cells)."""
    at.radio(key="manager.mode").set_value("sweep").run()
    base = "sweep.rsi_meanrev"
    at.number_input(key=f"{base}.period.start").set_value(10)
    at.number_input(key=f"{base}.period.stop").set_value(14)
    at.number_input(key=f"{base}.period.step").set_value(2)
    at.number_input(key=f"{base}.oversold.start").set_value(25.0)
    at.number_input(key=f"{base}.oversold.stop").set_value(35.0)
    at.number_input(key=f"{base}.oversold.step").set_value(5.0)
    at.text_area(key="sweep.symbols").set_value("DEMO01, DEMO02")
    at.text_input(key="sweep.exits.stop_loss").set_value("0.05")
    at.run()
    assert not at.exception, at.exception
    return at


def test_sweep_shows_grid_size_runs_stores_and_plots(env):
    at = sweep_page(open_page("views/manager.py"))
    assert "36 cells" in [m.value for m in at.metric]
    run = [b for b in at.button if b.label.startswith("Run sweep")]
    run[0].click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert open_test_store(env).count() == 36
    assert "36 computed" in texts(at.success)
    assert at.get("vega_lite_chart"), "the parameter heatmap is drawn"
    assert "stability score" in texts(at.caption)
    top = at.dataframe[0].value
    assert {"params", "exit_rule", "sharpe_ratio", "trades"} <= set(top.columns)
    assert "Pooled win rate" in [m.label for m in at.metric]
    # Sliced by one symbol and one exit rule, with another metric, it still renders.
    at.selectbox(key="sweep.hm.metric").set_value("win_rate")
    at.selectbox(key="sweep.hm.symbol").set_value("DEMO02").run()
    assert not at.exception
    assert not at.error, texts(at.error)


def test_sweep_over_the_cap_is_refused_with_the_number(env, monkeypatch):
    monkeypatch.setenv("HINDSIGHT_MAX_GRID_CELLS", "20")
    at = sweep_page(open_page("views/manager.py"))
    message = texts(at.error)
    assert "36" in message and "20" in message
    assert not [b for b in at.button if b.label.startswith("Run sweep")]
    assert open_test_store(env).count() == 0


def test_sweep_bad_exit_values_are_an_error(env):
    at = sweep_page(open_page("views/manager.py"))
    at.text_input(key="sweep.exits.take_profit").set_value("0.1, ten").run()
    assert "'ten' is not a number" in texts(at.error)
    assert not at.exception


def test_scanner_on_the_users_folder(env, monkeypatch):
    """The folder source lists the user's CSV files; a missing folder is an error, not a crash."""
    from core.data.demo import generate_demo_universe

    folder = env / "prices"
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "folder")
    monkeypatch.setenv("HINDSIGHT_DATA_FOLDER", str(folder))
    at = open_page()
    assert str(folder) in texts(at.error)
    folder.mkdir()
    for symbol, bars in generate_demo_universe(count=3, years=3).items():
        bars.rename_axis("Date").to_csv(folder / f"MY{symbol[-1]}.csv")
    at.run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert "3 of 3 symbols from folder" in texts(at.caption)


def test_details_compare_overlays_equity_and_lists_metrics(filled):
    at = open_details_tab(open_page("views/details.py", query={"id": str(filled[0])}), "Compare")
    at.multiselect(key=f"compare.{filled[0]}").set_value([str(filled[2]), str(filled[4])]).run()
    assert not at.exception, at.exception
    compared = at.dataframe[-1].value
    assert len(compared) == 3
    assert "Equity compared" in str([c.proto.spec for c in at.get("vega_lite_chart")])


def test_details_of_a_sweep_cell_recomputes_its_equity(env):
    """Sweep cells are stored without equity curves; the page recomputes and draws them."""
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_many

    provider = get_provider(load_settings())
    batch = run_many({"DEMO04": provider.load_bars("DEMO04")}, "rsi_meanrev",
                     [{"period": 12}], with_trades=True)
    (bid,) = open_test_store(env).store_many(batch)
    at = open_page("views/details.py", query={"id": str(bid)})
    assert not at.error, texts(at.error)
    assert "equity recomputed" in texts(at.caption)
    assert len(at.get("vega_lite_chart")) >= 4


def test_browse_filters_on_metrics_and_params(filled):
    at = open_page("views/manager.py")
    at.radio(key="manager.mode").set_value("browse").run()
    at.selectbox(key="browse.strategy").set_value("rsi_meanrev").run()
    at.slider(key="browse.rsi_meanrev.period").set_value((12.0, 20.0)).run()
    assert not at.exception, at.exception
    shown = at.dataframe[0].value
    assert len(shown) == 3 and shown["params"].str.contains("period=14").all()
    at.number_input(key="browse.trades").set_value(10_000).run()
    assert "No stored backtest matches" in texts(at.info)

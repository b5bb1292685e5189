"""Manager mode "Walk-forward": run one with a progress bar, then see it listed, its windows
table, the efficiency card and the out-of-sample equity against buy and hold."""
from __future__ import annotations

import pandas as pd
import pyarrow as pa
from streamlit.testing.v1 import AppTest

from core.walkforward import list_walk_forwards, load_walk_forward
from tests.app.conftest import open_test_store
from tests.app.test_pages import open_page, texts
from views import _charts, _walkforward


def walkforward_mode() -> AppTest:
    at = open_page("views/manager.py")
    at.radio(key="manager.mode").set_value("walkforward").run()
    assert not at.exception, at.exception
    return at


def drawn(at: AppTest) -> pd.DataFrame:
    """Every row of every chart dataset the page sends the browser (date, value, series)."""
    return pd.concat([pa.ipc.open_stream(d.data.data).read_all().to_pandas()
                      for chart in at.get("vega_lite_chart") for d in chart.proto.datasets])


def run_one(at: AppTest, symbol: str = "DEMO02") -> AppTest:
    """An anchored walk-forward of RSI periods 10 and 14 over 500-bar in-sample windows."""
    at.text_input(key="wf.symbol").set_value(symbol)
    at.number_input(key="wf.rsi_meanrev.period.start").set_value(10)
    at.number_input(key="wf.rsi_meanrev.period.stop").set_value(14)
    at.number_input(key="wf.rsi_meanrev.period.step").set_value(4)
    at.radio(key="wf.scheme").set_value("anchored")
    at.number_input(key="wf.is").set_value(500)
    at.number_input(key="wf.oos").set_value(250)
    at.button(key="wf.go").click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def test_an_empty_store_says_how_to_run_one(env):
    at = walkforward_mode()
    assert not at.error, texts(at.error)
    assert "No walk-forward stored yet" in texts(at.info)


def test_run_one_and_see_its_windows_efficiency_and_chart(env):
    at = run_one(walkforward_mode())
    store = open_test_store(env)
    listed = list_walk_forwards(store)
    assert len(listed) == 1 and not (env / "walkforward.zarr").exists()
    parent = listed["parent_id"].iloc[0]
    report = load_walk_forward(store, parent)
    assert report.spec["scheme"] == "anchored" and report.spec["in_sample"] == 500
    assert len(report.windows) > 1

    assert at.dataframe[0].value["parent_id"].tolist() == [parent]  # the stored list
    assert at.selectbox(key=_walkforward.SELECTED).value == parent
    windows = at.dataframe[1].value
    assert windows["oos_id"].tolist() == report.windows["oos_id"].tolist()
    assert windows["oos_return"].tolist() == report.windows["oos_return"].tolist()
    cards = {m.label: m.value for m in at.metric}
    summary = report.summary()
    assert cards["Walk-forward efficiency"] == f"{summary['wf_efficiency']:.2f}"
    assert cards["Windows with a winner"] == (f"{summary['windows_with_winner']} of "
                                              f"{summary['windows']}")

    lines = drawn(at)
    assert set(lines["series"]) == {_walkforward.OOS_LABEL, _charts.BENCHMARK_LABEL}
    oos = lines[lines["series"] == _walkforward.OOS_LABEL]
    assert oos["value"].iloc[-1] == report.oos_equity.iloc[-1]
    hold = lines[lines["series"] == _charts.BENCHMARK_LABEL]
    assert pd.Timestamp(hold["date"].iloc[0]) == report.windows["oos_start"].iloc[0]


def test_the_list_offers_every_stored_walk_forward(env):
    at = run_one(walkforward_mode(), "DEMO02")
    first = at.selectbox(key=_walkforward.SELECTED).value
    at = run_one(at, "DEMO03")
    second = at.selectbox(key=_walkforward.SELECTED).value
    assert first != second  # the one just run is shown
    assert at.dataframe[0].value["parent_id"].tolist() == [second, first]  # newest first
    at.selectbox(key=_walkforward.SELECTED).set_value(first).run()
    assert not at.exception, at.exception
    assert "DEMO02 · rsi_meanrev" in texts(at.subheader)


def test_windows_too_long_for_the_data_are_named_before_anything_is_stored(env):
    at = walkforward_mode()
    at.number_input(key="wf.is").set_value(100_000)
    at.button(key="wf.go").click().run()
    assert not at.exception, at.exception
    assert "fewer than one window" in texts(at.error)
    assert list_walk_forwards(open_test_store(env)).empty


def test_an_old_walkforward_store_beside_the_store_is_imported_and_listed(env):
    from core.config import load_settings
    from core.data import get_provider
    from core.store import open_store
    from core.walkforward import walk_forward

    bars = get_provider(load_settings()).load_bars("DEMO01")
    with open_store(str(env / "walkforward.zarr"), "r+") as old:
        report = walk_forward(bars, "rsi_meanrev", {"period": [10, 14]}, in_sample=500,
                              out_of_sample=250, store=old)
    at = walkforward_mode()
    assert at.dataframe[0].value["parent_id"].tolist() == [report.parent_id]
    assert (env / "walkforward.zarr.imported").is_dir()
    assert "DEMO01 · rsi_meanrev" in texts(at.subheader)

"""The Backtest Details page on real-format data (tests/fixtures/realdata) through AppTest.

Zero trades on monthly crypto, hourly FX with 5 decimals, a 10-year daily stock: what the page
shows (messages instead of degenerate charts, the buy-and-hold card, the exit-reason summary,
prices in the instrument's decimals) and how much it sends the browser to draw.
"""
from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import APP, ROOT, open_test_store

REALDATA = ROOT / "tests" / "fixtures" / "realdata"
TIMEOUT = 120


@pytest.fixture
def realdata(env, monkeypatch):
    """The app on the real-format fixture folder; a function storing one backtest of it
    (returns its id, the result and the bars)."""
    monkeypatch.setenv("HINDSIGHT_DATA_SOURCE", "folder")
    monkeypatch.setenv("HINDSIGHT_DATA_FOLDER", str(REALDATA))
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest

    provider = get_provider(load_settings())
    store = open_test_store(env)

    def stored(symbol: str, params: dict, exit_rule=None):
        bars = provider.load_bars(symbol)
        result = run_backtest(bars, "rsi_meanrev", params, exit_rule, symbol=symbol)
        return str(store.store_backtest(result)), result, bars

    return stored


def details_page(bid: str, tab: str | None = None) -> AppTest:
    """The Details page of ``bid``, with ``tab`` opened (only the open tab is drawn)."""
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.run()
    at.query_params["id"] = bid
    at.switch_page("views/details.py").run()
    if tab:
        at.session_state["details.tab"] = tab
        at.run()
    assert not at.exception, at.exception
    assert not at.error, [e.value for e in at.error]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def chart_specs(at: AppTest) -> list[dict]:
    """Every chart's spec, the parts of a vertical stack each counted as one."""
    specs = []
    for chart in at.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        specs += spec.get("vconcat", [spec])
    return specs


def chart_titles(at: AppTest) -> list[str]:
    return [spec.get("title") for spec in chart_specs(at)]


def test_zero_trades_show_messages_not_degenerate_charts(realdata):
    bid, result, bars = realdata("BTCUSD", {"period": 14, "oversold": 5})
    assert len(result.trades) == 0
    at = details_page(bid)
    info = texts(at.info)
    assert "No trades" in info
    assert "No drawdown" in info
    assert "Drawdown" not in chart_titles(at)  # no axis reading 0.000000 %
    # buy and hold spans far more than 10x: the log scale is on, so the flat line stays visible
    toggle = at.toggle(key=f"details.log.{bid}")
    assert toggle.value is True
    equity = next(s for s in chart_specs(at) if s.get("title") == "Equity")
    assert equity["encoding"]["y"]["scale"]["type"] == "log"
    toggle.set_value(False).run()
    equity = next(s for s in chart_specs(at) if s.get("title") == "Equity")
    assert equity["encoding"]["y"]["scale"].get("type") != "log"


def test_buy_and_hold_card_and_summary_by_exit_reason(realdata):
    bid, result, bars = realdata("GOOG", {"period": 14}, {"type": "stop_loss", "pct": 0.1})
    at = details_page(bid)
    cards = {m.label: m for m in at.metric}
    assert "Buy and hold" in cards
    close = bars["close"]
    assert cards["Buy and hold"].value == f"{(close.iloc[-1] / close.iloc[0] - 1) * 100:.1f} %"
    summary = at.table[0].value
    assert list(summary.index)[-1] == "all"
    assert summary["trades"].iloc[-1] == f"{len(result.trades):,}"
    assert {"win rate", "avg return"} <= set(summary.columns)


def test_fx_prices_keep_their_five_decimals(realdata):
    bid, result, bars = realdata("EURUSD", {"period": 14})
    assert len(result.trades) > 0
    at = details_page(bid)
    trade_log = at.dataframe[0]
    columns = json.loads(trade_log.proto.columns)
    assert columns["entry_price"]["type_config"]["format"] == "%.5f"
    assert columns["entry_time"]["type_config"]["format"] == "YYYY-MM-DD HH:mm"
    price = next(s for s in chart_specs(at) if s.get("title") == "Price and trades")
    tooltip = price["layer"][1]["encoding"]["tooltip"]
    assert "price_text" in {t["field"] for t in tooltip}


def test_ten_years_of_daily_bars_send_a_light_page(filled):
    """Every chart is drawn from a few hundred points per line, not one per bar."""
    at = details_page(str(filled[0]))
    rows = 0
    for chart in at.get("vega_lite_chart"):
        for dataset in chart.proto.datasets:
            import pyarrow as pa

            rows += pa.ipc.open_stream(dataset.data.data).read_all().num_rows
    assert rows <= 4_000, rows  # 12 years of demo bars were ~12,000 rows across the charts


def test_compare_searches_the_whole_store(filled):
    at = details_page(str(filled[0]), tab="Compare")
    picker = at.multiselect(key=f"compare.{filled[0]}")
    assert len(picker.options) == len(filled) - 1
    at.text_input(key=f"compare.{filled[0]}.search").set_value("DEMO03").run()
    picker = at.multiselect(key=f"compare.{filled[0]}")
    assert len(picker.options) == 2 and all("DEMO03" in o for o in picker.options)


def test_compare_legend_names_lead_with_the_id(filled):
    at = details_page(str(filled[0]), tab="Compare")
    at.multiselect(key=f"compare.{filled[0]}").set_value([str(filled[1])]).run()
    spec = next(s for s in chart_specs(at) if s.get("title") == "Equity compared")
    assert spec["encoding"]["color"]["legend"]["labelLimit"] == 0
    compared = at.dataframe[-1].value["backtest"].tolist()
    assert compared[0].startswith(f"#{filled[0]} ") and compared[1].startswith(f"#{filled[1]} ")


def test_sidebar_picker_labels_lead_with_the_id(filled):
    """A narrow box cuts long labels: the id comes first so two backtests never read the same."""
    at = details_page(str(filled[0]))
    options = at.sidebar.selectbox(key=f"details.pick.{filled[0]}").options
    assert len(options) == len(filled) and len(set(o[:8] for o in options)) == len(filled)
    assert all(o.startswith("#") for o in options)

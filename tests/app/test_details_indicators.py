"""Backtest Details draws the strategy's indicators: lines over the price, oscillators below."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from core import indicators
from tests.app.conftest import open_test_store
from tests.app.test_details_page import chart_specs, details_page
from views import _charts


def frames(at) -> list[pd.DataFrame]:
    """Every dataset the page sends the browser to draw."""
    return [pa.ipc.open_stream(d.data.data).read_all().to_pandas()
            for chart in at.get("vega_lite_chart") for d in chart.proto.datasets]


def drawn_series(at, label: str) -> pd.DataFrame:
    """The rows drawn for the indicator ``label`` (columns date, value)."""
    rows = [f[f["series"] == label] for f in frames(at) if "series" in f]
    return pd.concat(rows)[["date", "value"]]


def spec_of(at, title: str) -> dict:
    return next(s for s in chart_specs(at) if s.get("title") == title)


def line_labels(spec: dict) -> list[str]:
    """The legend labels of a (layered) chart's indicator lines."""
    return [label for layer in spec.get("layer", [spec])
            if layer.get("encoding", {}).get("color", {}).get("field") == "series"
            for label in layer["encoding"]["color"]["scale"]["domain"]]


@pytest.fixture
def stored_run(env):
    """Store one backtest of ``strategy`` on DEMO01; returns its id and the bars."""
    from core.config import load_settings
    from core.data import get_provider
    from core.engine import run_backtest

    bars = get_provider(load_settings()).load_bars("DEMO01")

    def stored(strategy: str, params: dict) -> tuple[str, pd.DataFrame]:
        result = run_backtest(bars, strategy, params, symbol="DEMO01")
        return str(open_test_store(env).store_backtest(result)), bars

    return stored


def test_rsi_backtest_shows_its_rsi_in_a_pane_below_with_the_levels(stored_run):
    bid, bars = stored_run("rsi_meanrev", {"period": 10, "oversold": 25})
    at = details_page(bid)
    assert at.toggle(key=f"details.indicators.{bid}").value is True
    rsi = spec_of(at, "RSI")
    assert line_labels(rsi) == ["RSI(10)"]
    assert rsi["layer"][0]["encoding"]["color"]["legend"]["labelLimit"] == 0
    assert rsi["layer"][1]["mark"]["strokeDash"]  # levels are dashed rules
    levels = next(f for f in frames(at) if "text" in f)
    assert sorted(levels["text"]) == ["overbought 70", "oversold 25"]
    drawn = drawn_series(at, "RSI(10)")
    expected = pd.Series(indicators.rsi(bars["close"], 10), index=_charts.naive_index(bars.index))
    np.testing.assert_allclose(drawn["value"], expected.loc[pd.DatetimeIndex(drawn["date"])])
    assert line_labels(spec_of(at, "Price and trades")) == []  # RSI is no price


def test_the_toggle_hides_the_indicators(stored_run):
    bid, _ = stored_run("rsi_meanrev", {})
    at = details_page(bid)
    at.toggle(key=f"details.indicators.{bid}").set_value(False).run()
    titles = [s.get("title") for s in chart_specs(at)]
    assert "Price and trades" in titles and "RSI" not in titles
    assert not any("series" in f and "RSI(14)" in set(f["series"]) for f in frames(at))


def test_a_rule_strategy_draws_its_trend_average_over_the_price(stored_run):
    bid, bars = stored_run("rsi_trend", {"period": 9, "trend": 50})
    at = details_page(bid)
    price = spec_of(at, "Price and trades")
    assert line_labels(price) == ["SMA(50)"]
    assert price["resolve"]["scale"]["color"] == "independent"  # trade markers keep theirs
    assert line_labels(spec_of(at, "RSI")) == ["RSI(9)"]
    drawn = drawn_series(at, "SMA(50)")
    expected = pd.Series(indicators.sma(bars["close"], 50), index=_charts.naive_index(bars.index))
    np.testing.assert_allclose(drawn["value"], expected.loc[pd.DatetimeIndex(drawn["date"])])
    assert len(drawn) <= _charts.MAX_POINTS and drawn["value"].notna().all()
    panel = next(json.loads(c.proto.spec) for c in at.get("vega_lite_chart")
                 if "Price and trades" in c.proto.spec)
    assert panel["autosize"]["type"] == "fit-x"  # the stack of panes stays within the page


def test_price_scale_indicators_share_the_price_axis(stored_run):
    bid, _ = stored_run("bollinger_reversion", {"period": 20, "num_std": 2.0})
    at = details_page(bid)
    price = spec_of(at, "Price and trades")
    assert line_labels(price) == ["BB upper(20, 2)", "BB mid(20)", "BB lower(20, 2)"]
    colors = price["layer"][-1]["encoding"]["color"]["scale"]["range"]
    assert len(set(colors)) == 3 and not {_charts.UP, _charts.DOWN, _charts.NEUTRAL} & set(colors)
    assert "RSI" not in [s.get("title") for s in chart_specs(at)]
    shown = json.dumps(price["layer"][-1]["encoding"]["y"])
    assert '"title": "close"' in shown  # one price axis, not "close, value"


def test_indicators_are_missing_with_a_reason_when_they_cannot_be_computed():
    from core.details import strategy_indicators

    close = np.linspace(100.0, 120.0, 60)
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close},
                        index=pd.bdate_range("2024-01-01", periods=60))
    series, reason = strategy_indicators({"strategy": "rsi_meanrev", "params": {"period": 5}},
                                         bars)
    assert [s.label for s in series] == ["RSI(5)"] and reason is None
    assert strategy_indicators({"strategy": "rsi_meanrev", "params": {}}, None)[0] is None
    series, reason = strategy_indicators({"strategy": "gone_rule", "params": {}}, bars)
    assert series is None and "gone_rule" in reason

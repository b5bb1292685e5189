"""Details charts a trader can read: the pure helpers and the Vega-Lite specs they build.

Each test inspects what the browser is sent (the chart spec), so a label without a year, a
price rounded to 2 decimals, a truncated legend or a skipped year fails here without a browser.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.details import buy_and_hold_return, exit_reason_summary
from views import _charts


def walk(index: pd.DatetimeIndex, start: float, vol: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, len(index))))


def bars_of(close: np.ndarray, index: pd.DatetimeIndex) -> pd.DataFrame:
    return pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0}, index=index)


DAILY = pd.bdate_range("2004-08-19", "2013-12-31")
HOURLY = pd.date_range("2023-01-02", periods=2040, freq="h")
MONTHLY = pd.date_range("2014-01-01", periods=132, freq="MS")


def trades_of(index: pd.DatetimeIndex, close: np.ndarray) -> pd.DataFrame:
    n = len(index)
    entries, exits = np.array([n // 100, n // 8, n // 2]), np.array([n // 20, n // 5, n * 3 // 5])
    returns = close[exits] / close[entries] - 1
    return pd.DataFrame({"entry_time": index[entries], "entry_price": close[entries],
                         "exit_time": index[exits], "exit_price": close[exits],
                         "units": 100.0, "pnl": returns * 1000, "return": returns,
                         "bars_held": exits - entries,
                         "exit_reason": ["signal", "stop_loss", "signal"]})


def x_axes(spec: dict) -> list[dict]:
    """Every x encoding of a (possibly layered) chart spec that has an axis."""
    layers = spec.get("layer", [spec])
    return [layer["encoding"]["x"] for layer in layers
            if isinstance(layer.get("encoding", {}).get("x"), dict)
            and "axis" in layer["encoding"]["x"]]


# --- time axes --------------------------------------------------------------------------------

@pytest.mark.parametrize("index", [DAILY, HOURLY, MONTHLY], ids=["daily", "hourly", "monthly"])
def test_every_time_axis_label_names_its_year(index):
    close = walk(index, 100.0, 0.01)
    equity = pd.Series(close * 1000, index=index)
    for chart in (_charts.equity_chart(equity, equity * 0.9), _charts.drawdown_chart(equity),
                  _charts.price_chart(bars_of(close, index), trades_of(index, close))):
        axes = x_axes(chart.to_dict())
        assert axes, "the time axis is configured"
        for x in axes:
            formats = x["axis"]["format"]
            assert all("%Y" in f for f in formats.values()), formats
            assert x["scale"]["type"] == "utc"  # a bar's date does not move with the time zone


def test_intraday_axes_show_the_time_of_day_and_daily_ones_do_not():
    assert "%H:%M" in _charts.time_format(HOURLY)["hours"]
    assert "%H" not in _charts.time_format(DAILY)["date"]
    assert _charts.tooltip_time_format(HOURLY) == "%Y-%m-%d %H:%M"
    assert _charts.tooltip_time_format(DAILY) == "%Y-%m-%d"
    assert _charts.tooltip_time_format(MONTHLY) == "%b %Y"
    aware = HOURLY.tz_localize("UTC")
    assert _charts.is_intraday(aware) and list(_charts.naive_index(aware)) == list(HOURLY)


# --- prices -----------------------------------------------------------------------------------

@pytest.mark.parametrize("values, decimals", [
    ([1.06688, 1.06754, 1.0646, 1.1], 5),           # EURUSD, 5 decimals
    ([50.0235, 51.5287, 310.1], 4),                 # a stock exported with 4 decimals
    ([101.25, 99.5, 100.0], 2),                     # cents
    ([43210.5, 60123.25, 766.06], 2),               # BTCUSD
    ([4500.0, 4510.0], 0),                          # whole points
    ([123.456789012345, 124.1], 4),                 # float noise: about 7 significant digits
])
def test_price_decimals_follow_the_instrument(values, decimals):
    assert _charts.price_decimals(values) == decimals


def test_trade_markers_show_prices_in_the_instruments_decimals():
    close = np.round(walk(HOURLY, 1.07, 0.001), 5)
    trades = trades_of(HOURLY, close)
    markers = _charts.trade_markers(trades, decimals=5, when=_charts.tooltip_time_format(HOURLY))
    assert markers["price_text"].iloc[0] == f"{trades['entry_price'].iloc[0]:,.5f}"
    assert markers["when"].iloc[0] == trades["entry_time"].iloc[0].strftime("%Y-%m-%d %H:%M")


def test_trade_markers_have_hover_tooltips_with_side_pnl_and_reason():
    close = walk(DAILY, 100.0, 0.01)
    spec = _charts.price_chart(bars_of(close, DAILY), trades_of(DAILY, close)).to_dict()
    points = spec["layer"][1]
    fields = {t["field"] for t in points["encoding"]["tooltip"]}
    assert {"side", "when", "price_text", "return", "pnl", "exit_reason"} <= fields
    titles = {t.get("title") for t in points["encoding"]["tooltip"]}
    assert {"P&L", "exit reason"} <= titles


# --- equity, drawdown, empty states -----------------------------------------------------------

def test_log_scale_toggle_and_its_default():
    equity = pd.Series(100_000.0, index=MONTHLY)  # zero trades: flat
    held = _charts.benchmark_curve(pd.Series(walk(MONTHLY, 0.1, 0.4, seed=5), index=MONTHLY),
                                   equity, 100_000.0)
    assert _charts.suggest_log_scale(equity, held) == (held.max() / held.min() > 10)
    assert _charts.suggest_log_scale(equity, equity * 1.5) is False
    log = _charts.equity_chart(equity, held, log=True).to_dict()
    assert log["encoding"]["y"]["scale"]["type"] == "log"
    linear = _charts.equity_chart(equity, held).to_dict()
    assert "type" not in linear["encoding"]["y"]["scale"]


def test_buy_and_hold_grows_the_same_capital_over_the_same_dates():
    close = pd.Series(walk(DAILY, 50.0, 0.02), index=DAILY)
    equity = pd.Series(100_000.0, index=DAILY[5:])
    held = _charts.benchmark_curve(close, equity, 100_000.0)
    assert held.index.equals(equity.index)
    assert held.iloc[0] == pytest.approx(100_000.0)
    assert held.iloc[-1] / held.iloc[0] == pytest.approx(close.iloc[-1] / close.iloc[5])
    assert buy_and_hold_return(close.to_numpy()) == pytest.approx(close.iloc[-1] / close.iloc[0] - 1)
    assert np.isnan(buy_and_hold_return([5.0]))


def test_equity_and_drawdown_share_one_zoomable_time_axis():
    equity = pd.Series(walk(DAILY, 100_000.0, 0.01), index=DAILY)
    spec = _charts.equity_panel(equity, equity * 1.1).to_dict()
    assert [part["title"] for part in spec["vconcat"]] == ["Equity", "Drawdown"]
    assert spec["resolve"]["scale"]["x"] == "shared"
    assert spec["params"][0]["bind"] == "scales"
    alone = _charts.equity_panel(equity, drawdown=False).to_dict()
    assert "vconcat" not in alone and alone["title"] == "Equity"


def test_drawdown_axis_format_follows_the_depth():
    assert _charts.percent_format(-0.42) == ".0%"
    assert _charts.percent_format(-0.028) == ".1%"
    assert _charts.percent_format(-0.004) == ".2%"
    equity = pd.Series(np.linspace(100.0, 97.5, 50), index=DAILY[:50])
    spec = _charts.drawdown_chart(equity).to_dict()
    assert spec["encoding"]["y"]["axis"]["format"] == ".1%"


def test_large_equity_axes_use_short_numbers():
    assert _charts.money_format(250_000) == ",.0f"
    assert _charts.money_format(1.5e9) == ".3~s"


# --- legends and the monthly heatmap ----------------------------------------------------------

def test_compare_legend_labels_are_never_cut_or_equal():
    same = "DEMO01 · rsi_meanrev · period=14, oversold=30, overbought=70 · exit on signal"
    names = _charts.unique_labels([same, same, "other"])
    assert len(set(names)) == 3
    frames = [_charts.series_frame(pd.Series(np.arange(1.0, 11.0), index=DAILY[:10]), name)
              for name in names]
    spec = _charts.overlay_chart(pd.concat(frames), title="Equity compared",
                                 legend="bottom").to_dict()
    legend = spec["encoding"]["color"]["legend"]
    assert legend["labelLimit"] == 0
    assert legend["direction"] == "vertical"
    assert _charts.equity_chart(frames[0].set_index("date")["value"]).to_dict()[
        "encoding"]["color"]["legend"]["labelLimit"] == 0


def test_monthly_heatmap_labels_every_year_without_overlap():
    equity = pd.Series(walk(DAILY, 100_000.0, 0.01), index=DAILY)
    spec = _charts.monthly_heatmap(equity).to_dict()
    years = [str(y) for y in range(2004, 2014)]
    y = spec["encoding"]["y"]
    assert y["axis"]["values"] == years
    assert y["axis"]["labelOverlap"] is False
    # the height is the cells' alone (not shared with title, axis and legend): a row per year
    assert spec["autosize"]["type"] == "fit-x"
    assert spec["height"] >= 18 * len(years)


# --- thinning long series ---------------------------------------------------------------------

def test_downsampling_keeps_first_last_and_every_extreme():
    rng = np.random.default_rng(7)
    values = np.cumsum(rng.normal(size=20_000))
    keep = _charts.downsample_positions(values, 800)
    assert len(keep) <= 800
    assert keep[0] == 0 and keep[-1] == len(values) - 1
    assert np.all(np.diff(keep) > 0)
    assert values.argmax() in keep and values.argmin() in keep
    buckets = np.array_split(np.arange(1, len(values) - 1), 399)
    assert all(b[values[b].argmax()] in keep for b in buckets[:-1][:50])


def test_downsampling_leaves_short_series_whole_and_skips_nans():
    assert list(_charts.downsample_positions(np.arange(10.0), 800)) == list(range(10))
    values = np.r_[np.full(500, np.nan), np.arange(3000.0)]
    keep = _charts.downsample_positions(values, 100)
    assert not np.isnan(values[keep[1:-1]]).all()
    assert len(keep) <= 100


def test_long_series_are_thinned_for_drawing():
    index = pd.bdate_range("1990-01-01", periods=9000)
    equity = pd.Series(walk(index, 100_000.0, 0.01), index=index)
    assert len(_charts.equity_chart(equity, equity * 1.1).data) <= 2 * _charts.MAX_POINTS
    assert len(_charts.drawdown_chart(equity).data) <= _charts.MAX_POINTS
    price = _charts.price_chart(bars_of(equity.to_numpy() / 1000, index), None)
    rows = price.data if isinstance(price.data, pd.DataFrame) else price.layer[0].data
    assert len(rows) <= _charts.MAX_POINTS


# --- summary by exit reason -------------------------------------------------------------------

def test_exit_reason_summary_counts_win_rate_and_average_return():
    trades = pd.DataFrame({"return": [0.10, -0.05, 0.02, -0.03, 0.04],
                           "pnl": [100.0, -50.0, 20.0, -30.0, 40.0],
                           "bars_held": [5, 3, 8, 2, 6],
                           "exit_reason": ["signal", "stop_loss", "signal", "stop_loss",
                                           "signal"]})
    summary = exit_reason_summary(trades).set_index("exit_reason")
    assert list(summary.index) == ["signal", "stop_loss", "all"]
    assert summary.loc["signal", "trades"] == 3
    assert summary.loc["signal", "win_rate"] == pytest.approx(1.0)
    assert summary.loc["stop_loss", "win_rate"] == pytest.approx(0.0)
    assert summary.loc["stop_loss", "avg_return"] == pytest.approx(-0.04)
    assert summary.loc["all", "trades"] == 5
    assert summary.loc["all", "win_rate"] == pytest.approx(0.6)
    assert summary.loc["all", "total_pnl"] == pytest.approx(80.0)
    assert exit_reason_summary(trades.iloc[:0]).empty

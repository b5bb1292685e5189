"""Pure helpers of the pages: chart data (drawdowns, monthly returns, markers), stat filters."""
from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import pytest

from views import _charts, _scan


def test_drawdown_from_running_peak():
    equity = pd.Series([100.0, 110.0, 99.0, 121.0, 108.9],
                       index=pd.bdate_range("2024-01-01", periods=5))
    expected = [0.0, 0.0, -0.1, 0.0, -0.1]
    assert _charts.drawdown_series(equity).to_numpy() == pytest.approx(expected)


def test_monthly_returns_chain_month_ends():
    index = pd.to_datetime(["2024-01-02", "2024-01-31", "2024-02-15", "2024-02-29", "2024-03-29"])
    equity = pd.Series([100.0, 110.0, 90.0, 121.0, 108.9], index=index)
    frame = _charts.monthly_returns(equity)
    assert frame["month"].tolist() == [1, 2, 3]
    assert frame["year"].tolist() == [2024] * 3
    assert frame["return"].to_numpy() == pytest.approx([0.10, 0.10, -0.10])
    compounded = np.prod(1 + frame["return"].to_numpy()) - 1
    assert compounded == pytest.approx(equity.iloc[-1] / equity.iloc[0] - 1)


def test_trade_markers_one_entry_and_one_exit_per_trade():
    trades = pd.DataFrame({
        "entry_time": pd.to_datetime(["2024-01-02", "2024-02-01"]),
        "entry_price": [10.0, 12.0],
        "exit_time": pd.to_datetime(["2024-01-10", "2024-02-05"]),
        "exit_price": [11.0, 11.4],
        "return": [0.1, -0.05],
        "exit_reason": ["signal", "stop_loss"],
    })
    markers = _charts.trade_markers(trades)
    assert markers["side"].tolist() == ["entry", "entry", "exit", "exit"]
    assert markers["price"].tolist() == [10.0, 12.0, 11.0, 11.4]
    assert markers["exit_reason"].tolist()[2:] == ["signal", "stop_loss"]
    assert _charts.trade_markers(trades.iloc[:0]).empty


def test_charts_build_valid_vega_lite_for_ten_years():
    alt.data_transformers.disable_max_rows()
    index = pd.bdate_range("2015-01-01", periods=2520)
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close,
                         "volume": 1.0}, index=index)
    equity = pd.Series(close * 1000, index=index)
    trades = pd.DataFrame({"entry_time": index[[10, 400]], "entry_price": close[[10, 400]],
                           "exit_time": index[[50, 500]], "exit_price": close[[50, 500]],
                           "return": [0.02, -0.01], "exit_reason": ["signal", "signal"]})
    for chart in (_charts.equity_chart(equity, equity * 0.9), _charts.drawdown_chart(equity),
                  _charts.price_chart(bars, trades), _charts.monthly_heatmap(equity),
                  _charts.trade_histogram(trades)):
        spec = chart.to_dict()
        assert spec["$schema"].startswith("https://vega.github.io/schema/vega-lite/")
    cells = pd.DataFrame({"period": [10, 10, 14, 14], "oversold": [25, 30, 25, 30],
                          "sharpe_ratio": [0.1, 0.3, np.nan, 0.2]})
    assert "layer" in _charts.param_heatmap(cells, "period", "oversold", "sharpe_ratio").to_dict()


def test_stat_filters_keep_missing_rows_only_without_thresholds():
    signals = pd.DataFrame({
        "symbol": ["A", "B", "C", "D"],
        "win_rate": [0.60, 0.50, np.nan, 0.70],
        "num_trades": [25.0, 40.0, np.nan, 5.0],
        "backtest_id": ["1", "2", None, "4"],
    })
    pick = lambda *args: _scan.filter_by_stats(signals, *args)["symbol"].tolist()  # noqa: E731
    assert pick(0.0, 0, False) == ["A", "B", "C", "D"]  # no filter: missing stays visible
    assert pick(0.0, 0, True) == ["A", "B", "D"]
    assert pick(0.55, 0, False) == ["A", "D"]
    assert pick(0.55, 20, False) == ["A"]
    assert pick(0.0, 30, False) == ["B"]


def test_signal_view_flags_old_signals_and_stale_data():
    """Rows carry bars_since_signal / last_bar / data_stale from core.scanner.scan."""
    signals = pd.DataFrame({
        "symbol": ["NOW", "OLD", "STALE"],
        "strategy": ["rsi_meanrev"] * 3,
        "signal_date": pd.to_datetime(["2025-06-30", "2025-06-20", "2013-12-31"]),
        "bars_ago": [0, 6, 0],
        "bars_since_signal": [0, 6, 0],
        "last_bar": pd.to_datetime(["2025-06-30", "2025-06-30", "2013-12-31"]),
        "data_stale": [False, False, True],
        "close": [1.0, 2.0, 3.0],
        "params_json": ['{"period":14}'] * 3,
        "exit_json": ['[{"type":"signal"}]'] * 3,
        "backtest_id": [None, "7", None],
    })
    view = _scan.signal_view(signals)
    assert view["flag"].tolist() == ["", "⚠ signal 6 bars old",
                                     "⚠ stale data (last bar 2013-12-31)"]
    assert list(view.columns[:3]) == ["details", "symbol", "flag"]
    assert view["last_bar"].astype(str).tolist() == ["2025-06-30", "2025-06-30", "2013-12-31"]


def test_signal_view_without_the_freshness_columns_still_flags_old_signals():
    signals = pd.DataFrame({"symbol": ["A"], "strategy": ["rsi_meanrev"],
                            "signal_date": pd.to_datetime(["2025-06-27"]), "bars_ago": [1],
                            "close": [1.0], "params_json": ['{"period":14}'],
                            "exit_json": ['[{"type":"signal"}]'], "backtest_id": [None]})
    assert _scan.signal_view(signals)["flag"].tolist() == ["⚠ signal 1 bar old"]


def test_scanner_dates_keep_their_hour_on_intraday_data():
    """An hourly signal names its hour; daily signals show as dates."""
    from views._scan import as_shown

    hourly = pd.Series([pd.Timestamp("2020-01-02 13:00"), pd.Timestamp("2020-01-03 00:00")])
    assert as_shown(hourly).tolist() == hourly.tolist()
    daily = pd.Series([pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")])
    assert [str(d) for d in as_shown(daily)] == ["2020-01-02", "2020-01-03"]

"""A rule reading ``volume`` runs wherever a built-in does: backtests, grids and the scanner."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core import rule_files
from core.engine import run_backtest, run_many
from core.scanner import scan

RULE = '''
name = "volume_burst"
title = "Close above its average on heavy volume"
direction = "long"
entry = "close > sma(close, n) and volume > 2 * sma(volume, n)"
exit = "close < sma(close, n)"

[params.n]
kind = "int"
default = 5
low = 2
high = 50
'''


def _bars() -> pd.DataFrame:
    """Rising closes; heavy volume on bars 20 and 40 only."""
    index = pd.bdate_range("2021-01-04", periods=60)
    close = 100 + np.arange(60.0) * 0.5
    volume = np.full(60, 1_000.0)
    volume[[20, 40]] = 10_000.0
    close[30:35] -= 10  # a dip below the average closes the first trade
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": volume}, index=index)


def test_a_volume_rule_enters_on_the_heavy_bars():
    strategy = rule_files.load_text(RULE)
    result = run_backtest(_bars(), strategy, {"n": 5}, symbol="VOL")
    index = _bars().index
    # signals decided on the close of bars 20 and 40 fill at the next bars' opens
    assert list(result.trades["entry_time"]) == [index[21], index[41]]
    grid = run_many({"VOL": _bars()}, strategy, {"n": [5]}, with_trades=True)
    assert grid.table["num_trades"].tolist() == [2.0]


def test_the_scanner_sees_a_volume_rule_fire(tmp_path, monkeypatch):
    folder = tmp_path / "strategies"
    folder.mkdir()
    (folder / "volume_burst.toml").write_text(RULE)
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(folder))
    bars = _bars().iloc[:41]  # the heavy bar 40 is today's
    found = scan({"VOL": bars}, "volume_burst", {"n": 5}, lookback=1, now=bars.index[-1])
    assert found["symbol"].tolist() == ["VOL"]

"""Long and short: the direction param, its identity rule and stores written before shorts.

Long runs stored before the ``direction`` param existed must keep their identity: a validated
long params dict leaves ``direction`` out, so its canonical JSON, hash and numeric columns are
what they were. The committed format-2 fixture store (tests/store/fixtures, written by the code
of commit 89b77c8, long only) is the witness.
"""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from core.canonical import canonical_json, flat_params_json, stable_hash
from core.engine import expand_grid, run_backtest, run_many
from core.errors import ParamError
from core.strategies import (direction_of, get_strategy, identity_params, list_strategies,
                             param_columns, validate_params)

from .conftest import make_bars

FIXTURES = Path(__file__).resolve().parents[1] / "store" / "fixtures"


def built_ins():
    return [s for s in list_strategies() if s.source == "built-in"]


def test_long_params_leave_direction_out_and_short_params_keep_it():
    for strategy in built_ins():
        long_default = validate_params(strategy, {})
        assert "direction" not in long_default
        assert validate_params(strategy, {"direction": "long"}) == long_default
        short = validate_params(strategy, {"direction": "short"})
        assert short == {**long_default, "direction": "short"}
        assert direction_of(strategy, long_default) == "long"
        assert direction_of(strategy, short) == "short"
        # identity: a long config hashes as it did before the param existed
        assert flat_params_json(long_default) == canonical_json(long_default)
        assert stable_hash(long_default) != stable_hash(short)
        # no numeric column: stores written before shorts keep their columns
        assert param_columns(strategy, short) == param_columns(strategy, long_default)
    assert identity_params({"period": 5, "direction": "long"}) == {"period": 5}
    with pytest.raises(ParamError, match="direction='sideways' is not one of 'long', 'short'"):
        validate_params("rsi_meanrev", {"direction": "sideways"})


@pytest.fixture
def format2_store(tmp_path):
    """A private, read-only copy of the fixture store and the answers it gave when written."""
    sys.path.insert(0, str(FIXTURES))
    try:
        from fixture_codec import decode_key
    finally:
        sys.path.remove(str(FIXTURES))
    from core.store import open_store

    path = tmp_path / "format2_store.zarr"
    shutil.copytree(FIXTURES / "format2_store.zarr", path)
    expected = json.loads((FIXTURES / "format2_expected.json").read_text())
    store = open_store(path, mode="r")
    yield store, expected, decode_key
    store.close()


def test_a_long_lookup_of_a_store_written_before_shorts_returns_the_stored_row(format2_store):
    from core.data import DemoProvider

    store, expected, decode_key = format2_store
    provider = DemoProvider(**expected["demo"])
    found = 0
    for item in expected["stats"]:
        symbol, strategy, params, exit_rule = decode_key(item["key"])
        if item["value"] is None:  # a deleted backtest
            assert store.get_stats(symbol, strategy, params, exit_rule) is None
            continue
        bid = item["value"]["$dict"]["backtest_id"]
        scope = store.get_detailed_results(bid)["scope_hash"]  # the row's documented scope
        stored = store.get_stats(symbol, strategy, params, exit_rule, scope=scope)
        found += 1
        assert stored["backtest_id"] == bid
        # the same lookup spelled with the default direction finds the same row ...
        explicit = store.get_stats(symbol, strategy, {**params, "direction": "long"}, exit_rule,
                                   scope=scope)
        assert explicit["backtest_id"] == stored["backtest_id"]
        # ... a short one does not
        assert store.get_stats(symbol, strategy, {**params, "direction": "short"},
                               exit_rule, scope=scope) is None
        # today's engine gives the same key and, on the same data, the same numbers; the
        # fixture's Sharpe and Sortino were annualised x sqrt(252), today's by the bars' own
        # factor, so they differ by exactly sqrt(factor / 252)
        result = run_backtest(provider.load_bars(symbol), strategy, params, exit_rule,
                              costs=stored["costs"], symbol=symbol)
        assert result.direction == "long"
        assert result.params_hash == stored["params_hash"]
        assert result.data_fingerprint == stored["data_fingerprint"]
        rescale = math.sqrt(result.periods_per_year / 252)
        for name, value in result.metrics.items():
            was = stored[name]
            if name in ("sharpe_ratio", "sortino_ratio"):
                assert value == pytest.approx(was * rescale, rel=1e-12, nan_ok=True), name
                continue
            same = math.isnan(value) and math.isnan(was) or value == was
            assert same, (symbol, strategy, params, name, value, was)
    assert found >= 5


def test_short_grids_and_long_grids_share_nothing_but_the_bars():
    bars = make_bars(400, seed=3)
    grid = {"period": [7, 14], "direction": ["long", "short"]}
    cells = expand_grid("rsi_meanrev", grid)
    assert cells == [
        {"period": 7, "oversold": 30.0, "overbought": 70.0},
        {"period": 7, "oversold": 30.0, "overbought": 70.0, "direction": "short"},
        {"period": 14, "oversold": 30.0, "overbought": 70.0},
        {"period": 14, "oversold": 30.0, "overbought": 70.0, "direction": "short"},
    ]
    batch = run_many({"A": bars}, "rsi_meanrev", grid, with_trades=True)
    assert "direction" not in batch.table["params_json"].iloc[0]
    assert '"direction":"short"' in batch.table["params_json"].iloc[1]
    assert "rsi_direction" not in batch.table.columns
    for row, params in enumerate(cells):
        single = run_backtest(bars, "rsi_meanrev", params)
        assert batch.table["params_hash"].iloc[row] == single.params_hash
        trades = batch.trades[batch.trades["row"] == row]
        assert len(trades) == single.metrics["num_trades"]
        assert (trades["direction"] == single.direction).all()
        assert single.direction == direction_of(get_strategy("rsi_meanrev"), params)


def test_borrow_rate_costs_shorts_only_and_is_left_out_when_zero():
    from core.engine import canonical_costs

    assert canonical_costs({"borrow_rate": 0}) == canonical_costs(None)
    assert canonical_costs({"borrow_rate": 0.05})["borrow_rate"] == 0.05
    with pytest.raises(ParamError, match="borrow_rate=-0.1 is out of range"):
        canonical_costs({"borrow_rate": -0.1})
    bars = make_bars(400, seed=4)
    fee = {"borrow_rate": 0.5}
    for direction in ("long", "short"):
        params = {"period": 5, "direction": direction}
        free = run_backtest(bars, "rsi_meanrev", params)
        paid = run_backtest(bars, "rsi_meanrev", params, costs=fee)
        assert free.metrics["num_trades"] > 2
        if direction == "long":
            assert paid.metrics == free.metrics
        else:
            # the first trade (same size either way) pays 0.5 / (bars per year) of its value at
            # every bar close it was held through; 400 weekday bars span more than a year, so
            # bars per year = 399 intervals / years of span
            per_year = 399 / ((bars.index[-1] - bars.index[0]).days / 365.25)
            assert paid.periods_per_year == pytest.approx(per_year, rel=1e-12)
            first = free.trades.iloc[0]
            entry = bars.index.get_loc(first["entry_time"])
            closes = bars["close"].iloc[entry:entry + first["bars_held"]].sum()
            fees = first["units"] * closes * 0.5 / per_year
            assert paid.trades["units"].iloc[0] == first["units"]
            assert paid.trades["pnl"].iloc[0] == pytest.approx(first["pnl"] - fees, rel=1e-12)
            np.testing.assert_allclose(paid.equity.iloc[-1],
                                       100_000 + paid.trades["pnl"].sum(), rtol=1e-12)

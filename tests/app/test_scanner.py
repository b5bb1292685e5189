"""core.scanner: today's signals (golden bars, lookback, tail == full history) and the stats join."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.canonical import canonical_json, stable_hash
from core.data.demo import generate_demo_universe
from core.errors import ParamError, UnknownStrategyError, ValidationError
from core.scanner import SIGNAL_COLUMNS, scan
from core.strategies import get_strategy


def wilder_rsi(close: np.ndarray, period: int) -> np.ndarray:
    """Slow reference RSI (Wilder smoothing, seeded with the simple mean of the first changes)."""
    out = np.full(len(close), np.nan)
    change = np.diff(close)
    gains, losses = np.clip(change, 0, None), np.clip(-change, 0, None)
    avg_gain, avg_loss = gains[:period].mean(), losses[:period].mean()
    for t in range(period, len(close)):
        if t > period:
            avg_gain = (avg_gain * (period - 1) + gains[t - 1]) / period
            avg_loss = (avg_loss * (period - 1) + losses[t - 1]) / period
        out[t] = 100.0 if avg_loss == 0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss)
    return out


def bars_from_close(close: np.ndarray, end: str = "2025-06-30") -> pd.DataFrame:
    index = pd.bdate_range(end=end, periods=len(close)).as_unit("ns")
    return pd.DataFrame({"open": close, "high": close * 1.001, "low": close * 0.999,
                         "close": close, "volume": np.full(len(close), 1e5)}, index=index)


def zigzag_then_drop(drops: int) -> np.ndarray:
    """400 bars alternating +1/-1 around 100 (RSI near 50), then ``drops`` falls of 1.5."""
    base = 100.0 + np.tile([0.0, 1.0], 200)
    return np.concatenate([base, base[-1] - 1.5 * np.arange(1, drops + 1)])


def first_cross_below(close: np.ndarray, level: float = 30.0, period: int = 14) -> int:
    rsi = wilder_rsi(close, period)
    below = np.flatnonzero((rsi[:-1] >= level) & (rsi[1:] < level)) + 1
    return int(below[0])


@pytest.fixture(scope="module")
def golden():
    """Close series whose RSI(14) crosses below 30 exactly on its last bar (reference RSI)."""
    long = zigzag_then_drop(30)
    cross = first_cross_below(long)
    assert 400 < cross < len(long) - 3  # the crossing happens inside the drop
    return long[: cross + 1]


def test_signal_on_the_last_bar(golden):
    universe = {
        "FIRES": bars_from_close(golden),
        "CALM": bars_from_close(100.0 + np.tile([0.0, 1.0], 220)),
        "UP": bars_from_close(np.linspace(50.0, 150.0, 450)),
    }
    result = scan(universe, "rsi_meanrev", {"period": 14, "oversold": 30, "overbought": 70})
    assert list(result.columns) == list(SIGNAL_COLUMNS)
    assert result["symbol"].tolist() == ["FIRES"]
    row = result.iloc[0]
    assert row["bars_ago"] == 0
    assert row["signal_date"] == universe["FIRES"].index[-1]
    assert row["close"] == pytest.approx(golden[-1])
    params = {"period": 14, "oversold": 30.0, "overbought": 70.0}
    assert row["params_json"] == canonical_json(params)
    assert row["params_hash"] == stable_hash(params)
    assert row["exit_json"] == canonical_json([{"type": "signal"}])


def test_one_bar_before_the_crossing_nothing_fires(golden):
    result = scan({"FIRES": bars_from_close(golden[:-1])}, "rsi_meanrev")
    assert result.empty
    assert list(result.columns) == list(SIGNAL_COLUMNS)


def test_lookback_finds_older_signals_and_counts_bars_ago(golden):
    cross = len(golden) - 1
    later = zigzag_then_drop(30)[: cross + 3]  # two more falling bars: RSI stays below 30
    bars = {"FIRES": bars_from_close(later)}
    assert scan(bars, "rsi_meanrev", lookback=1).empty
    assert scan(bars, "rsi_meanrev", lookback=2).empty
    hit = scan(bars, "rsi_meanrev", lookback=3)
    assert hit["bars_ago"].tolist() == [2]
    assert hit["signal_date"].iloc[0] == bars["FIRES"].index[cross]
    assert hit["signal_close"].iloc[0] == pytest.approx(later[cross])
    assert hit["close"].iloc[0] == pytest.approx(later[-1])


def test_exit_rule_is_canonicalised_into_the_key(golden):
    rule = {"type": "stop_loss", "pct": 0.05}
    row = scan({"FIRES": bars_from_close(golden)}, "rsi_meanrev", exit_rule=rule).iloc[0]
    canonical = [{"type": "signal"}, {"type": "stop_loss", "pct": 0.05}]
    assert row["exit_json"] == canonical_json(canonical)
    assert row["exit_hash"] == stable_hash(canonical)


@pytest.fixture(scope="module")
def demo():
    return generate_demo_universe(count=40, years=6)


@pytest.mark.parametrize("strategy,params", [
    ("rsi_meanrev", {"period": 14, "oversold": 35, "overbought": 65}),
    ("ma_crossover", {"fast": 10, "slow": 40, "kind": "ema"}),
    ("bollinger_reversion", {"period": 20, "num_std": 1.5}),
    ("breakout", {"period": 20, "exit_period": 10}),
])
def test_tail_scan_equals_full_history_signals(demo, strategy, params):
    """Computing on the tail gives exactly the entries of the full-history signal function."""
    lookback = 15
    strat = get_strategy(strategy)
    expected = {}
    for symbol, bars in demo.items():
        entries, _ = strat.signals(*(bars[c].to_numpy() for c in ("open", "high", "low", "close")),
                                   **params)
        fired = np.flatnonzero(entries[-lookback:])
        if fired.size:
            expected[symbol] = lookback - 1 - int(fired[-1])
    result = scan(demo, strategy, params, lookback=lookback)
    assert dict(zip(result["symbol"], result["bars_ago"])) == expected
    assert expected, "the demo universe should produce some signals in 15 bars"


def test_provider_source_and_symbol_subset(demo):
    class Provider:
        name = "fake"

        def __init__(self):
            self.asked = None

        def symbols(self):
            return sorted(demo)

        def load_many(self, symbols, start=None, end=None):
            self.asked = list(symbols)
            return {s: demo[s] for s in symbols}

    provider = Provider()
    whole = scan(demo, "rsi_meanrev", lookback=20)
    subset = sorted(demo)[:10]
    part = scan(provider, "rsi_meanrev", lookback=20, symbols=subset)
    assert provider.asked == subset
    assert part["symbol"].tolist() == [s for s in whole["symbol"] if s in subset]


@pytest.mark.parametrize("kwargs,error,text", [
    ({"strategy": "rsi_meanrevv"}, UnknownStrategyError, "Did you mean 'rsi_meanrev'"),
    ({"strategy": "rsi_meanrev", "params": {"period": 1}}, ParamError, "period"),
    ({"strategy": "rsi_meanrev", "lookback": 0}, ValidationError, "lookback"),
    ({"strategy": "rsi_meanrev", "lookback": 2.5}, ValidationError, "lookback"),
])
def test_bad_input_names_the_problem(golden, kwargs, error, text):
    with pytest.raises(error, match=text):
        scan({"X": bars_from_close(golden)}, **kwargs)


def test_empty_universe_is_an_error():
    with pytest.raises(ValidationError, match="universe is empty"):
        scan({}, "rsi_meanrev")


# --- the stats join, against a real store on disk --------------------------------------------

PARAMS = {"period": 14, "oversold": 35, "overbought": 65}
STOP = {"type": "stop_loss", "pct": 0.05}


@pytest.fixture
def stored(tmp_path, demo):
    """A store with PARAMS/signal-exit backtests of DEMO01, DEMO02, DEMO05 and a stop-loss
    variant of DEMO03; returns (store, {symbol: result}) of the signal-exit runs."""
    from core.engine import run_backtest
    from core.store import BacktestStore

    store = BacktestStore(str(tmp_path / "store.zarr"))
    results = {s: run_backtest(demo[s], "rsi_meanrev", PARAMS, None, symbol=s)
               for s in ("DEMO01", "DEMO02", "DEMO05")}
    store.store_many(list(results.values()))
    store.store_backtest(run_backtest(demo["DEMO03"], "rsi_meanrev", PARAMS, STOP,
                                      symbol="DEMO03"))
    return store, results


def test_stats_join_on_the_exact_key(stored, demo):
    from core.scanner import add_backtest_stats

    store, results = stored
    universe = {s: demo[s] for s in ("DEMO01", "DEMO02", "DEMO03", "DEMO04")}
    signals = scan(universe, "rsi_meanrev", PARAMS, lookback=400)
    assert set(signals["symbol"]) == set(universe), "every symbol fires within 400 bars"
    joined = add_backtest_stats(signals, store).set_index("symbol")
    assert list(joined.index) == list(signals["symbol"])  # row order kept
    for symbol in ("DEMO01", "DEMO02"):
        expected = results[symbol].metrics
        row = joined.loc[symbol]
        for column in ("win_rate", "num_trades", "sharpe_ratio", "cagr", "max_drawdown",
                       "expectancy"):
            assert row[column] == pytest.approx(expected[column], nan_ok=True)
        assert row["backtest_id"] == store.get_stats(symbol, "rsi_meanrev", PARAMS)["backtest_id"]
    # DEMO03 is stored only with another exit rule, DEMO04 not at all: missing stays missing.
    for symbol in ("DEMO03", "DEMO04"):
        assert joined.loc[symbol, ["win_rate", "num_trades"]].isna().all()
        assert joined.loc[symbol, "backtest_id"] is None


def test_pooled_figures_across_the_stored_universe(stored, demo):
    from core.scanner import add_backtest_stats

    store, results = stored
    signals = scan({s: demo[s] for s in ("DEMO01", "DEMO04")}, "rsi_meanrev", PARAMS,
                   lookback=400)
    metrics = [r.metrics for r in results.values()]
    trades = sum(m["num_trades"] for m in metrics)
    wins = sum(m["num_trades"] * m["win_rate"] for m in metrics if m["num_trades"] > 0)
    joined = add_backtest_stats(signals, store)
    assert (joined["pooled_trades"] == trades).all()  # same configuration on every row
    assert joined["pooled_win_rate"].to_numpy() == pytest.approx([wins / trades] * 2)
    assert (joined["pooled_symbols"] == 3).all()
    # Pooling restricted to a universe counts only its stored symbols.
    only = add_backtest_stats(signals, store, universe=["DEMO01", "DEMO04"])
    assert (only["pooled_trades"] == results["DEMO01"].metrics["num_trades"]).all()
    assert (only["pooled_symbols"] == 1).all()


def test_a_configuration_never_stored_has_no_pooled_figures(stored, demo):
    from core.scanner import add_backtest_stats

    store, _ = stored
    signals = scan({"DEMO01": demo["DEMO01"]}, "rsi_meanrev", {"period": 9}, lookback=400)
    joined = add_backtest_stats(signals, store)
    assert joined[["win_rate", "pooled_trades", "pooled_win_rate"]].isna().all(axis=None)
    assert (joined["pooled_symbols"] == 0).all()


def test_rerun_replaces_what_the_join_returns(stored, demo):
    from core.engine import run_backtest
    from core.scanner import add_backtest_stats

    store, _ = stored
    signals = scan({"DEMO01": demo["DEMO01"]}, "rsi_meanrev", PARAMS, lookback=400)
    before = add_backtest_stats(signals, store)["backtest_id"].iloc[0]
    newer = store.store_backtest(run_backtest(demo["DEMO01"].iloc[:-100], "rsi_meanrev", PARAMS,
                                              symbol="DEMO01"))
    after = add_backtest_stats(signals, store)
    assert after["backtest_id"].iloc[0] == newer != before


def test_empty_signals_get_empty_stat_columns(stored, golden):
    from core.scanner import POOLED_COLUMNS, STAT_COLUMNS, add_backtest_stats

    store, _ = stored
    empty = scan({"X": bars_from_close(golden[:-1])}, "rsi_meanrev")
    joined = add_backtest_stats(empty, store)
    assert joined.empty
    assert {*STAT_COLUMNS, *POOLED_COLUMNS, "backtest_id"} <= set(joined.columns)

"""Rule strategy files: loading, the registry, bad files, identity, and the built-in twin."""
from __future__ import annotations

import os
import pickle
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import rule_files
from core.engine import run_backtest, run_many
from core.errors import ParamError, StrategyFileError, UnknownStrategyError
from core.scanner import scan
from core.strategies import (get_strategy, list_strategies, min_bars, param_columns,
                             strategy_problems, validate_params)

from .conftest import make_bars

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "strategies"

RSI_RULE = """
name = "rsi_rule"
title = "RSI mean reversion, as a rule file"
entry = "rsi(close, period) crosses_below oversold"
exit = "rsi(close, period) crosses_above overbought"
require = ["oversold < overbought"]

[params.period]
kind = "int"
default = 14
low = 2
high = 500

[params.oversold]
kind = "float"
default = 30
low = 0
high = 100

[params.overbought]
kind = "float"
default = 70
low = 0
high = 100
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


# --- the built-in, written as a rule file -------------------------------------------------------

EXIT_RULES = st.sampled_from([
    None, {"type": "stop_loss", "pct": 0.04}, {"type": "trailing_stop", "pct": 0.06},
    [{"type": "take_profit", "pct": 0.08}, {"type": "time_stop", "bars": 15}],
    [{"type": "atr_stop", "mult": 2.0, "period": 10}, {"type": "signal", "enabled": False}],
])


@settings(max_examples=40)
@given(seed=st.integers(0, 100_000), period=st.integers(2, 40),
       levels=st.tuples(st.floats(5, 95), st.floats(5, 95)).filter(lambda p: p[0] < p[1]),
       vol=st.sampled_from([0.01, 0.03]), exit_rule=EXIT_RULES)
def test_rsi_meanrev_as_a_rule_file_gives_exactly_the_builtin_trades_and_metrics(
        tmp_path_factory, seed, period, levels, vol, exit_rule):
    rule = rule_files.load_text(RSI_RULE, "rsi_rule.toml")
    bars = make_bars(300, seed=seed, vol=vol)
    params = {"period": period, "oversold": levels[0], "overbought": levels[1]}
    mine = run_backtest(bars, rule, params, exit_rule)
    builtin = run_backtest(bars, "rsi_meanrev", params, exit_rule)
    assert mine.metrics.keys() == builtin.metrics.keys()
    for name, value in builtin.metrics.items():
        assert mine.metrics[name] == value or (np.isnan(value) and np.isnan(mine.metrics[name]))
    pd.testing.assert_frame_equal(mine.trades, builtin.trades, check_exact=True)
    pd.testing.assert_series_equal(mine.equity, builtin.equity, check_exact=True)
    entries, exits = rule.signals(bars.open, bars.high, bars.low, bars.close, **params)
    want = get_strategy("rsi_meanrev").signals(bars.open, bars.high, bars.low, bars.close,
                                               **params)
    np.testing.assert_array_equal(entries, want[0])
    np.testing.assert_array_equal(exits, want[1])
    assert min_bars(rule, params) == min_bars("rsi_meanrev", params)


@settings(max_examples=10)
@given(seed=st.integers(0, 100_000))
def test_rsi_rule_grid_rows_equal_the_builtin_grid(seed):
    rule = rule_files.load_text(RSI_RULE, "rsi_rule.toml")
    data = {"A": make_bars(260, seed=seed), "B": make_bars(260, seed=seed + 1)}
    grid = {"period": [5, 9, 14], "oversold": [25, 35], "overbought": [30, 65, 75]}
    exits = [None, {"type": "stop_loss", "pct": 0.05}]
    mine = run_many(data, rule, grid, exits, with_trades=True)
    builtin = run_many(data, "rsi_meanrev", grid, exits, with_trades=True)
    assert len(mine.table) == len(builtin.table) == 2 * 15 * 2  # 15 cells: oversold < overbought
    metrics = [c for c in builtin.table.columns if c in mine.table.columns
               and not c.startswith("rsi_") and c not in ("strategy", "definition")]
    pd.testing.assert_frame_equal(mine.table[metrics], builtin.table[metrics], check_exact=True)
    pd.testing.assert_frame_equal(mine.trades, builtin.trades, check_exact=True)


# --- loading ---------------------------------------------------------------------------------

def test_the_example_files_load_with_their_direction_and_definition():
    scan_ = rule_files.scan_folder(EXAMPLES)
    assert scan_.problems == ()
    found = {name: s.direction for name, s in scan_.strategies.items()}
    assert found == {"macd_cross": "long", "overbought_fade": "short", "rsi_trend": "long"}
    for strategy in scan_.strategies.values():
        assert strategy.prefix == strategy.name
        assert len(strategy.definition_hash) == 16
        int(strategy.definition_hash, 16)
        assert strategy.source == str(EXAMPLES / f"{strategy.name}.toml")
        bars = make_bars(400, seed=1)
        result = run_backtest(bars, strategy, None, {"type": "stop_loss", "pct": 0.05})
        assert result.strategy == strategy.name


def test_definition_hash_follows_the_rules_not_the_wording():
    base = rule_files.load_text(RSI_RULE)
    same = rule_files.load_text(
        RSI_RULE.replace('title = "RSI mean reversion, as a rule file"', 'title = "Other"')
        .replace("crosses_below oversold", "crosses_below (oversold)")
        .replace("default = 14", "default = 20").replace("high = 500", "high = 400"))
    assert same.definition_hash == base.definition_hash
    changed = [
        RSI_RULE.replace("crosses_below oversold", "crosses_below oversold - 1"),
        'direction = "short"\n' + RSI_RULE,
        RSI_RULE.replace('kind = "float"\ndefault = 30', 'kind = "int"\ndefault = 30', 1),
        RSI_RULE.replace('require = ["oversold < overbought"]', "require = []"),
    ]
    hashes = {rule_files.load_text(text).definition_hash for text in changed}
    assert len(hashes) == 4 and base.definition_hash not in hashes


def test_a_short_rule_file_loads_validates_and_carries_its_direction():
    short = rule_files.load_text('direction = "short"\n' + RSI_RULE)
    assert short.direction == "short"
    assert validate_params(short, {"period": 10}) == {"period": 10, "oversold": 30.0,
                                                      "overbought": 70.0}


SHORT_RSI_RULE = 'direction = "short"\n' + RSI_RULE.replace(
    'entry = "rsi(close, period) crosses_below oversold"',
    'entry = "rsi(close, period) crosses_above overbought"').replace(
    'exit = "rsi(close, period) crosses_above overbought"',
    'exit = "rsi(close, period) crosses_below oversold"')


@settings(max_examples=25)
@given(seed=st.integers(0, 100_000), period=st.integers(2, 40),
       levels=st.tuples(st.floats(5, 95), st.floats(5, 95)).filter(lambda p: p[0] < p[1]),
       exit_rule=EXIT_RULES)
def test_a_short_rule_file_trades_exactly_like_the_builtin_short(seed, period, levels,
                                                                  exit_rule):
    rule = rule_files.load_text(SHORT_RSI_RULE, "short_rsi.toml")
    bars = make_bars(300, seed=seed, vol=0.02)
    params = {"period": period, "oversold": levels[0], "overbought": levels[1]}
    mine = run_backtest(bars, rule, params, exit_rule)
    builtin = run_backtest(bars, "rsi_meanrev", {**params, "direction": "short"}, exit_rule)
    pd.testing.assert_frame_equal(mine.trades, builtin.trades, check_exact=True)
    pd.testing.assert_series_equal(mine.equity, builtin.equity, check_exact=True)
    assert (mine.trades["direction"] == "short").all()


def test_params_are_validated_like_a_builtins():
    rule = rule_files.load_text(RSI_RULE)
    assert validate_params(rule, {"period": 9.0}) == {"period": 9, "oversold": 30.0,
                                                      "overbought": 70.0}
    with pytest.raises(ParamError, match="no parameter 'perod'. Did you mean 'period'"):
        validate_params(rule, {"perod": 9})
    with pytest.raises(ParamError, match=r"period=1 is out of range; use 2..500"):
        validate_params(rule, {"period": 1})
    with pytest.raises(ParamError, match=r"\(oversold < overbought\) must hold; got "
                                         r"overbought=70.0, oversold=80.0"):
        validate_params(rule, {"oversold": 80})


def test_a_period_param_that_can_reach_zero_is_refused_for_those_values():
    text = RSI_RULE.replace("rsi(close, period) crosses_below",
                            "rsi(close, period - 5) crosses_below")
    rule = rule_files.load_text(text)
    with pytest.raises(ParamError, match=r"rsi\(close, \(period - 5\)\) needs a whole period "
                                         r">= 1, but \(period - 5\) is -2 here"):
        validate_params(rule, {"period": 3})


def test_rule_strategies_pickle_for_worker_processes():
    rule = rule_files.load_text(RSI_RULE)
    copy = pickle.loads(pickle.dumps(rule))
    bars = make_bars(200)
    assert run_backtest(bars, copy).metrics == pytest.approx(
        run_backtest(bars, rule).metrics, nan_ok=True)


BAD_FILES = [
    ("name = 'x'\nentry = ", r"not valid TOML"),
    (RSI_RULE.replace("title =", "titel ="), r"unknown field 'titel'. Did you mean 'title'"),
    (RSI_RULE.replace('name = "rsi_rule"', 'name = "RSI rule"'), r"name = 'RSI rule': give"),
    ('direction = "sideways"\n' + RSI_RULE, r"direction = 'sideways'; use \"long\" or \"short\""),
    (RSI_RULE.replace('exit = "rsi(close, period) crosses_above overbought"', ""),
     "the exit rule is missing"),
    (RSI_RULE.replace("crosses_above overbought", "crosses_above overbougth"),
     r"exit, column 34: unknown name 'overbougth'.*Did you mean 'overbought'"),
    (RSI_RULE.replace('kind = "int"', 'kind = "integer"'), r"\[params.period\]: kind = 'integer'"),
    (RSI_RULE.replace("default = 14", "default = 1"), r"default: .*period=1 is out of range"),
    (RSI_RULE.replace("default = 14\n", ""), r"\[params.period\]: add a default value"),
    (RSI_RULE.replace("low = 2\n", "lo = 2\n"), r"unknown field 'lo'. Did you mean 'low'"),
    (RSI_RULE.replace("low = 2\nhigh = 500", "low = 500\nhigh = 2"), "is above high"),
    (RSI_RULE + '[params.extra]\nkind = "int"\ndefault = 3\n',
     "param 'extra' is declared but neither entry nor exit uses it"),
    (RSI_RULE.replace("[params.period]", "[params.close]").replace("(close, period)",
                                                                   "(close, close)"),
     r"\[params.close\]: the name is reserved"),
    (RSI_RULE.replace('kind = "int"', 'kind = "float"'),
     r'a period must be a whole number or an int param.*kind = \\"int\\"|kind = "int"'),
    (RSI_RULE.replace('require = ["oversold < overbought"]', 'require = "oversold < 3"'),
     "require must be a list"),
    (RSI_RULE.replace('require = ["oversold < overbought"]', 'require = ["close > 3"]'),
     r"require\[0\]: \(close > 3\) is a signal"),
    (RSI_RULE.replace("default = 30", "default = 80"), "the defaults do not work"),
    (RSI_RULE.replace('kind = "int"\ndefault = 14\nlow = 2\nhigh = 500',
                      'kind = "choice"\ndefault = 14\nchoices = ["a", "b"]'),
     "needs choices = a list of distinct numbers"),
]


@pytest.mark.parametrize("text, message", BAD_FILES)
def test_bad_files_are_refused_naming_the_file_and_the_fix(text, message):
    with pytest.raises(StrategyFileError, match=r"^bad\.toml: .*" + message):
        rule_files.load_text(text, "bad.toml")


def test_a_choice_param_of_numbers_is_usable_and_stored_as_its_index():
    text = RSI_RULE.replace('kind = "int"\ndefault = 14\nlow = 2\nhigh = 500',
                            'kind = "choice"\ndefault = 14\nchoices = [7, 14, 21]')
    rule = rule_files.load_text(text)
    assert validate_params(rule, {"period": 21})["period"] == 21
    assert param_columns(rule, validate_params(rule, {"period": 21}))["rsi_rule_period"] == 2.0


def test_non_utf8_and_huge_files_are_refused(tmp_path):
    bad = tmp_path / "latin.toml"
    bad.write_bytes(b'title = "caf\xe9"\n')
    with pytest.raises(StrategyFileError, match="not UTF-8"):
        rule_files.load_file(bad)
    huge = tmp_path / "huge.toml"
    huge.write_text("# " + "x" * 70_000)
    with pytest.raises(StrategyFileError, match="holds at most 64,000"):
        rule_files.load_file(huge)


# --- the registry and the strategies folder -------------------------------------------------------

def test_a_new_file_appears_at_once_and_an_edit_or_removal_is_seen(folder):
    builtins = [s.name for s in list_strategies()]
    assert builtins == ["rsi_meanrev", "ma_crossover", "bollinger_reversion", "breakout"]
    with pytest.raises(UnknownStrategyError, match="Unknown strategy 'rsi_rule'"):
        get_strategy("rsi_rule")
    path = write(folder, "rsi_rule", RSI_RULE)
    assert [s.name for s in list_strategies()] == builtins + ["rsi_rule"]
    first = get_strategy("rsi_rule")
    assert get_strategy("rsi_rule") is first  # unchanged file: the same object
    path.write_text(RSI_RULE.replace("crosses_below oversold", "crosses_below oversold - 5"))
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    edited = get_strategy("rsi_rule")
    assert edited.definition_hash != first.definition_hash
    path.unlink()
    with pytest.raises(UnknownStrategyError):
        get_strategy("rsi_rule")
    assert [s.name for s in list_strategies()] == builtins


def test_a_malformed_file_never_stops_the_others(folder):
    write(folder, "a_good", RSI_RULE.replace('"rsi_rule"', '"a_good"'))
    write(folder, "b_broken", RSI_RULE.replace("crosses_above", "crosses_abov"))
    write(folder, "c_clash", RSI_RULE.replace('"rsi_rule"', '"a_good"'))
    write(folder, "d_builtin", RSI_RULE.replace('"rsi_rule"', '"breakout"'))
    write(folder, "e_good", RSI_RULE.replace('"rsi_rule"', '"e_good"'))
    (folder / "notes.txt").write_text("not a strategy")
    assert [s.name for s in list_strategies()][4:] == ["a_good", "e_good"]
    problems = {Path(p.path).name: p.error for p in strategy_problems()}
    assert set(problems) == {"b_broken.toml", "c_clash.toml", "d_builtin.toml"}
    assert ("column 20: unexpected 'crosses_abov' after a complete expression; join rules "
            "with and / or. Did you mean 'crosses_above'?") in problems["b_broken.toml"]
    assert problems["b_broken.toml"].startswith(str(folder / "b_broken.toml"))
    assert f"'a_good' is already used by {folder / 'a_good.toml'}" in problems["c_clash.toml"]
    assert "already used by the built-in breakout" in problems["d_builtin.toml"]


def test_a_file_may_not_reuse_a_stored_param_column(folder):
    write(folder, "a_rsi", RSI_RULE.replace('"rsi_rule"', '"rsi"'))  # rsi_period: rsi_meanrev's
    write(folder, "b_x", RSI_RULE.replace('"rsi_rule"', '"x_y"'))  # x_y_period
    write(folder, "c_x", RSI_RULE.replace('"rsi_rule"', '"x"').replace("period", "y_period"))
    assert [s.name for s in list_strategies()][4:] == ["x_y"]
    problems = {Path(p.path).name: p.error for p in strategy_problems()}
    assert ("its stored param column 'rsi_period' (name_param) is already used by the built-in "
            "rsi_meanrev; rename the strategy or the param") in problems["a_rsi.toml"]
    assert (f"column 'x_y_period' (name_param) is already used by {folder / 'b_x.toml'}"
            in problems["c_x.toml"])


def test_a_missing_folder_means_no_rule_strategies(tmp_path, monkeypatch):
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(tmp_path / "nowhere"))
    assert len(list_strategies()) == 4 and strategy_problems() == []


def test_rule_strategies_run_sweep_scan_and_name_their_store_columns(folder):
    shutil.copy(EXAMPLES / "rsi_trend.toml", folder)
    data = {"A": make_bars(400, seed=4), "B": make_bars(400, seed=5)}
    grid = {"period": [5, 10], "oversold": [25, 35], "trend": [20, 50]}
    batch = run_many(data, "rsi_trend", grid, [{"type": "stop_loss", "pct": 0.05}])
    assert len(batch.table) == 16
    assert set(batch.table["strategy"]) == {"rsi_trend"}
    assert [c for c in batch.table.columns if c.startswith("rsi_trend_")] == [
        "rsi_trend_period", "rsi_trend_oversold", "rsi_trend_overbought", "rsi_trend_trend"]
    one = run_backtest(data["B"], "rsi_trend", {"period": 10, "oversold": 35, "trend": 50},
                       {"type": "stop_loss", "pct": 0.05})
    row = batch.table[(batch.table.symbol == "B") & (batch.table.rsi_trend_period == 10)
                      & (batch.table.rsi_trend_oversold == 35)
                      & (batch.table.rsi_trend_trend == 50)].iloc[0]
    assert row["num_trades"] == one.metrics["num_trades"]
    assert row["total_return"] == one.metrics["total_return"]
    signals = scan(data, "rsi_trend", {"period": 5, "oversold": 45, "trend": 20}, lookback=400)
    assert set(signals["strategy"]) <= {"rsi_trend"}
    entries, _ = get_strategy("rsi_trend").signals(
        *(data["A"][c].to_numpy() for c in ("open", "high", "low", "close")),
        period=5, oversold=45, trend=20)
    assert ("A" in set(signals["symbol"])) == bool(entries.any())


def test_the_folder_is_a_setting_from_config_or_environment(tmp_path, monkeypatch):
    from core.config import load_settings

    monkeypatch.delenv("HINDSIGHT_STRATEGIES", raising=False)
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(tmp_path / "absent.toml"))
    assert load_settings().strategies_folder == "strategies"
    mine = tmp_path / "mine"
    mine.mkdir()
    write(mine, "rsi_rule", RSI_RULE)
    config = tmp_path / "config.toml"
    config.write_text(f'strategies_folder = "{mine}"\n')
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(config))
    assert load_settings().strategies_folder == str(mine)
    assert get_strategy("rsi_rule").source == str(mine / "rsi_rule.toml")
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(tmp_path))
    assert load_settings().strategies_folder == str(tmp_path)
    with pytest.raises(UnknownStrategyError):
        get_strategy("rsi_rule")

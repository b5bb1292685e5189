"""Writing a rule strategy: render to TOML, check, save atomically, preview its signals."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

import numpy as np
import pytest

from core import rule_files
from core.errors import RuleError, StrategyExistsError, StrategyFileError
from core.strategies import get_strategy, list_strategies

from .conftest import make_bars

EXAMPLES = Path(__file__).resolve().parents[2] / "strategies"


def rsi_definition(**changes) -> dict:
    """The built-in rsi_meanrev's rules as a definition, under another name."""
    definition = {
        "name": "rsi_dip", "title": "RSI dip", "description": "Buy the dip.",
        "direction": "long",
        "entry": "rsi(close, period) crosses_below oversold",
        "exit": "rsi(close, period) crosses_above overbought",
        "require": ["oversold < overbought"],
        "params": {"period": {"kind": "int", "default": 14, "low": 2, "high": 500},
                   "oversold": {"kind": "float", "default": 30.0, "low": 0, "high": 100},
                   "overbought": {"kind": "float", "default": 70.0, "low": 0, "high": 100,
                                  "help": "sell above"}},
    }
    definition.update(changes)
    return definition


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.toml")), ids=lambda p: p.stem)
def test_an_example_file_rendered_again_loads_as_the_same_strategy(example):
    original = rule_files.load_file(example)
    again = rule_files.load_text(rule_files.render_toml(tomllib.loads(example.read_text())))
    assert again.definition_hash == original.definition_hash
    assert (again.title, again.description, again.params, again.direction) == (
        original.title, original.description, original.params, original.direction)


def test_render_save_load_keeps_the_definition_hash_and_the_registry_lists_it(folder):
    definition = rsi_definition()
    drafted = rule_files.draft_strategy(definition)
    path = rule_files.save_strategy(definition, folder)
    assert path == folder / "rsi_dip.toml"
    assert rule_files.load_file(path).definition_hash == drafted.definition_hash
    registered = get_strategy("rsi_dip")
    assert registered.definition_hash == drafted.definition_hash
    assert registered.source == str(path)
    assert "rsi_dip" in [s.name for s in list_strategies()]


def test_text_with_quotes_newlines_and_control_characters_round_trips():
    title = 'The "dip" \\ rule\tv2'
    description = "line one\nline two \x01 and \x7f, ünïcode ✓"
    strategy = rule_files.draft_strategy(rsi_definition(title=title, description=description))
    assert (strategy.title, strategy.description) == (title, description)


def test_empty_optional_fields_are_left_out_of_the_file():
    text = rule_files.render_toml(rsi_definition(title="", description=None, require=[]))
    assert "title" not in text and "description" not in text and "require" not in text
    assert rule_files.load_text(text).title == "rsi_dip", "the title defaults to the name"


def test_a_value_toml_cannot_hold_is_refused_naming_it():
    with pytest.raises(StrategyFileError, match=r"\[params.period\] default: cannot write"):
        rule_files.render_toml(rsi_definition(params={"period": {"kind": "int",
                                                                  "default": object()}}))
    with pytest.raises(StrategyFileError, match="unknown field 'entri'. Did you mean 'entry'"):
        rule_files.render_toml({**rsi_definition(), "entri": "close > 1"})


def test_numpy_numbers_from_a_table_are_written_as_plain_numbers():
    params = {"period": {"kind": "int", "default": np.int64(10), "low": np.float64(2.0)},
              "oversold": {"kind": "float", "default": np.float64(25.5)},
              "overbought": {"kind": "float", "default": 70}}
    strategy = rule_files.draft_strategy(rsi_definition(params=params))
    assert [p.default for p in strategy.params] == [10, 25.5, 70.0]


def test_saving_refuses_to_replace_a_file_unless_asked(folder):
    path = rule_files.save_strategy(rsi_definition(), folder)
    before = path.read_text()
    with pytest.raises(StrategyExistsError, match=r"rsi_dip.toml exists already.*overwrite"):
        rule_files.save_strategy(rsi_definition(title="Other"), folder)
    assert path.read_text() == before
    rule_files.save_strategy(rsi_definition(title="Other"), folder, overwrite=True)
    assert get_strategy("rsi_dip").title == "Other"


def test_an_overwrite_is_seen_even_when_size_and_mtime_stay_the_same(folder):
    first, second = (rsi_definition(exit=f"rsi(close, period) crosses_above overbought or "
                                         f"close < {level}") for level in (1, 2))
    path = rule_files.save_strategy(first, folder)
    cached = get_strategy("rsi_dip")
    assert cached.definition_hash == rule_files.draft_strategy(first).definition_hash
    stamp = os.stat(path)
    rule_files.save_strategy(second, folder, overwrite=True)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))  # a coarse file-system clock
    assert os.stat(path).st_size == stamp.st_size
    assert get_strategy("rsi_dip").definition_hash == (
        rule_files.draft_strategy(second).definition_hash)


def test_a_builtins_name_or_stored_column_is_refused_even_with_overwrite(folder):
    with pytest.raises(StrategyExistsError, match="'rsi_meanrev' is already used by the "
                                                  "built-in rsi_meanrev"):
        rule_files.save_strategy(rsi_definition(name="rsi_meanrev"), folder, overwrite=True)
    with pytest.raises(StrategyExistsError, match="column 'rsi_period'"):
        rule_files.save_strategy(rsi_definition(name="rsi"), folder, overwrite=True)
    assert list(folder.iterdir()) == []


def test_a_name_another_file_holds_is_refused_even_with_overwrite(folder):
    other = folder / "older.toml"
    other.write_text(rule_files.render_toml(rsi_definition()))
    with pytest.raises(StrategyExistsError, match=f"'rsi_dip' is already used by {other}"):
        rule_files.save_strategy(rsi_definition(), folder, overwrite=True)
    assert sorted(p.name for p in folder.iterdir()) == ["older.toml"]


def test_a_malformed_definition_is_refused_and_nothing_is_written(folder):
    unused = rsi_definition(exit="close < 1", require=[])
    with pytest.raises(StrategyFileError, match="param 'overbought' is declared but"):
        rule_files.save_strategy(unused, folder)
    with pytest.raises(StrategyFileError, match="column 9: unknown function 'smaa'"):
        rule_files.save_strategy(rsi_definition(exit="close < smaa(close, 5)"), folder)
    assert list(folder.iterdir()) == []


def test_a_failed_write_leaves_the_old_file_and_no_partial_one(folder, monkeypatch):
    path = rule_files.save_strategy(rsi_definition(), folder)
    before = path.read_text()

    def full_disk(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rule_files.os, "replace", full_disk)
    with pytest.raises(StrategyFileError, match="cannot write the file.*No space left"):
        rule_files.save_strategy(rsi_definition(title="New"), folder, overwrite=True)
    assert [p.name for p in folder.iterdir()] == ["rsi_dip.toml"]
    assert path.read_text() == before


def test_saving_creates_a_missing_folder(tmp_path):
    path = rule_files.save_strategy(rsi_definition(), tmp_path / "new" / "folder")
    assert rule_files.load_file(path).name == "rsi_dip"


def test_draft_signals_are_what_the_registered_builtin_fires(folder):
    bars = make_bars(400, seed=3)
    entries, exits = rule_files.draft_signals(rsi_definition(), bars, {"period": 9})
    columns = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    expected = get_strategy("rsi_meanrev").signals(*columns, period=9, oversold=30.0,
                                                   overbought=70.0)
    assert entries.any() and exits.any()
    np.testing.assert_array_equal(entries, expected[0])
    np.testing.assert_array_equal(exits, expected[1])
    assert list(folder.iterdir()) == [], "a preview writes nothing"


def test_check_rule_types_the_params_and_lists_the_ones_it_uses():
    params = rule_files.parse_params(rsi_definition()["params"])
    node = rule_files.check_rule("rsi(close, period) > overbought", params, "entry")
    assert node.params == ("overbought", "period")
    with pytest.raises(RuleError, match="entry, column 1: unknown name 'fast'"):
        rule_files.check_rule("fast > 1", params, "entry")
    with pytest.raises(RuleError, match="a period must be a whole number or an int param"):
        rule_files.check_rule("sma(close, oversold) > close", params, "exit")


def test_undeclared_names_are_the_params_a_rule_still_needs():
    params = rule_files.parse_params({"period": {"kind": "int", "default": 5}})
    text = "sma(close, period) crosses_above sma(close, slow) and rsi(close, n) < lvl or n > 1"
    assert rule_files.undeclared_names(text, params) == ["slow", "n", "lvl"]
    assert rule_files.undeclared_names("smaa(close, 5) > x = 1", params) == []
    assert rule_files.undeclared_names("smaa(close, 5) > x", params) == ["x"]

"""Manager mode "New strategy": write, check, preview, save and run a rule strategy."""
from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pytest

from core import rule_files
from core.errors import StrategyFileError
from tests.app.conftest import open_test_store
from tests.app.test_pages import manager_run, open_page, texts
from tests.conftest import strategies_folder
from views._new_strategy import params_table

PARAMS = [{"name": "period", "kind": "int", "default": 14.0, "low": 2.0, "high": 100.0},
          {"name": "oversold", "kind": "float", "default": 30.0, "help": "buy below"}]
ENTRY = "rsi(close, period) crosses_below oversold"
EXIT = "rsi(close, period) crosses_above 70"


@pytest.fixture
def folder(env, monkeypatch):
    """An empty strategies folder that the app's registry reads."""
    return strategies_folder(env, monkeypatch)


def new_mode():
    at = open_page("views/manager.py")
    at.radio(key="manager.mode").set_value("new").run()
    assert not at.exception, at.exception
    return at


def fill(at, name: str, entry: str = ENTRY, exit_: str = EXIT, params=PARAMS, title=""):
    """Type the form (the params table through its edit state, as the browser sends it)."""
    at.text_input(key="new.name").set_value(name)
    at.text_input(key="new.title").set_value(title)
    at.session_state["new.params"] = {"edited_rows": {}, "added_rows": list(params),
                                      "deleted_rows": []}
    at.text_area(key="new.entry").set_value(entry)
    at.text_area(key="new.exit").set_value(exit_)
    at.run()
    assert not at.exception, at.exception
    return at


def captions(at) -> str:
    return texts(at.caption)


def chart_sides(at) -> dict[str, int]:
    """Markers per side drawn on the "Price and signals" chart (from the data sent to it)."""
    chart = next(c for c in at.get("vega_lite_chart")
                 if json.loads(c.proto.spec).get("title") == "Price and signals")
    for dataset in chart.proto.datasets:
        frame = pa.ipc.open_stream(dataset.data.data).read_pandas()
        if "side" in frame:
            return frame["side"].value_counts().to_dict()
    return {}


def test_write_check_preview_save_and_run_a_strategy(folder, env):
    at = fill(new_mode(), "my_dip", entry="rsi(close, period) crosses_below level")
    assert "entry, column 34: unknown name 'level'" in texts(at.error)
    assert "Not declared yet: `level`" in captions(at)
    assert "The exit rule is valid; params it uses: `period`" in captions(at)
    assert at.button(key="new.save").disabled
    assert not at.metric, "no preview of a definition with errors"

    at.text_area(key="new.entry").set_value(ENTRY).run()
    assert not at.error, texts(at.error)
    assert "The entry rule is valid; params it uses: `oversold`, `period`" in captions(at)
    definition = {"name": "my_dip", "entry": ENTRY, "exit": EXIT, "params": params_table(
        pd.DataFrame(PARAMS))}
    from core.config import load_settings
    from core.data import get_provider

    bars = get_provider(load_settings()).load_bars(at.selectbox(key="new.symbol").value)
    entries, exits = rule_files.draft_signals(definition, bars)
    shown = {m.label: m.value for m in at.metric}
    assert shown["Entries"] == f"{entries.sum():,}" and shown["Exits"] == f"{exits.sum():,}"
    assert entries.sum() > 0 and exits.sum() > 0
    assert chart_sides(at) == {"entry": entries.sum(), "exit": exits.sum()}
    assert list(folder.iterdir()) == [], "nothing is written before Save"

    at.button(key="new.save").click().run()
    path = folder / "my_dip.toml"
    assert f"Saved 'my_dip' to `{path}`" in texts(at.success)
    saved = rule_files.load_file(path)
    assert saved.definition_hash == rule_files.draft_strategy(definition).definition_hash
    assert [p.default for p in saved.params] == [14, 30.0]

    at.button(key="new.run").click().run()
    assert at.radio(key="manager.mode").value == "run"
    assert at.selectbox(key="run.strategy").value == "my_dip"
    manager_run(at)
    assert not at.error, texts(at.error)
    stored = open_test_store(env).query()
    assert stored["strategy"].tolist() == ["my_dip"]
    assert stored["my_dip_period"].tolist() == [14]
    at.radio(key="manager.mode").set_value("sweep").run()
    assert "my_dip (my_dip)" in at.selectbox(key="sweep.strategy").options
    at.switch_page("views/scanner.py").run()
    assert "my_dip (my_dip)" in at.multiselect(key="scan.strategies").options


def test_an_existing_name_asks_before_it_is_overwritten(folder):
    path = rule_files.save_strategy({"name": "my_dip", "title": "Old", "entry": ENTRY,
                                     "exit": EXIT, "params": params_table(pd.DataFrame(PARAMS))},
                                    folder)
    at = fill(new_mode(), "my_dip", title="New")
    assert at.checkbox(key="new.overwrite").label == "Overwrite existing strategy 'my_dip'"
    assert at.button(key="new.save").disabled
    at.checkbox(key="new.overwrite").check().run()
    assert not at.button(key="new.save").disabled
    at.button(key="new.save").click().run()
    assert not at.error, texts(at.error)
    assert rule_files.load_file(path).title == "New"


def test_a_builtins_name_cannot_be_saved(folder):
    at = fill(new_mode(), "rsi_meanrev")
    assert "'rsi_meanrev' is already used by the built-in rsi_meanrev" in texts(at.error)
    assert at.button(key="new.save").disabled
    assert not at.metric


def test_a_malformed_file_is_listed_and_the_others_still_load(folder):
    (folder / "broken.toml").write_text('name = "broken"\nentry = "close >"\n')
    rule_files.save_strategy({"name": "fine", "entry": "close > sma(close, 5)",
                              "exit": "close < sma(close, 5)"}, folder)
    at = open_page("views/manager.py")
    assert "1 strategy file could not be loaded" in texts(at.sidebar.warning)
    assert "fine" in at.selectbox(key="run.strategy").options[-1]
    at.radio(key="manager.mode").set_value("new").run()
    listed = texts(at.error)
    assert str(folder / "broken.toml") in listed and "entry, column 8: expected a number" in listed


def test_the_params_table_becomes_typed_params():
    rows = pd.DataFrame([
        {"name": " period ", "kind": "int", "default": 14.0, "low": 2.0, "high": float("nan"),
         "choices": None, "help": ""},
        {"name": None, "kind": None, "default": float("nan"), "low": float("nan"),
         "high": float("nan"), "choices": "", "help": None},
        {"name": "window", "kind": "choice", "default": 20.0, "low": float("nan"),
         "high": float("nan"), "choices": "10, 20 50", "help": "bars"},
        {"name": "k", "kind": "float", "default": 2.0, "low": float("nan"),
         "high": float("nan"), "choices": "", "help": ""}])
    assert params_table(rows) == {
        "period": {"kind": "int", "default": 14, "low": 2},
        "window": {"kind": "choice", "choices": [10, 20, 50], "default": 20, "help": "bars"},
        "k": {"kind": "float", "default": 2.0}}
    with pytest.raises(StrategyFileError, match=r"\[params.w\] choices: 'ten' is not a number"):
        params_table(pd.DataFrame([{"name": "w", "kind": "choice", "choices": "ten, 20"}]))
    with pytest.raises(StrategyFileError, match="params row 1: give the param a name"):
        params_table(pd.DataFrame([{"name": "", "kind": "int", "default": 3.0}]))
    with pytest.raises(StrategyFileError, match="param 'n' is listed twice"):
        params_table(pd.DataFrame([{"name": "n", "kind": "int"}, {"name": "n", "kind": "int"}]))

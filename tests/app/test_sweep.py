"""Sweep read-outs: the sweep just run by default, and a universe view true to its label."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_test_store
from tests.app.test_pages import open_page, texts


def sweep_mode(at: AppTest) -> AppTest:
    at.radio(key="manager.mode").set_value("sweep").run()
    assert not at.exception, at.exception
    return at


def run_sweep(at: AppTest) -> AppTest:
    (button,) = [b for b in at.button if b.label.startswith("Run sweep")]
    button.click().run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    return at


def four_cell_sweep() -> AppTest:
    """The Manager in sweep mode, filled for rsi_meanrev periods 10 and 12 on DEMO04, DEMO05."""
    at = sweep_mode(open_page("views/manager.py"))
    base = "sweep.rsi_meanrev"
    at.number_input(key=f"{base}.period.start").set_value(10)
    at.number_input(key=f"{base}.period.stop").set_value(12)
    at.number_input(key=f"{base}.period.step").set_value(2)
    at.text_area(key="sweep.symbols").set_value("DEMO04, DEMO05")
    return at


def test_read_outs_default_to_the_sweep_just_run(filled, env):
    """The store holds ad-hoc RSI runs on DEMO01-03; a sweep on DEMO04-05 shows only its cells."""
    at = four_cell_sweep()
    run_sweep(at.run())
    assert open_test_store(env).count() == len(filled) + 4
    assert at.selectbox(key="sweep.hm.symbol").options == ["all (median)", "DEMO04", "DEMO05"]
    assert "4 cells" in texts(at.subheader)
    # Every stored cell of the strategy is one click away, the ad-hoc runs included.
    at.radio(key="sweep.cells").set_value("all").run()
    assert not at.exception, at.exception
    assert f"{len(filled) + 4} cells" in texts(at.subheader)


def test_the_sweep_symbols_can_be_every_symbol_of_the_source(env, monkeypatch):
    at = sweep_mode(open_page("views/manager.py"))
    at.checkbox(key="sweep.all_symbols").check().run()
    assert "60 cells" in [m.value for m in at.metric]


def test_a_range_end_outside_the_schema_is_named_before_running(env):
    at = sweep_mode(open_page("views/manager.py"))
    at.number_input(key="sweep.rsi_meanrev.period.stop").set_value(100_000).run()
    assert "period=100000 is out of range" in texts(at.error)
    assert not [b for b in at.button if b.label.startswith("Run sweep")]


def stored_config(env, params: dict) -> dict:
    """Symbols, median Sharpe and pooled trades of one exact MA configuration, from the store."""
    rows = open_test_store(env).query(strategy="ma_crossover", params=params)
    return {"n": len(rows), "sharpe": float(rows["sharpe_ratio"].median()),
            "trades": int(rows["num_trades"].sum())}


def test_the_universe_view_label_names_the_configuration_of_its_cards(env):
    """Two configurations that differ only in a choice param (sma / ema) stay two."""
    at = sweep_mode(open_page("views/manager.py"))
    at.selectbox(key="sweep.strategy").set_value("ma_crossover").run()
    at.multiselect(key="sweep.ma_crossover.kind").set_value(["sma", "ema"])
    at.text_area(key="sweep.symbols").set_value("DEMO01, DEMO02, DEMO03")
    run_sweep(at.run())
    top = at.dataframe[0].value
    assert sorted(top["params"]) == ["fast=10, kind=ema, slow=50", "fast=10, kind=sma, slow=50"]
    assert "Best cell fast=10, kind=" in texts(at.caption)
    assert "kind=0" not in texts(at.caption), "a choice param is named by its value"
    labels = at.selectbox(key="sweep.universe").options
    assert len(labels) == 2
    for index, label in enumerate(labels):
        at.selectbox(key="sweep.universe").select_index(index).run()
        assert not at.exception, at.exception
        kind = "ema" if "kind=ema" in label else "sma"
        want = stored_config(env, {"fast": 10, "slow": 50, "kind": kind})
        cards = {m.label: m.value for m in at.metric}
        assert cards["Symbols"] == str(want["n"]) == "3"
        assert cards["Median Sharpe"] == f"{want['sharpe']:.2f}"
        assert cards["Pooled trades"] == f"{want['trades']:,}"
        assert f"kind={kind}" in texts(at.caption)


def test_configurations_are_told_apart_by_their_params_not_only_numeric_columns():
    """Rows without a column for the choice param (sma / ema) still rank as two configurations,
    and the stability score compares the best cell only with neighbours of the same kind."""
    import pandas as pd

    from core import sweep
    from core.canonical import canonical_json, stable_hash

    rows = []
    for kind, sharpe in (("sma", 1.0), ("ema", -1.0)):
        for slow in (40, 50):
            params = {"fast": 10, "kind": kind, "slow": slow}
            for symbol in ("A", "B"):
                rows.append({"strategy": "ma_crossover", "symbol": symbol,
                             "params_json": canonical_json(params),
                             "params_hash": stable_hash(params), "exit_json": "[]",
                             "exit_hash": "e", "ma_fast": 10, "ma_slow": slow,
                             "num_trades": 10, "win_rate": 0.5, "total_return": sharpe / 10,
                             "sharpe_ratio": sharpe + slow / 1000})
    cells = pd.DataFrame(rows)
    top = sweep.top_configurations(cells, "sharpe_ratio", n=10, strategy="ma_crossover")
    assert len(top) == 4
    assert top["sharpe_ratio"].tolist() == [1.05, 1.04, -0.95, -0.96]
    score = sweep.stability_score(cells, "sharpe_ratio", strategy="ma_crossover")
    assert '"kind":"sma"' in score["best_params_json"].replace(" ", "")
    assert score["n_neighbours"] == 1 and score["neighbour_mean"] == 1.04


def test_a_sweep_reports_its_progress_on_a_bar_then_clears_it(env, monkeypatch):
    """The bar counts the backtests as they are stored, ends at all of them, and is gone once
    the read-outs show (recorded through Streamlit's own element, whatever the sweep's speed)."""
    import streamlit as st
    from streamlit.delta_generator import DeltaGenerator

    shown, cleared = [], []
    progress, empty = DeltaGenerator.progress, DeltaGenerator.empty

    def recording_progress(self, value, text=None):
        shown.append((value, text))
        return progress(self, value, text=text)

    def recording_empty(self):
        if shown:
            cleared.append(len(shown))
        return empty(self)

    monkeypatch.setattr(DeltaGenerator, "progress", recording_progress)
    monkeypatch.setattr(st, "progress", lambda value, text=None: recording_progress(
        st.container(), value, text))
    monkeypatch.setattr(DeltaGenerator, "empty", recording_empty)
    at = four_cell_sweep()
    shown.clear()
    run_sweep(at.run())
    assert shown[0] == (0.0, "Loading the bars and counting what is stored already...")
    assert shown[-1] == (1.0, "4 of 4 backtests")
    assert [value for value, _ in shown] == sorted(value for value, _ in shown)
    assert cleared and not [e for e in at.get("progress")]

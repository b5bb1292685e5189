"""Issue #18's acceptance flow for a strategy written in the browser: write and save it in the
Manager's New strategy mode, sweep it over a small grid, then find its signals in the Scanner
with the stored stats of the exact configuration the sweep computed."""
from __future__ import annotations

import math

from tests.app.conftest import open_test_store
from tests.app.test_new_strategy import fill, folder, new_mode  # noqa: F401 - fixture by name
from tests.app.test_pages import texts
from tests.app.test_sweep import run_sweep, sweep_mode

NAME = "trend_probe"
PARAMS = [{"name": "fast", "kind": "int", "default": 10.0, "low": 2.0, "high": 100.0},
          {"name": "slow", "kind": "int", "default": 30.0, "low": 2.0, "high": 200.0}]
ENTRY = "close > sma(close, fast)"
EXIT = "close < sma(close, slow)"
SYMBOLS = ("DEMO01", "DEMO02", "DEMO03")
#: The sweep's grid: two values of each param, the defaults (which the Scanner starts on) included.
GRID = {"fast": (5, 10, 5), "slow": (20, 30, 10)}
CELLS = len(SYMBOLS) * 2 * 2
#: Enough bars for the entry to fire on each of the three symbols of the demo data.
LOOKBACK = 20


def write_and_save(folder):
    at = fill(new_mode(), NAME, entry=ENTRY, exit_=EXIT, params=PARAMS)
    assert not at.error, texts(at.error)
    at.button(key="new.save").click().run()
    assert f"Saved '{NAME}'" in texts(at.success)
    assert (folder / f"{NAME}.toml").exists()
    return at


def sweep_it(at):
    sweep_mode(at)
    at.selectbox(key="sweep.strategy").set_value(NAME).run()
    assert not at.exception, at.exception
    for param, (start, stop, step) in GRID.items():
        base = f"sweep.{NAME}.{param}"
        at.number_input(key=f"{base}.start").set_value(start)
        at.number_input(key=f"{base}.stop").set_value(stop)
        at.number_input(key=f"{base}.step").set_value(step)
    at.text_area(key="sweep.symbols").set_value(", ".join(SYMBOLS)).run()
    assert not at.error, texts(at.error)
    assert f"{CELLS} cells" in [m.value for m in at.metric]
    return run_sweep(at)


def test_write_save_sweep_and_scan_a_strategy(folder, env):
    at = sweep_it(write_and_save(folder))

    stored = open_test_store(env).query(strategy=NAME)
    assert len(stored) == CELLS
    assert sorted(set(stored["symbol"])) == list(SYMBOLS)
    pairs = set(zip(stored[f"{NAME}_fast"], stored[f"{NAME}_slow"]))
    assert pairs == {(5, 20), (5, 30), (10, 20), (10, 30)}
    assert f"Sweep done: {CELLS} computed" in texts(at.success)
    assert f"{CELLS} cells" in texts(at.subheader)
    assert at.selectbox(key="sweep.hm.symbol").options == ["all (median)", *SYMBOLS]
    assert "Best cell fast=" in texts(at.caption)
    top = at.dataframe[0].value
    assert sorted(top["params"]) == ["fast=10, slow=20", "fast=10, slow=30",
                                     "fast=5, slow=20", "fast=5, slow=30"]
    assert len(at.selectbox(key="sweep.universe").options) == 4

    at.switch_page("views/scanner.py").run()
    assert not at.exception, at.exception
    at.multiselect(key="scan.strategies").set_value([NAME])
    at.radio(key="scan.universe.kind").set_value("typed").run()
    at.text_area(key="scan.universe.typed").set_value(", ".join(SYMBOLS))
    at.number_input(key="scan.lookback").set_value(LOOKBACK).run()
    assert not at.exception, at.exception
    assert not at.error, texts(at.error)
    assert at.number_input(key=f"scan.params.{NAME}.fast").value == 10
    assert at.number_input(key=f"scan.params.{NAME}.slow").value == 30

    (signals,) = [frame.value for frame in at.dataframe if "backtest_id" in frame.value]
    assert len(signals), "the permissive entry fires within the lookback"
    assert set(signals["strategy"]) == {NAME}
    assert set(signals["params"]) == {"fast=10, slow=30"}
    assert sorted(signals["symbol"]) == list(SYMBOLS)
    full_history = stored[(stored[f"{NAME}_fast"] == 10) & (stored[f"{NAME}_slow"] == 30)]
    by_symbol = full_history.set_index("symbol")
    for row in signals.itertuples(index=False):
        want = by_symbol.loc[row.symbol]
        assert str(row.backtest_id) == str(want["backtest_id"])
        assert not math.isnan(row.win_rate) and row.win_rate == want["win_rate"]
        assert not math.isnan(row.num_trades) and row.num_trades == want["num_trades"]
        assert row.num_trades > 0
        assert row.pooled_trades == full_history["num_trades"].sum()
    assert len(full_history) == len(SYMBOLS)

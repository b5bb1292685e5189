"""Run one backtest: what the form shows is what runs, and a failure replaces the old result."""
from __future__ import annotations

from tests.app.conftest import open_test_store
from tests.app.test_pages import manager_run, open_page, texts

PERIOD = "run.params.rsi_meanrev.period"


def test_an_out_of_range_value_is_refused_not_replaced_by_the_old_one(env):
    at = open_page("views/manager.py")
    at.number_input(key=PERIOD).set_value(100_000)
    manager_run(at)
    assert "period=100000 is out of range" in texts(at.error)
    assert "2..500" in texts(at.error)
    assert not at.success
    assert open_test_store(env).count() == 0, "nothing runs with a value the user did not see"


def test_the_typed_value_is_the_one_that_runs(env):
    at = open_page("views/manager.py")
    at.number_input(key=PERIOD).set_value(21)
    manager_run(at)
    assert not at.error, texts(at.error)
    assert open_test_store(env).query()["rsi_period"].tolist() == [21]


def test_an_error_replaces_the_previous_result(env):
    at = manager_run(open_page("views/manager.py"))
    assert "Stored" in texts(at.success)
    assert at.metric, "the stored run's cards are shown"
    manager_run(at, symbol="NOPE1")
    assert "Unknown symbol 'NOPE1'" in texts(at.error)
    assert not at.success, "the old green box must not sit under a new error"
    assert not at.metric, "nor the old run's cards"
    manager_run(at, symbol="DEMO01")
    assert not at.error
    assert "Stored" in texts(at.success) or "Replaced" in texts(at.success)


def test_costs_out_of_range_are_an_error_in_the_units_shown(env):
    at = open_page("views/manager.py")
    at.number_input(key="run.commission").set_value(90.0)
    manager_run(at)
    assert "Commission (% of traded value) = 90 is out of range; use 0 to 50" in texts(at.error)
    at.number_input(key="run.commission").set_value(0.1)
    at.number_input(key="run.capital").set_value(0.0)
    manager_run(at)
    assert "Initial capital" in texts(at.error)
    assert open_test_store(env).count() == 0


def test_exit_rule_values_out_of_range_are_refused(env):
    at = open_page("views/manager.py")
    at.multiselect(key="run.exit.kinds").set_value(["stop_loss"]).run()
    at.number_input(key="run.exit.stop_loss.pct").set_value(5.0)
    manager_run(at)
    assert "pct=5.0 is out of range" in texts(at.error)
    assert open_test_store(env).count() == 0


def test_the_scanner_refuses_an_out_of_range_param_instead_of_scanning_with_the_old_one(env):
    at = open_page()
    at.number_input(key="scan.params.rsi_meanrev.period").set_value(100_000).run()
    assert not at.exception, at.exception
    assert "period=100000 is out of range" in texts(at.error)
    assert not at.dataframe, "no table of signals computed with a value the user did not see"

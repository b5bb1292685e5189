"""Scope in the identity: a run's data source, window, costs, capital and settings.

Latest wins within one identity only: a sub-window run, other costs or another data source
never replace the full-history record of the configured source (docs/store.md, "Scope").
"""
from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from core import rule_files
from core.canonical import canonical_json
from core.data import DemoProvider
from core.engine import run_backtest
from core.errors import ValidationError
from core.exits import canonical_exit_rule
from core.scanner import add_backtest_stats
from core.scope import default_scope, make_scope, scope_hash, scope_label
from core.store import open_store

STOP = {"type": "stop_loss", "pct": 0.05}
PARAMS = {"period": 10}


@pytest.fixture(scope="module")
def demo():
    return DemoProvider(count=3, years=12)


@pytest.fixture
def store(tmp_path):
    with open_store(tmp_path / "store.zarr", "r+") as handle:
        yield handle


def _run(provider, start=None, end=None, **options):
    bars = provider.load_bars("DEMO01", start=start, end=end)
    return run_backtest(bars, "rsi_meanrev", PARAMS, STOP, **options)


def test_a_sub_window_run_never_replaces_the_full_history_record(store, demo):
    full = store.store_backtest(_run(demo))
    window = store.store_backtest(_run(demo, "2018-01-01", "2020-12-31"))
    assert store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP)["backtest_id"] == full
    sub = {"window": {"start": "2018-01-01", "end": "2020-12-31"}}
    assert store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP, scope=sub)["backtest_id"] == \
        window
    both = store.query(scope="all").set_index("backtest_id")
    assert both.loc[full, "scope"] == "demo · full history"
    assert both.loc[window, "scope"] == "demo · 2018-01-01 → 2020-12-31"
    assert list(store.query()["backtest_id"]) == [full]  # the default scope only
    assert len(store.history("DEMO01", "rsi_meanrev", PARAMS, STOP)) == 1
    stored = store.get_detailed_results(window)  # today's signal of this configuration
    signals = pd.DataFrame({"symbol": ["DEMO01"], "strategy": ["rsi_meanrev"],
                            "params_hash": [stored["params_hash"]],
                            "exit_hash": [stored["exit_hash"]],
                            "params_json": [canonical_json(stored["params"])],
                            "exit_json": [canonical_json(stored["exit_rule"])]})
    assert add_backtest_stats(signals, store)["backtest_id"].tolist() == [full]


def test_latest_wins_within_one_scope(store, demo):
    store.store_backtest(_run(demo))
    again = store.store_backtest(_run(demo))
    assert store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP)["backtest_id"] == again
    assert store.count() == 1 and store.count(include_history=True) == 2


def test_costs_capital_and_settings_are_each_their_own_scope(store, demo):
    plain = store.store_backtest(_run(demo))
    costly = store.store_backtest(_run(demo, costs={"commission": 0.001}))
    small = store.store_backtest(_run(demo, initial_capital=10_000))
    whole = store.store_backtest(_run(demo, whole_shares=True))
    assert store.count() == 4
    lookup = lambda scope: store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP,  # noqa: E731
                                           scope=scope)["backtest_id"]
    assert lookup(None) == lookup("default") == plain
    assert lookup({"costs": {"commission": 0.001}}) == costly
    assert lookup('{"capital": 10000}') == small
    assert lookup({"settings": {"whole_shares": True}}) == whole
    labels = store.query(scope="all").set_index("backtest_id")["scope"]
    assert labels[costly] == "demo · full history · commission 0.1 %"
    assert labels[small] == "demo · full history · capital 10,000"
    assert labels[whole] == "demo · full history · whole shares"


def test_the_default_scope_follows_the_store_handle(tmp_path, demo):
    """A result that names no source is stored under the handle's default source."""
    bars = demo.load_bars("DEMO01")
    bars.attrs.clear()  # bars from elsewhere: no source, all of them
    result = run_backtest(bars, "rsi_meanrev", PARAMS, STOP, symbol="DEMO01")
    folder_scope = {"source": "folder:/data/prices"}
    with open_store(tmp_path / "s.zarr", "r+", default_scope=folder_scope) as store:
        bid = store.store_backtest(result)
        stats = store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP)
        assert stats["backtest_id"] == bid and stats["scope"] == "folder prices · full history"
        assert stats["scope_detail"] == make_scope("folder:/data/prices")
    with open_store(tmp_path / "s.zarr", "r") as demo_store:  # configured: demo
        assert demo_store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP) is None
        assert demo_store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP,
                                    scope=folder_scope)["backtest_id"] == bid


def test_where_filters_on_the_scope_label_hash_and_definition(store, demo):
    full = store.store_backtest(_run(demo))
    window = store.store_backtest(_run(demo, "2018-01-01", None))
    hashes = store.query(scope="all").set_index("backtest_id")["scope_hash"]
    pick = lambda where: store.query(scope="all", where=where)["backtest_id"].tolist()  # noqa: E731
    assert pick("scope == 'demo · full history'") == [full]
    assert pick("scope != 'demo · full history'") == [window]
    assert pick(f"scope == '{hashes[window]}'") == [window]
    assert pick(f"scope_hash == '{hashes[full]}'") == [full]
    assert pick("definition == ''") == [full, window]
    assert pick("scope == 'nowhere'") == []
    ordered = store.query(scope="all", order_by="scope")["scope"].tolist()
    assert ordered == sorted(ordered)


def test_bad_scopes_are_refused_with_the_fix(store, demo):
    store.store_backtest(_run(demo))
    with pytest.raises(ValidationError, match="not 'all'"):
        store.get_stats("DEMO01", "rsi_meanrev", PARAMS, STOP, scope="all")
    with pytest.raises(ValidationError, match="Unknown scope field 'windwo'.*'window'"):
        store.query(scope={"windwo": "full"})
    with pytest.raises(ValidationError, match="Cannot parse scope JSON"):
        store.query(scope="{not json")
    with pytest.raises(ValidationError, match="start 2021-01-01 is after its end"):
        store.query(scope={"window": {"start": "2021-01-01", "end": "2020-01-01"}})
    with pytest.raises(ValidationError, match="Unknown cost 'comission'"):
        store.query(scope={"costs": {"comission": 0.1}})
    assert store.scope_hash("all") is None
    assert store.scope_hash() == scope_hash(default_scope())


def test_scopes_survive_compaction(store, demo):
    store.store_backtest(_run(demo))
    store.store_backtest(_run(demo, "2018-01-01", "2020-12-31"))
    store.store_backtest(_run(demo, costs={"fixed": 1.0}))
    before = store.query(scope="all").drop(columns=["created_at"])
    store.compact(grace_s=0)
    after = store.query(scope="all").drop(columns=["created_at"])
    pd.testing.assert_frame_equal(before, after)
    assert set(store.scopes()) == set(before["scope_hash"])
    for scope in store.scopes().values():
        assert scope_label(scope) in set(before["scope"])


def test_filter_choices_list_only_scopes_and_exit_rules_of_stored_backtests(store, demo):
    kept = store.store_backtest(_run(demo))
    gone = store.store_backtest(_run(demo, "2018-01-01", "2020-12-31"))
    signal_only = store.store_backtest(
        run_backtest(demo.load_bars("DEMO02"), "rsi_meanrev", PARAMS, None))
    table = store.query(scope="all").set_index("backtest_id")
    assert len(store.scopes()) == 2 and len(store.exit_rules()) == 2
    store.delete_backtest([gone, signal_only])
    assert set(store.scopes()) == {table.loc[kept, "scope_hash"]}
    assert set(store.exit_rules()) == {table.loc[kept, "exit_hash"]}
    assert store.exit_rules()[table.loc[kept, "exit_hash"]] == canonical_exit_rule(STOP)


RULE = """
name = "dip"
title = "RSI dip"
direction = "long"
entry = "rsi(close, period) crosses_below {level}"
exit = "rsi(close, period) crosses_above 70"

[params.period]
kind = "int"
default = 10
low = 2
high = 50
"""


def test_an_edited_rule_never_serves_the_old_definitions_results(tmp_path, monkeypatch, demo):
    folder = tmp_path / "strategies"
    folder.mkdir()
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(folder))
    path = folder / "dip.toml"
    path.write_text(textwrap.dedent(RULE.format(level=30)))
    bars = demo.load_bars("DEMO01")
    with open_store(tmp_path / "s.zarr", "r+") as store:
        old = store.store_backtest(run_backtest(bars, "dip", {"period": 10}))
        assert store.get_stats("DEMO01", "dip", {"period": 10})["backtest_id"] == old
        path.write_text(textwrap.dedent(RULE.format(level=25)))
        rule_files.forget(path)  # rewritten within the clock's resolution: read it again
        assert store.get_stats("DEMO01", "dip", {"period": 10}) is None  # old definition
        new = store.store_backtest(run_backtest(bars, "dip", {"period": 10}))
        assert store.get_stats("DEMO01", "dip", {"period": 10})["backtest_id"] == new
        listed = store.query(scope="all").set_index("backtest_id")["definition"]
        assert listed[old] != listed[new] and len(listed) == 2  # both stay browsable

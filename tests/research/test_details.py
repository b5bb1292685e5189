"""load_details: stored curves, curves recomputed for sweep cells, and refusals with a reason."""
from __future__ import annotations

import pandas as pd
import pytest

from core.data.folder import FolderProvider
from core.details import load_details
from core.engine import run_backtest
from core.errors import NotFoundError
from core.sweep import run_sweep


def test_sweep_cell_equity_is_recomputed_when_the_data_still_matches(store, provider):
    run_sweep("rsi_meanrev", {"period": [9, 13]}, ["DEMO01"], [{"type": "take_profit", "pct": 0.08}],
              store, provider, costs={"commission": 0.002}, whole_shares=True)
    row = store.query(strategy="rsi_meanrev", where="rsi_period == 13", scope="all").iloc[0]
    details = load_details(store, str(row["backtest_id"]), provider)
    assert details["equity_source"] == "recomputed" and details["equity_reason"] is None
    expected = run_backtest(provider.load_bars("DEMO01"), "rsi_meanrev", {"period": 13},
                            {"type": "take_profit", "pct": 0.08}, costs={"commission": 0.002},
                            whole_shares=True)
    pd.testing.assert_series_equal(details["equity"], expected.equity, check_names=False,
                                   check_freq=False)
    assert len(details["trades"]) == len(expected.trades)

    no_provider = load_details(store, str(row["backtest_id"]))
    assert no_provider["equity"] is None and "no data provider" in no_provider["equity_reason"]


def test_stored_equity_is_returned_as_is(store, provider):
    result = run_backtest(provider.load_bars("DEMO02"), "rsi_meanrev", {"period": 9}, symbol="DEMO02")
    bid = store.store_backtest(result)
    details = load_details(store, bid, provider)
    assert details["equity_source"] == "stored"
    pd.testing.assert_series_equal(details["equity"], result.equity, check_names=False,
                                   check_freq=False)


def test_changed_data_gives_no_curve_and_says_why(store, provider, tmp_path):
    bars = provider.load_bars("DEMO03")
    folder = tmp_path / "files"
    folder.mkdir()
    bars.rename_axis("date").to_csv(folder / "DEMO03.csv")
    files = FolderProvider(folder)
    run_sweep("rsi_meanrev", {"period": [9]}, ["DEMO03"], [None], store, files)
    bid = str(store.query(symbol="DEMO03", scope="all")["backtest_id"].iloc[0])
    assert load_details(store, bid, files)["equity_source"] == "recomputed"
    changed = bars.copy()
    changed.iloc[100, changed.columns.get_loc("close")] *= 1.01
    changed.iloc[100, changed.columns.get_loc("high")] = changed.iloc[100][["open", "high", "close"]].max()
    changed.rename_axis("date").to_csv(folder / "DEMO03.csv")
    details = load_details(store, bid, files)
    assert details["equity"] is None and "changed since" in details["equity_reason"]
    assert details["num_trades"] >= 0  # the stored stats are still there


def test_unknown_id_is_not_found(store):
    with pytest.raises(NotFoundError):
        load_details(store, "424242")


def test_a_recomputation_that_disagrees_is_refused(store, provider, monkeypatch):
    from core import details as details_module

    run_sweep("rsi_meanrev", {"period": [9]}, ["DEMO04"], [None], store, provider)
    bid = str(store.query(symbol="DEMO04")["backtest_id"].iloc[0])
    real = details_module._rerun

    def drifted(details, bars):
        result = real(details, bars)
        result.metrics["total_return"] += 0.01  # as if the engine had changed its conventions
        return result

    monkeypatch.setattr(details_module, "_rerun", drifted)
    out = load_details(store, bid, provider)
    assert out["equity"] is None and "different results" in out["equity_reason"]


def test_direction_summary_counts_and_medians_per_side():
    from core.details import direction_summary

    rows = pd.DataFrame({"direction": ["long", "short", "long", "long"],
                         "num_trades": [10, 4, 6, 2], "win_rate": [0.5, 0.25, 0.7, 0.1],
                         "total_return": [0.1, -0.2, 0.3, 0.0], "sharpe_ratio": [1.0, -1.0, 2.0, 0.5],
                         "max_drawdown": [-0.1, -0.3, -0.2, -0.05]})
    summary = direction_summary(rows).set_index("direction")
    assert summary.loc["long"].to_dict() == {"backtests": 3, "trades": 18, "win_rate": 0.5,
                                             "total_return": 0.1, "sharpe_ratio": 1.0,
                                             "max_drawdown": -0.1}
    assert summary.loc["short", "backtests"] == 1 and summary.loc["short", "trades"] == 4
    assert direction_summary(rows[rows["direction"] == "long"]) is None

"""The CLI end to end, in real subprocesses: JSON contract, exit codes, store commands."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from core.data.demo import DemoProvider
from core.engine import run_backtest
from core.types import METRIC_NAMES, TRADE_COLUMNS

RSI = ["--strategy", "rsi_meanrev", "--params", '{"period": 10}']
STOP = ["--exit", '{"type": "stop_loss", "pct": 0.05}']


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory):
    bars = DemoProvider(count=2, years=2).load_bars("DEMO02")
    path = tmp_path_factory.mktemp("csv") / "acme.csv"
    bars.rename_axis("Date").to_csv(path)
    return path, bars


def test_run_json_from_csv_matches_the_engine(cli, csv_file):
    path, bars = csv_file
    out = cli.json("run", *RSI, *STOP, "--csv", str(path), "--no-store")
    assert set(out) == {"metrics", "trades"}
    assert list(out["metrics"]) == list(METRIC_NAMES)
    expected = run_backtest(bars, "rsi_meanrev", {"period": 10}, {"type": "stop_loss", "pct": 0.05})
    for name, value in expected.metrics.items():
        got = out["metrics"][name]
        assert (got is None) if math.isnan(value) else got == pytest.approx(value, rel=1e-12)
    assert len(out["trades"]) == len(expected.trades) > 0
    first = out["trades"][0]
    assert list(first) == [*TRADE_COLUMNS, "direction"] and first["direction"] == "long"
    assert first["entry_time"] == expected.trades["entry_time"].iloc[0].date().isoformat()
    assert first["exit_reason"] in ("signal", "stop_loss", "end_of_data")


def test_run_stores_by_default_then_query_show_export(cli, tmp_path):
    proc = cli("run", *RSI, *STOP, "--symbol", "DEMO01", check=True)
    assert "stored backtest" in proc.stdout
    rows = cli.json("query", "--where", "num_trades >= 0")
    assert len(rows) == 1 and rows[0]["symbol"] == "DEMO01"
    bid = rows[0]["backtest_id"]
    shown = cli.json("show", bid)
    assert shown["symbol"] == "DEMO01" and shown["params"]["period"] == 10
    assert shown["equity_source"] == "stored" and len(shown["equity"]) > 400
    out_csv = tmp_path / "all.csv"
    cli("export", "--format", "csv", "--out", str(out_csv), check=True)
    assert pd.read_csv(out_csv)["backtest_id"].astype(str).tolist() == [bid]
    assert cli.json("verify")["ok"] is True


def test_sweep_in_a_subprocess(cli):
    summary = cli.json("sweep", "--strategy", "rsi_meanrev", "--grid",
                       '{"period": [8, 12], "oversold": [25, 30]}', "--symbols", "DEMO02,DEMO03",
                       "--exit", "null", "--exit", '{"type": "stop_loss", "pct": 0.05}')
    assert summary["n_cells"] == 2 * 2 * 2 * 2 == summary["n_computed"] == summary["n_stored"]


def test_bad_strategy_exits_2_with_did_you_mean(cli):
    proc = cli("run", "--strategy", "rsi_meanrevv", "--symbol", "DEMO01")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: Unknown strategy 'rsi_meanrevv'. Did you mean 'rsi_meanrev'?"


def test_usage_error_exits_2(cli):
    proc = cli("run", "--strategy", "rsi_meanrev")  # neither --symbol nor --csv
    assert proc.returncode == 2 and "one of the arguments --symbol --csv is required" in proc.stderr

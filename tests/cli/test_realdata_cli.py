"""The CLI on the committed real-format folder (subprocesses): one bad file is reported on stderr
and skipped while every other symbol works; day-first CSVs follow the date_format setting."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[1] / "fixtures" / "realdata"
FAST = '{"period": 2, "oversold": 45, "overbought": 55}'  # fires on every file within 20 bars


@pytest.fixture(scope="module")
def folder_cli(new_cli):
    return new_cli("realdata", data_source="folder", data_folder=str(REALDATA))


def test_scan_skips_the_bad_file_and_exits_0(folder_cli):
    proc = folder_cli("scan", "--strategy", "rsi_meanrev", "--params", FAST, "--lookback", "20",
                      "--no-stats", "--json")
    assert proc.returncode == 0, proc.stderr
    [skipped] = [line for line in proc.stderr.splitlines() if line.startswith("skipped")]
    assert skipped.startswith("skipped BROKEN: BROKEN.csv has")
    rows = {row["symbol"]: row for row in json.loads(proc.stdout)}
    assert sorted(rows) == ["BTCUSD", "EURUSD", "GOOG", "SAP.DE"]
    assert rows["EURUSD"]["signal_date"] == "2023-04-28T22:00:00"  # the hour is kept
    assert rows["EURUSD"]["last_bar"] == "2023-04-28T23:00:00"
    assert rows["GOOG"]["data_stale"] is True and rows["GOOG"]["bars_since_signal"] == 0


def test_sweep_all_symbols_skips_the_bad_file(folder_cli):
    proc = folder_cli("sweep", "--strategy", "rsi_meanrev", "--grid", '{"period": [10, 14]}',
                      "--all-symbols", "--no-progress", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["n_symbols"] == 4 and summary["n_computed"] == 8
    assert [s["symbol"] for s in summary["skipped"]] == ["BROKEN"]
    assert "skipped BROKEN: BROKEN.csv" in proc.stderr


def test_scan_of_only_the_bad_file_is_an_error(folder_cli):
    proc = folder_cli("scan", "--strategy", "rsi_meanrev", "--symbols", "BROKEN", "--no-stats")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: No symbol could be scanned")


def test_an_ambiguous_csv_names_the_setting_that_decides_it(new_cli, tmp_path):
    rows = "".join(f"0{d}/01/2020,10,11,9,10.5,100\n" for d in range(2, 10))
    path = tmp_path / "AMB.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n" + rows)
    args = ("run", "--strategy", "rsi_meanrev", "--params", FAST, "--csv", str(path),
            "--no-store", "--json")
    proc = new_cli("ambiguous")(*args)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "date_format" in proc.stderr and "'02/01/2020'" in proc.stderr
    monthfirst = new_cli("monthfirst", date_format="monthfirst")(*args)
    assert monthfirst.returncode == 0, monthfirst.stderr

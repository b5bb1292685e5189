"""``query --scope``: a window run is stored beside the full-history one, never over it."""
from __future__ import annotations

import json
import re

import pytest

WINDOW = {"start": "2024-06-03", "end": "2025-06-30"}  # inside the two demo years
RUN = ("run", "--strategy", "rsi_meanrev", "--symbol", "DEMO01")
STORED = re.compile(r"stored backtest (\d+) under (.+?)  \(python -m core show \1\)")


@pytest.fixture(scope="module")
def runs(new_cli):
    """DEMO01 RSI run on its full history, then on WINDOW: ``(cli, full id, window id)``."""
    cli = new_cli("query-scope")
    full = STORED.search(cli(*RUN, check=True).stdout)
    window = STORED.search(cli(*RUN, "--start", WINDOW["start"], "--end", WINDOW["end"],
                               check=True).stdout)
    assert full.group(2) == "demo · full history"
    assert window.group(2) == f"demo · {WINDOW['start']} → {WINDOW['end']}"
    return cli, full.group(1), window.group(1)


def ids(rows: list[dict]) -> list[str]:
    return [str(row["backtest_id"]) for row in rows]


def test_the_default_scope_is_the_full_history_run(runs):
    cli, full, _ = runs
    rows = cli.json("query")
    assert ids(rows) == [full]
    assert rows[0]["scope"] == "demo · full history"
    assert cli.json("query", "--scope", "default") == rows


def test_scope_all_lists_both_runs_with_their_scopes(runs):
    cli, full, window = runs
    rows = cli.json("query", "--scope", "all", "--order-by", "backtest_id")
    assert ids(rows) == [full, window]
    assert [r["scope"] for r in rows] == ["demo · full history",
                                          f"demo · {WINDOW['start']} → {WINDOW['end']}"]
    assert rows[0]["scope_hash"] != rows[1]["scope_hash"]


def test_scope_as_json_fields_or_hash_picks_the_window_run(runs):
    cli, _, window = runs
    rows = cli.json("query", "--scope", json.dumps({"window": WINDOW}))
    assert ids(rows) == [window]
    assert ids(cli.json("query", "--scope", rows[0]["scope_hash"])) == [window]
    assert cli.json("query", "--scope", json.dumps({"window": WINDOW, "capital": 5000})) == []


def test_export_takes_the_scope_too(runs):
    cli, _, window = runs
    proc = cli("export", "--format", "csv", "--out", "-", "--scope", json.dumps({"window": WINDOW}),
               check=True)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].split(",")[0] == window


@pytest.mark.parametrize("scope, named", [
    ("ful", "'ful' is not 'default', 'all', a scope hash"),
    ('{"windw": {"start": "2024-06-03"}}', "Unknown scope field 'windw'. Did you mean 'window'?"),
    ('{"window": {"start": "2024-99-01"}}', "Window start '2024-99-01' is not a date"),
    ('{"window": ', "--scope is not valid JSON"),
])
def test_a_bad_scope_exits_2_with_one_line(runs, scope, named):
    cli, _, _ = runs
    proc = cli("query", "--scope", scope)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: --scope ")
    assert named in proc.stderr


def test_show_prints_scope_and_definition(runs):
    cli, _, window = runs
    out = cli("show", window, "--no-recompute", check=True).stdout
    assert re.search(rf"scope: demo · {WINDOW['start']} → {WINDOW['end']}\n", out)
    assert re.search(r"scope_hash: [0-9a-f]{16}\n", out)
    assert re.search(r"definition: built-in\n", out)
    shown = cli.json("show", window, "--no-recompute")
    assert shown["scope_detail"]["window"] == WINDOW


def test_scan_joins_the_full_history_run(runs):
    cli, full, _ = runs
    rows = cli.json("scan", "--strategy", "rsi_meanrev", "--symbols", "DEMO01",
                    "--lookback", "400")
    assert rows, "an RSI entry within 400 bars of two demo years"
    assert {str(r["backtest_id"]) for r in rows} == {full}

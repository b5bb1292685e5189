"""``query --exit`` / ``export --exit``: stored backtests of one exit rule; bad rules exit 2."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

STOP = '{"type": "stop_loss", "pct": 0.05}'
STOP_RULE = [{"type": "signal"}, {"type": "stop_loss", "pct": 0.05}]


@pytest.fixture(scope="module")
def swept(new_cli):
    """Two symbols x two periods x two exit rules (the signal alone, the signal + a 5 % stop)."""
    cli = new_cli("query-exit")
    cli("sweep", "--strategy", "rsi_meanrev", "--grid", '{"period": [10, 14]}',
        "--symbols", "DEMO01,DEMO02", "--exit", "null", "--exit", STOP, "--no-progress", check=True)
    return cli


def test_query_exit_keeps_only_that_rule(swept):
    rows = swept.json("query", "--exit", STOP)
    assert len(rows) == 4 and all(json.loads(r["exit_rule"]) == STOP_RULE for r in rows)
    rows = swept.json("query", "--exit", "null", "--symbols", "DEMO01")
    assert len(rows) == 2 and all(json.loads(r["exit_rule"]) == [{"type": "signal"}] for r in rows)
    assert len(swept.json("query")) == 8


def test_query_exit_matches_the_rule_not_its_spelling(swept):
    spelled = '[{"pct": 0.05, "type": "stop_loss"}, {"type": "signal"}]'
    assert len(swept.json("query", "--exit", spelled, "--where", "rsi_period == 14")) == 2
    without_signal = '[{"type": "signal", "enabled": false}, ' + STOP + "]"
    assert swept.json("query", "--exit", without_signal) == []


def test_export_exit(swept):
    proc = swept("export", "--format", "csv", "--out", "-", "--exit", STOP, check=True)
    frame = pd.read_csv(io.StringIO(proc.stdout))
    assert len(frame) == 4 and all(json.loads(t) == STOP_RULE for t in frame["exit_rule"])


def _one_line_error(proc) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --exit"), proc.stderr[-2000:]
    return lines[0]


@pytest.mark.parametrize("value, needles", [
    ('{"type": "stop_loss", pct: 0.05}', ["not valid JSON", "Example: --exit"]),
    ('{"type": "stop_los", "pct": 0.05}', ["'stop_los'", "Did you mean 'stop_loss'"]),
    ('{"type": "stop_loss", "pc": 0.05}', ["'pc'", "Did you mean 'pct'"]),
    ('{"type": "stop_loss", "pct": 5}', ["pct=5.0 is out of range", "0.0001..0.99"]),
    ('"stop_loss"', ["must be a dict", "'stop_loss'"]),
])
def test_a_bad_exit_rule_is_one_line_naming_it(swept, value, needles):
    line = _one_line_error(swept("query", "--exit", value))
    for needle in needles:
        assert needle in line, line


def test_query_help_names_the_exit_option(swept):
    assert "--exit" in swept("query", "--help", check=True).stdout

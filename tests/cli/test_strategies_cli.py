"""``python -m core strategies``: the list with params and sources, and ``strategies check``."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "strategies"
BROKEN = ('name = "broken"\nentry = "rsi(close, 14) crosses_below 30"\n'
          'exit = "close > smaa(close, 5)"\n')


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """``cli(*argv) -> (exit code, stdout, stderr)`` with a tmp strategies folder holding the
    three examples."""
    folder = tmp_path / "strategies"
    shutil.copytree(EXAMPLES, folder)
    monkeypatch.setenv("HINDSIGHT_STRATEGIES", str(folder))
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(tmp_path / "none.toml"))

    def call(*argv: str):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    call.folder = folder
    return call


def test_lists_every_strategy_with_params_direction_and_source(cli):
    code, out, _ = cli("strategies")
    assert code == 0
    assert "rsi_meanrev (built-in): RSI mean reversion" in out
    assert "    period: int = 14 (2..500)" in out
    source = cli.folder / "overbought_fade.toml"
    assert f"overbought_fade (short, {source}): Fade overbought rallies" in out
    assert "    trend: int = 200 (10..400)" in out  # rsi_trend's param


def test_json_lists_strategies_and_the_files_that_failed(cli):
    (cli.folder / "broken.toml").write_text(BROKEN)
    code, out, _ = cli("strategies", "--json")
    assert code == 0
    doc = json.loads(out)
    names = [s["name"] for s in doc["strategies"]]
    assert names == ["rsi_meanrev", "ma_crossover", "bollinger_reversion", "breakout",
                     "macd_cross", "overbought_fade", "rsi_trend"]
    rsi_trend = doc["strategies"][-1]
    assert rsi_trend["direction"] == "long" and len(rsi_trend["definition_hash"]) == 16
    assert [p["name"] for p in rsi_trend["params"]] == ["period", "oversold", "overbought",
                                                         "trend"]
    assert doc["problems"] == [{"path": str(cli.folder / "broken.toml"), "error": (
        f"{cli.folder / 'broken.toml'}: exit, column 9: unknown function 'smaa'. "
        "Did you mean 'sma'?")}]


def test_plain_list_names_a_file_that_failed(cli):
    (cli.folder / "broken.toml").write_text(BROKEN)
    code, out, _ = cli("strategies")
    assert code == 0 and "not loaded: " in out and "unknown function 'smaa'" in out
    assert "rsi_trend (long" in out  # the others still load


def test_check_one_good_file(cli):
    code, out, _ = cli("strategies", "check", str(cli.folder / "rsi_trend.toml"))
    assert code == 0
    assert out.startswith(f"ok: {cli.folder / 'rsi_trend.toml'} (rsi_trend, definition ")


def test_check_a_bad_file_exits_1_with_the_error(cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(BROKEN)
    code, out, _ = cli("strategies", "check", str(bad), str(cli.folder / "macd_cross.toml"))
    assert code == 1
    assert f"error: {bad}: exit, column 9: unknown function 'smaa'. Did you mean 'sma'?" in out
    assert "ok: " in out and "macd_cross" in out


def test_check_refuses_a_name_taken_by_another_file_or_a_builtin(cli, tmp_path):
    twin = tmp_path / "twin.toml"
    twin.write_text((EXAMPLES / "rsi_trend.toml").read_text())
    code, out, _ = cli("strategies", "check", str(twin))
    holder = cli.folder / "rsi_trend.toml"
    assert code == 1 and f"name 'rsi_trend' is already used by {holder}" in out
    twin.write_text((EXAMPLES / "rsi_trend.toml").read_text().replace('"rsi_trend"', '"breakout"'))
    code, out, _ = cli("strategies", "check", str(twin), "--json")
    assert code == 1
    [result] = json.loads(out)
    assert not result["ok"] and "already used by the built-in breakout" in result["error"]


def test_check_without_files_checks_the_whole_folder(cli):
    (cli.folder / "broken.toml").write_text(BROKEN)
    code, out, _ = cli("strategies", "check")
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 4 and sum(line.startswith("ok: ") for line in lines) == 3
    (cli.folder / "broken.toml").unlink()
    assert cli("strategies", "check")[0] == 0


def test_missing_file_and_stray_argument(cli):
    code, out, _ = cli("strategies", "check", "/no/such.toml")
    assert code == 1 and "/no/such.toml: cannot read the file" in out
    code, _, err = cli("strategies", "rsi_trend")
    assert code == 2 and "invalid choice" in err


def test_a_rule_strategy_runs_from_the_cli(cli, tmp_path, monkeypatch):
    config = tmp_path / "config.toml"
    config.write_text('data_source = "demo"\ndemo_symbols = 2\ndemo_years = 3\n'
                      f'price_cache = "{tmp_path / "prices.zarr"}"\n'
                      f'store_url = "{tmp_path / "store.zarr"}"\n')
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(config))
    code, out, err = cli("run", "--strategy", "rsi_trend", "--params", '{"trend": 50}',
                         "--symbol", "DEMO01", "--no-store", "--json")
    assert code == 0, err
    assert "metrics" in json.loads(out)
    code, _, err = cli("run", "--strategy", "rsi_trnd", "--symbol", "DEMO01", "--no-store")
    assert code == 2 and "Did you mean 'rsi_trend'?" in err

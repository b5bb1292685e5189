"""CLI commands through ``main(argv)`` in this process (fast): error paths and read-outs."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """``run(*argv) -> (exit code, stdout, stderr)`` against demo data and a tmp store."""
    config = tmp_path / "config.toml"
    config.write_text('data_source = "demo"\ndemo_symbols = 3\ndemo_years = 2\n'
                      f'price_cache = "{tmp_path / "prices.zarr"}"\n'
                      f'store_url = "{tmp_path / "store.zarr"}"\n')
    monkeypatch.setenv("HINDSIGHT_CONFIG", str(config))
    for name in ("HINDSIGHT_STORE", "HINDSIGHT_DATA_SOURCE", "HINDSIGHT_PRICE_CACHE"):
        monkeypatch.delenv(name, raising=False)

    def call(*argv: str):
        code = main(list(argv))
        out = capsys.readouterr()
        return code, out.out, out.err

    return call


@pytest.mark.parametrize("args, needle", [
    (["run", "--strategy", "rsi_meanrev", "--params", "{period: 14}", "--symbol", "DEMO01"],
     "--params is not valid JSON"),
    (["run", "--strategy", "rsi_meanrev", "--params", '{"period": 1}', "--symbol", "DEMO01"],
     "period=1 is out of range"),
    (["run", "--strategy", "rsi_meanrev", "--exit", '{"type": "stop_los"}', "--symbol", "DEMO01"],
     "Did you mean 'stop_loss'?"),
    (["run", "--strategy", "rsi_meanrev", "--symbol", "NOPE"], "Unknown symbol 'NOPE'"),
    (["run", "--strategy", "rsi_meanrev", "--csv", "/no/such.csv"], "CSV file not found"),
    (["show", "999999"], "No stored backtest with id"),
    (["sweep", "--strategy", "rsi_meanrev", "--grid", '{"period": {"start": 2, "stop": 500}}',
      "--all-symbols", "--max-cells", "100"], "1,497 cells"),
    (["sweep", "--strategy", "rsi_meanrev", "--grid", "[1, 2]", "--symbols", "DEMO01"],
     "--grid must be a JSON object"),
    (["query", "--where", "win_rat > 0.5"], "win_rat"),
    (["export", "--format", "csv", "--out", "/no/such/dir/out.csv"], "Check the path"),
    (["walkforward", "--strategy", "rsi_meanrev", "--grid", '{"period": [10]}', "--symbol",
      "DEMO01", "--in-sample", "400", "--out-of-sample", "200"], "fewer than one window"),
])
def test_bad_input_is_a_message_and_exit_2(run, args, needle):
    if args[0] in ("query", "show", "export"):  # these need a store to exist
        assert run("run", "--strategy", "rsi_meanrev", "--symbol", "DEMO01")[0] == 0
    code, _, err = run(*args)
    assert code == 2, err
    assert needle in err
    assert "Traceback" not in err


def test_sweep_skips_what_is_stored_and_read_outs_work(run, tmp_path):
    argv = ["sweep", "--strategy", "rsi_meanrev", "--grid",
            '{"period": [8, 12], "oversold": [25, 30]}', "--all-symbols",
            "--exit", "null", "--exit", '{"type": "stop_loss", "pct": 0.05}', "--json"]
    code, out, _ = run(*argv)
    assert code == 0 and json.loads(out)["n_computed"] == 24
    code, out, _ = run(*argv)
    assert json.loads(out)["n_skipped"] == 24 and json.loads(out)["n_computed"] == 0
    code, out, _ = run(*argv, "--force")
    assert json.loads(out)["n_computed"] == 24
    assert len(json.loads(run("query", "--json")[1])) == 24
    assert len(json.loads(run("query", "--history", "--json")[1])) == 48
    code, out, _ = run("universe", "--strategy", "rsi_meanrev", "--params", '{"period": 8}',
                       "--exit", '{"type": "stop_loss", "pct": 0.05}', "--json")
    view = json.loads(out)
    assert code == 0 and view["n_symbols"] == 3 and len(view["symbols"]) == 3
    code, out, _ = run("query", "--columns", "symbol,win_rate", "--order-by=-win_rate",
                       "--limit", "5")
    assert code == 0 and "win_rate" in out and "(5 rows)" in out
    as_json = json.loads(run("query", "--order-by", "-win_rate", "--json")[1])
    rates = [row["win_rate"] for row in as_json if row["win_rate"] is not None]
    assert rates == sorted(rates, reverse=True) and len(rates) > 1
    target = tmp_path / "cells.parquet"
    assert run("export", "--format", "parquet", "--out", str(target))[0] == 0
    assert len(pd.read_parquet(target)) == 24


class RecordingBar:
    """Stands in for the tqdm bar: what the command reported, and whether it closed it."""

    def __init__(self, total, desc, unit):
        self.total, self.desc, self.unit, self.n, self.seen, self.closed = \
            total, desc, unit, 0, [], False

    def update(self, step):
        self.n += step
        self.seen.append((self.n, self.total))

    def close(self):
        self.closed = True


def test_walkforward_shows_progress_per_window_unless_asked_not_to(run, monkeypatch):
    import core.cli

    bars = []

    def recording(enabled, total, desc, unit="bt"):
        bars.append(RecordingBar(total, desc, unit) if enabled else None)
        return bars[-1]

    monkeypatch.setattr(core.cli, "_progress_bar", recording)
    argv = ["walkforward", "--strategy", "rsi_meanrev", "--grid", '{"period": [8, 14]}',
            "--symbol", "DEMO01", "--in-sample", "200", "--out-of-sample", "100", "--no-store"]
    code, _, err = run(*argv)
    assert code == 0, err
    (bar,) = bars
    assert (bar.desc, bar.unit, bar.closed) == ("walk-forward", "window", True)
    assert bar.seen == [(1, 3), (2, 3), (3, 3)]
    assert run(*argv, "--no-progress")[0] == 0 and bars[-1] is None


def test_walkforward_command_stores_windows_in_the_main_store(run, tmp_path):
    from core.store import open_store
    from core.walkforward import stored_windows

    argv = ["--strategy", "rsi_meanrev", "--grid", '{"period": [8, 14], "oversold": [25, 35]}',
            "--symbol", "DEMO01", "--in-sample", "200", "--out-of-sample", "100"]
    code, out, err = run("walkforward", *argv, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["windows"] == 3 and len(report["window_rows"]) == 3
    assert report["parent_id"].startswith("wf")
    assert not (tmp_path / "walkforward.zarr").exists()  # one store
    windows = stored_windows(open_store(str(tmp_path / "store.zarr")), report["parent_id"])
    assert len(windows) == 2 * report["windows_with_winner"]
    assert run("query", "--json")[1].strip() == "[]"  # the full-history scope holds none of them

    code, out, _ = run("walkforwards", "--json")
    (listed,) = json.loads(out)
    assert code == 0 and listed["parent_id"] == report["parent_id"]
    assert (listed["scheme"], listed["in_sample"], listed["windows"]) == ("rolling", 200, 3)
    code, out, _ = run("walkforwards", report["parent_id"], "--json")
    assert code == 0 and json.loads(out)["stored_ids"] == report["stored_ids"]
    code, out, _ = run("walkforwards", report["parent_id"])
    assert code == 0 and f"walk-forward {report['parent_id']}: rsi_meanrev on DEMO01" in out

    code, _, err = run("walkforward", *argv, "--wf-store", str(tmp_path / "wf.zarr"))
    assert code == 2 and "--wf-store was removed" in err
    code, _, err = run("walkforwards", "wfnope")
    assert code == 2 and "No stored walk-forward 'wfnope'" in err


def test_an_old_walkforward_store_beside_the_store_is_imported_on_first_use(run, tmp_path):
    from core.data.demo import DemoProvider
    from core.store import open_store
    from core.walkforward import walk_forward

    bars = DemoProvider(count=3, years=2).load_bars("DEMO02")
    with open_store(str(tmp_path / "walkforward.zarr"), "r+") as old:
        report = walk_forward(bars, "rsi_meanrev", {"period": [8, 14]}, in_sample=200,
                              out_of_sample=100, store=old)
    code, out, err = run("walkforwards", "--json")
    assert code == 0, err
    assert f"imported {len(report.stored_ids)} walk-forward backtests" in err
    assert [row["parent_id"] for row in json.loads(out)] == [report.parent_id]
    assert (tmp_path / "walkforward.zarr.imported").is_dir()
    assert not (tmp_path / "walkforward.zarr").exists()
    code, out, err = run("walkforwards", "--json")
    assert code == 0 and "imported" not in err and len(json.loads(out)) == 1


def test_refresh_command_is_idle_when_nothing_changed(run):
    assert run("run", "--strategy", "rsi_meanrev", "--symbol", "DEMO02")[0] == 0
    code, out, err = run("refresh", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert (report["configs"], report["current"], report["rerun"]) == (1, 1, 0)
    code, out, _ = run("refresh", "--no-progress")
    assert code == 0 and "1 stored, 1 up to date, 0 re-run" in out


def test_global_options_work_before_or_after_the_command(run, tmp_path):
    other = str(tmp_path / "other.zarr")
    assert run("--store", other, "run", "--strategy", "rsi_meanrev", "--symbol", "DEMO01")[0] == 0
    assert run("run", "--strategy", "rsi_meanrev", "--symbol", "DEMO02", "--store", other)[0] == 0
    code, out, _ = run("query", "--json", "--store", other)
    assert code == 0 and sorted(r["symbol"] for r in json.loads(out)) == ["DEMO01", "DEMO02"]
    assert not (tmp_path / "store.zarr").exists()


def test_compact_and_verify(run):
    for symbol in ("DEMO01", "DEMO02", "DEMO03"):
        assert run("run", "--strategy", "rsi_meanrev", "--symbol", symbol)[0] == 0
    code, out, _ = run("compact", "--json")
    assert code == 0 and isinstance(json.loads(out), dict)
    code, out, _ = run("verify")
    assert code == 0 and "verify: ok" in out
    code, out, _ = run("query", "--json")
    assert sorted(r["symbol"] for r in json.loads(out)) == ["DEMO01", "DEMO02", "DEMO03"]


def test_verify_exits_1_when_the_store_is_damaged(run, tmp_path):
    assert run("run", "--strategy", "rsi_meanrev", "--symbol", "DEMO01")[0] == 0
    chunks = [p for p in (tmp_path / "store.zarr" / "segments").rglob("*")
              if p.is_file() and p.name != "zarr.json"]
    assert chunks
    target = max(chunks, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    code, out, _ = run("verify", "--json")
    assert code == 1 and json.loads(out)["ok"] is False

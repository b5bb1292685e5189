"""Bad input on the command line: exit 2 and one line on stderr, never a traceback."""
from __future__ import annotations

import pytest

HUGE = "9" * 5000
RSI = ["--strategy", "rsi_meanrev"]


@pytest.fixture(scope="module")
def stored(new_cli):
    """A CLI whose store holds one backtest, so query commands reach the where parser."""
    cli = new_cli("bad-input")
    cli("run", *RSI, "--symbol", "DEMO01", check=True)
    return cli


def one_line_error(proc, *needles: str) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_a_start_date_past_2262(stored):
    proc = stored("run", *RSI, "--symbol", "DEMO01", "--start", "3000-01-01", "--no-store")
    one_line_error(proc, "'3000-01-01'", "2262-04-11")


def test_an_end_date_far_in_the_future_means_no_end(stored):
    out = stored.json("run", *RSI, "--symbol", "DEMO01", "--end", "9999-12-31", "--no-store")
    assert out["metrics"]["num_trades"] >= 0


def test_where_with_400_nested_parentheses(stored):
    where = "(" * 400 + "win_rate > 0" + ")" * 400
    one_line_error(stored("query", "--where", where), "nests parentheses", "32")


def test_where_with_400_nested_nots(stored):
    one_line_error(stored("query", "--where", "not " * 400 + "win_rate > 0"), "nests")


def test_where_with_a_date_past_2262(stored):
    """A date datetime64[ns] cannot hold still compares as a date: no row starts after it."""
    assert stored.json("query", "--where", "start > '3000-01-01'") == []
    assert len(stored.json("query", "--where", "start < '3000-01-01'")) == 1


@pytest.mark.parametrize("number", ["1e400", "9" * 1000])
def test_where_with_a_number_beyond_float_range(stored, number):
    one_line_error(stored("query", "--where", f"win_rate > {number}"), "out of range")


@pytest.mark.parametrize("option,value", [
    ("--params", f'{{"period": {HUGE}}}'),
    ("--params", '{"period": 1e400}'),
    ("--exit", f'{{"type": "stop_loss", "pct": {HUGE}}}'),
])
def test_run_with_a_huge_number(stored, option, value):
    proc = stored("run", *RSI, "--symbol", "DEMO01", option, value, "--no-store")
    message = one_line_error(proc)
    assert len(message) < 400  # the 5000 digits are not echoed back


@pytest.mark.parametrize("grid", [
    f'{{"period": [{HUGE}]}}',
    f'{{"period": {{"start": 5, "stop": {HUGE}}}}}',
    '{"period": [1e400]}',
    '{"period": {"start": 5, "stop": 1e400}}',
])
def test_sweep_with_a_huge_number_in_the_grid(stored, grid):
    proc = stored("sweep", *RSI, "--grid", grid, "--symbols", "DEMO01", "--no-progress")
    assert len(one_line_error(proc)) < 400


def test_json_nested_too_deeply(stored):
    deep = "[" * 50_000 + "]" * 50_000
    one_line_error(stored("run", *RSI, "--symbol", "DEMO01", "--params", deep, "--no-store"),
                   "--params")


@pytest.mark.parametrize("dates,shown", [
    (["2262-04-10", "2262-04-12", "2300-01-01"], "'2262-04-12', '2300-01-01'"),
    (["1600-01-03", "1600-01-04"], "'1600-01-03'"),
])
def test_csv_with_dates_beyond_what_pandas_holds(stored, tmp_path, dates, shown):
    path = tmp_path / "FAR.csv"
    path.write_text("Date,Open,High,Low,Close,Volume\n"
                    + "".join(f"{d},1,2,0.5,1.5,10\n" for d in dates))
    proc = stored("run", *RSI, "--csv", str(path), "--no-store")
    one_line_error(proc, "FAR.csv", "outside 1677-09-22 to 2262-04-11", shown)


def test_an_unknown_store_url_scheme(stored):
    one_line_error(stored("query", "--store", "bogus://x"), "bogus")


def test_a_file_that_is_not_a_csv(stored, tmp_path):
    path = tmp_path / "BIN.csv"
    path.write_bytes(bytes(range(256)) * 8)
    one_line_error(stored("run", *RSI, "--csv", str(path), "--no-store"), "BIN")

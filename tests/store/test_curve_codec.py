"""The equity-curve codec: bit-exact round trips (codec alone, real stores on disk, compaction,
real engine output), golden packings, fallback to plain values, format-1 segments still read."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import StoreCorruptionError
from core.store import FORMAT_VERSION, BacktestStore, _curves
from core.store import _curvecodec as codec
from core.types import TRADE_COLUMNS
from curve_reference import reference_encode, reference_positions
from factories import make_result

DATES = pd.bdate_range("2019-01-01", periods=400, unit="ns")


def bits(values) -> np.ndarray:
    return np.asarray(values, np.float64).view(np.int64)


# ------------------------------------------------------------------------------ curves
def engine_like(rng: np.random.Generator, n: int, whole: bool = False
                ) -> tuple[pd.Series, pd.DataFrame]:
    """Cash while flat, cash + units x cent-priced close while held (like core.kernels)."""
    dates = DATES[:n]
    close = np.round(40 * np.exp(np.cumsum(rng.normal(0, 0.02, n))), 2)
    equity = np.empty(n)
    cash, t, rows = 100_000.0, 0, []
    while t < n:
        gap, hold = int(rng.integers(1, 12)), int(rng.integers(0, 15))
        entry = t + gap
        equity[t:min(entry, n)] = cash
        if entry >= n:
            break
        exit_ = min(entry + hold, n - 1)
        units = cash * 0.999 / close[entry]
        units = np.floor(units) if whole else units
        cash_in = cash - units * close[entry] * 1.001
        equity[entry:exit_] = cash_in + units * close[entry:exit_]
        pnl = units * close[exit_] * 0.999 - units * close[entry] * 1.001
        cash = cash_in + units * close[exit_] * 0.999
        equity[exit_] = cash
        rows.append((dates[entry], close[entry], dates[exit_], close[exit_], units, pnl,
                     pnl / (units * close[entry]), exit_ - entry, "signal"))
        t = exit_ + 1
    trades = pd.DataFrame(rows, columns=list(TRADE_COLUMNS)) if rows else None
    return pd.Series(equity, index=dates, name="equity"), trades


def random_trades(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """Trades whose dates do not line up with the curve (overlapping, outside it, reversed)."""
    k = int(rng.integers(1, 6))
    entry = DATES[rng.integers(0, min(n + 20, len(DATES)), k)]
    exit_ = DATES[rng.integers(0, min(n + 20, len(DATES)), k)]
    return pd.DataFrame({"entry_time": entry, "entry_price": rng.uniform(1, 100, k),
                         "exit_time": exit_, "exit_price": rng.uniform(1, 100, k),
                         "units": rng.choice([0.0, 1.0, 3.5, 1e-300, 1e300], k),
                         "pnl": rng.normal(0, 10, k), "return": rng.normal(0, 0.1, k),
                         "bars_held": rng.integers(0, 20, k),
                         "exit_reason": ["signal"] * k})[list(TRADE_COLUMNS)]


KINDS = ("engine", "engine_whole", "random", "constant", "single", "misaligned", "off_grid",
         "none")


def make_curve(kind: str, seed: int, n: int) -> tuple[pd.Series | None, pd.DataFrame | None]:
    rng = np.random.default_rng(seed)
    if kind in ("engine", "engine_whole", "off_grid"):
        equity, trades = engine_like(rng, n, whole=kind == "engine_whole")
        if kind == "off_grid":  # float32-ish prices: steps are not multiples of units x 0.01
            equity = equity * np.float64(np.float32(1.0000001))
        return equity, trades
    if kind == "single":
        return pd.Series([float(rng.normal(1e5, 1e3))], index=DATES[:1]), None
    values = {"random": rng.normal(0, 1e6, n), "constant": np.full(n, 12_345.678),
              "misaligned": 1e5 + np.round(rng.normal(0, 100, n), 2),
              "none": np.zeros(0)}[kind]
    trades = random_trades(rng, n) if kind == "misaligned" else None
    return (pd.Series(values, index=DATES[:n]) if len(values) else None), trades


def results_of(specs: list[tuple[str, int, int]], tag: str) -> list:
    out = []
    for i, (kind, seed, n) in enumerate(specs):
        result = make_result(symbol=f"{tag}{i}", seed=seed, curve=False, trades=0)
        result.equity, result.trades = make_curve(kind, seed, n)
        out.append(result)
    return out


def segment_folders(store_path: Path) -> list[Path]:
    """The folders of the segments the manifest lists (replaced ones may linger for readers)."""
    manifest = json.loads((store_path / "manifest.json").read_text())
    return [store_path / "segments" / entry["name"] for entry in manifest["segments"]]


def assert_same_curves(store: BacktestStore, ids: list[str], results: list) -> None:
    for bid, result in zip(ids, results):
        details = store.get_detailed_results(bid)
        if result.equity is None:
            assert details["equity"] is None
            continue
        assert np.array_equal(bits(details["equity"]), bits(result.equity))
        assert details["equity"].index.equals(result.equity.index)


# ------------------------------------------------------------------------------ codec alone
def test_golden_packing():
    """Flat, held (units 25: q = 0.25 exactly), flat: k by hand, residuals 0 and 1 ULP."""
    nudged = np.nextafter(990.25, np.inf)
    values = np.array([1000.0, 1000.0, 990.5, 991.0, nudged, 1001.25, 1001.25])
    packed = codec.encode(values, np.array([7]), np.array([1]), np.array([2]), np.array([5]),
                          np.array([25.0]))
    assert packed.layout.tolist() == [[codec.CENTS, 3, 3]]
    assert packed.runs.tolist() == [[2, bits(1000.0)], [~3, bits(990.5)], [2, bits(1001.25)]]
    assert packed.steps.tolist() == [0, 2 * codec.STEP_BASE, -codec.STEP_BASE + 1]
    assert len(packed.plain) == 0
    decoded = codec.decode(np.array([7]), packed, np.array([1]), np.array([25.0]))
    assert np.array_equal(bits(decoded), bits(values))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_non_finite_value_is_found_where_it_is(bad):
    """Flat, held and anchor points alike; a flat run of repeated inf too (same bits)."""
    base = np.array([1000.0, 1000.0, 990.5, 991.0, 990.25, 1001.25, 1001.25])
    for i in range(len(base)):
        values = np.concatenate([np.full(3, 5.0), base])
        values[3 + i] = bad
        with pytest.raises(codec.NonFiniteValue) as info:
            codec.encode(values, np.array([3, 7]), np.array([0, 1]), np.array([2]),
                         np.array([5]), np.array([25.0]))
        assert info.value.position == 3 + i
    with pytest.raises(codec.NonFiniteValue) as info:
        codec.encode(np.full(4, bad), np.array([4]), np.array([0]), np.empty(0, np.int64),
                     np.empty(0, np.int64), np.empty(0))
    assert info.value.position == 0


def test_golden_fallbacks():
    """A moving stretch without a trade, and -0.0 vs 0.0, stay plain and exact."""
    values = np.array([1.0, 2.0, 3.0, 0.0, -0.0, 5.0])
    lengths = np.array([3, 0, 2, 1])
    packed = codec.encode(values, lengths, np.zeros(4, np.int64), np.empty(0, np.int64),
                          np.empty(0, np.int64), np.empty(0))
    assert packed.layout[:, 0].tolist() == [codec.PLAIN, codec.PLAIN, codec.PLAIN, codec.CENTS]
    assert packed.runs.tolist() == [[1, bits(5.0)]]
    assert np.array_equal(bits(packed.plain), bits([1.0, 2.0, 3.0, 0.0, -0.0]))
    assert np.array_equal(bits(codec.decode(lengths, packed, np.zeros(4, np.int64),
                                            np.empty(0))), bits(values))


def test_trade_positions_across_calendars():
    """Each time is located in its own row's dates, whatever the other calendars hold."""
    calendar = np.array([10, 20, 30, 40, 5, 15, 25])  # two blocks: [10..40] and [5..25]
    lengths, starts = np.array([4, 3, 2]), np.array([0, 4, 1])  # row 2: dates [20, 30]
    rows = np.array([0, 0, 1, 1, 2, 2, 2])
    times = np.array([20, 45, 15, 16, 20, 5, 31])
    found = codec.trade_positions(lengths, starts, calendar, np.bincount(rows), times)
    assert found.tolist() == [1, 4, 1, 2, 0, 0, 2]
    assert reference_positions(lengths, starts, calendar, rows, times).tolist() == found.tolist()
    one = np.array([10, 20, 30, 40, 50])  # one increasing calendar, rows starting inside it
    lengths, starts, rows = np.array([3, 2, 5]), np.array([1, 3, 0]), np.array([0, 0, 1, 2, 2])
    times = np.array([5, 45, 35, 30, 60])
    found = codec.trade_positions(lengths, starts, one, np.bincount(rows), times)
    assert found.tolist() == [0, 3, 0, 2, 5]
    assert reference_positions(lengths, starts, one, rows, times).tolist() == found.tolist()


@pytest.mark.parametrize("calendar", [np.array([10, 20, 30, 40, 5, 15, 25]),
                                      np.array([5, 10, 15, 20, 25, 30, 40])])
def test_trade_positions_of_entry_and_exit_columns_at_once(calendar):
    lengths, starts, rows = np.array([4, 3, 2]), np.array([0, 4, 1]), np.array([0, 0, 1, 2])
    times = np.array([[20, 45], [15, 16], [5, 31], [20, 26]])
    both = codec.trade_positions(lengths, starts, calendar, np.bincount(rows), times)
    assert both.shape == (4, 2)
    for j in (0, 1):
        one = codec.trade_positions(lengths, starts, calendar, np.bincount(rows), times[:, j])
        assert both[:, j].tolist() == one.tolist()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 10_000), st.integers(1, 300)),
                min_size=1, max_size=8))
def test_codec_round_trip_property(specs):
    """Any mix of curves packs and unpacks bit for bit; engine-like curves use the grid."""
    curves = [make_curve(kind, seed, n) for kind, seed, n in specs]
    lengths = np.array([0 if e is None else len(e) for e, _ in curves])
    values = np.concatenate([np.zeros(0)] + [e.to_numpy() for e, _ in curves if e is not None])
    logs = [t if t is not None and e is not None else None for e, t in curves]
    trade_lengths = np.array([0 if t is None else len(t) for t in logs])
    rows = np.repeat(np.arange(len(curves)), trade_lengths)
    frames = [t for t in logs if t is not None]
    trades = pd.concat(frames) if frames else pd.DataFrame(columns=list(TRADE_COLUMNS))
    starts = np.zeros(len(curves), np.int64)
    times = [trades[c].to_numpy("datetime64[ns]").view(np.int64)
             for c in ("entry_time", "exit_time")]
    positions = [codec.trade_positions(lengths, starts, DATES.asi8, trade_lengths, t)
                 for t in times]
    for found, t in zip(positions, times):  # the compiled search finds what numpy finds
        assert found.tolist() == reference_positions(lengths, starts, DATES.asi8, rows,
                                                     t).tolist()
    units = trades["units"].to_numpy(np.float64)
    packed = codec.encode(values, lengths, trade_lengths, *positions, units)
    decoded = codec.decode(lengths, packed, trade_lengths, units)
    assert np.array_equal(bits(decoded), bits(values))
    reference = reference_encode(values, lengths, trade_lengths, *positions, units)
    for name in ("layout", "runs", "steps"):  # the compiled packer packs like numpy does
        assert np.array_equal(getattr(reference, name), getattr(packed, name)), name
    assert np.array_equal(bits(reference.plain), bits(packed.plain))
    for (kind, _, n), code in zip(specs, packed.layout[:, 0]):
        if kind in ("engine", "engine_whole", "constant", "single"):
            assert code == codec.CENTS, kind
        elif kind == "random" and n > 1:
            assert code == codec.PLAIN, kind


def test_damaged_packing_is_refused():
    values = np.array([5.0, 5.0, 5.0])
    packed = codec.encode(values, np.array([3]), np.array([0]), np.empty(0, np.int64),
                          np.empty(0, np.int64), np.empty(0))
    assert packed.layout.tolist() == [[codec.CENTS, 1, 0]]
    packed.runs = packed.runs[:0]
    with pytest.raises(ValueError):
        codec.decode(np.array([3]), packed, np.array([0]), np.empty(0))


# ------------------------------------------------------------------------------ real stores
@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 10_000), st.integers(1, 300)),
                min_size=1, max_size=6), st.integers(1, 3))
def test_store_round_trip_property(specs, batches):
    """Curves of every kind read back bit for bit from disk, before and after compact()."""
    with tempfile.TemporaryDirectory() as folder:
        store = BacktestStore(Path(folder) / "store.zarr")
        ids, results = [], []
        for b in range(batches):
            batch = results_of(specs, f"B{b}X")
            ids += store.store_many(batch)
            results += batch
        assert_same_curves(store, ids, results)
        store.compact()
        assert_same_curves(BacktestStore(Path(folder) / "store.zarr", mode="r"), ids, results)
        assert store.verify()["ok"]
        store.close()


def test_engine_output_round_trips_on_the_grid(store):
    """run_backtest on the demo data (cent prices): every curve packs on the grid, exactly."""
    from core.data.demo import DemoProvider
    from core.engine import run_backtest

    provider = DemoProvider(count=2, years=3)
    results = [run_backtest(provider.load_bars(symbol), "rsi_meanrev", {"period": period},
                            exit_rule, symbol=symbol, whole_shares=whole)
               for symbol in provider.symbols()
               for period in (5, 14)
               for exit_rule in (None, {"type": "stop_loss", "pct": 0.03})
               for whole in (False, True)]
    ids = store.store_many(results)
    assert_same_curves(store, ids, results)
    store.compact()
    assert_same_curves(store, ids, results)
    segment = store._index.readable[0].reader
    assert (segment.read("eq_layout")[:, 0] == codec.CENTS).all()
    assert not segment.has("eq_plain")


def test_run_many_curves_store_as_a_batch_and_read_back_exactly(store):
    """run_many(with_curves) -> store_many(batch): each row's curve and trades equal
    run_backtest's."""
    from core.data.demo import DemoProvider
    from core.engine import run_backtest, run_many

    provider = DemoProvider(count=3, years=2)
    bars = {symbol: provider.load_bars(symbol) for symbol in provider.symbols()}
    rules = [None, {"type": "stop_loss", "pct": 0.03}]
    batch = run_many(bars, "rsi_meanrev", {"period": [5, 9, 14]}, rules, with_trades=True,
                     with_curves=True)
    ids = store.store_many(batch)
    for row in (0, 7, len(ids) - 1):
        got = batch.table.iloc[row]
        single = run_backtest(bars[got["symbol"]], "rsi_meanrev", json.loads(got["params_json"]),
                              json.loads(got["exit_json"]), symbol=got["symbol"])
        details = store.get_detailed_results(ids[row])
        assert np.array_equal(bits(details["equity"]), bits(single.equity))
        assert details["equity"].index.equals(single.equity.index)
        pd.testing.assert_frame_equal(details["trades"].reset_index(drop=True),
                                      single.trades[list(TRADE_COLUMNS)].reset_index(drop=True),
                                      check_dtype=False)  # the store keeps TRADE_COLUMNS
    segment = store._index.readable[0].reader
    assert (segment.read("eq_layout")[:, 0] == codec.CENTS).all()  # packed on the grid
    assert store.verify()["ok"]


def test_format_1_segments_still_read_and_compact(store, store_path, monkeypatch):
    """A segment holding every curve in eq_values (format 1) reads back, then compacts to 2."""
    old = results_of([("engine", 1, 200), ("random", 2, 50), ("none", 3, 1)], "OLD")
    monkeypatch.setattr(_curves, "pack_curves", lambda data: None)
    old_ids = store.store_many(old)
    monkeypatch.undo()
    (segment,) = segment_folders(store_path)
    assert (segment / "eq_values").is_dir() and not (segment / "eq_layout").exists()
    new = results_of([("engine_whole", 4, 300), ("constant", 5, 20)], "NEW")
    new_ids = store.store_many(new)
    assert_same_curves(store, old_ids + new_ids, old + new)
    store.compact()
    (segment,) = segment_folders(store_path)
    assert (segment / "eq_layout").is_dir() and not (segment / "eq_values").exists()
    assert_same_curves(store, old_ids + new_ids, old + new)
    assert json.loads((store_path / "manifest.json").read_text())["format_version"] == FORMAT_VERSION


def test_damaged_steps_chunk_is_reported(store, store_path):
    ids = store.store_many(results_of([("engine", 7, 300), ("engine", 8, 300)], "D"))
    (segment,) = segment_folders(store_path)
    chunk = next(p for p in (segment / "eq_steps").rglob("*") if p.is_file() and
                 p.name != "zarr.json")
    data = bytearray(chunk.read_bytes())
    data[len(data) // 3] ^= 0xFF
    chunk.write_bytes(bytes(data))
    handle = BacktestStore(store_path, mode="r")
    report = handle.verify()
    assert not report["ok"] and report["damaged"][0]["segment"] == segment.name
    assert any("eq_steps" in p for p in report["damaged"][0]["problems"])
    with pytest.raises(StoreCorruptionError, match=segment.name):
        handle.get_detailed_results(ids[0])

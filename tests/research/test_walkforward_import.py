"""A walkforward.zarr beside the store (where earlier versions kept walk-forward windows) is
copied into the main store once: every backtest with its curve, trades, note and tags."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from core.engine import run_backtest
from core.store import open_store
from core.walkforward import (RUN_TAG, import_legacy_walkforward_store, import_walkforward_store,
                              list_walk_forwards, load_walk_forward, stored_windows,
                              walk_forward, window_tags)
from tests.research.test_walkforward import figures

GRID = {"period": [6, 10], "oversold": [30, 35]}


def as_earlier_versions_wrote_it(store, report) -> None:
    """Notes and tags as before the run record existed: no record, no ``wf-run`` tag."""
    for _, row in stored_windows(store, report.parent_id).iterrows():
        store.set_note(row["backtest_id"], tags=window_tags(report.parent_id, row["window"],
                                                            row["part"]),
                       note=f"walk-forward {report.parent_id} window {row['window']} "
                            f"{row['part'].upper()}")


@pytest.fixture
def old_store(provider, tmp_path):
    """``walkforward.zarr`` beside ``store.zarr``: two walk-forwards (one in the form earlier
    versions wrote, one with its record) and one backtest without tags."""
    bars = provider.load_bars("DEMO01")
    with open_store(str(tmp_path / "walkforward.zarr"), "r+") as old:
        legacy = walk_forward(bars, "rsi_meanrev", GRID, in_sample=200, out_of_sample=100,
                              store=old)
        as_earlier_versions_wrote_it(old, legacy)
        recorded = walk_forward(bars, "rsi_meanrev", GRID, in_sample=150, out_of_sample=100,
                                anchored=True, metric="total_return", store=old)
        old.store_backtest(run_backtest(bars.iloc[:300], "rsi_meanrev", {"period": 9},
                                        symbol="DEMO01"))
        frame = old.query(include_history=True, scope="all")
    assert legacy.windows["params_json"].notna().all()
    return {"legacy": legacy, "recorded": recorded, "rows": len(frame), "bars": bars}


def test_the_old_store_is_imported_once_with_everything(old_store, tmp_path):
    main_url = str(tmp_path / "store.zarr")
    legacy, recorded, bars = old_store["legacy"], old_store["recorded"], old_store["bars"]
    winner = json.loads(legacy.windows["params_json"].iloc[0])
    with open_store(main_url, "r+") as main:
        full = main.store_backtest(run_backtest(bars, "rsi_meanrev", winner, symbol="DEMO01"))

    assert import_legacy_walkforward_store(main_url) == old_store["rows"]
    assert not (tmp_path / "walkforward.zarr").exists()
    assert (tmp_path / "walkforward.zarr.imported").is_dir()
    assert import_legacy_walkforward_store(main_url) == 0  # the marker: nothing left to import

    main = open_store(main_url)
    assert len(main.query(include_history=True, scope="all")) == old_store["rows"] + 1
    assert main.get_stats("DEMO01", "rsi_meanrev", winner)["backtest_id"] == full
    listed = list_walk_forwards(main).set_index("parent_id")
    assert sorted(listed.index) == sorted([legacy.parent_id, recorded.parent_id])
    assert pd.isna(listed.loc[legacy.parent_id, "scheme"])  # earlier versions did not record it
    assert listed.loc[recorded.parent_id, "scheme"] == "anchored"

    loaded = load_walk_forward(main, legacy.parent_id)
    assert loaded.metric is None and loaded.spec == {}
    pd.testing.assert_frame_equal(loaded.windows.drop(columns=["is_id", "oos_id"]),
                                  legacy.windows.drop(columns=["is_id", "oos_id"]), rtol=1e-12,
                                  check_like=True)  # the same columns; the metric's not first
    pd.testing.assert_series_equal(loaded.oos_equity, legacy.oos_equity, rtol=1e-12)
    again = load_walk_forward(main, recorded.parent_id)
    assert (again.metric, again.spec) == ("total_return", recorded.spec)
    assert figures(again) == pytest.approx(figures(recorded), rel=1e-12, nan_ok=True)


def test_every_copy_keeps_curve_trades_tags_and_its_window(old_store, tmp_path):
    main = open_store(str(tmp_path / "store.zarr"), "r+")
    import_walkforward_store(main, str(tmp_path / "walkforward.zarr"))
    old = open_store(str(tmp_path / "walkforward.zarr"))
    before, after = stored_windows(old), stored_windows(main)
    assert len(after) == len(before) > 0
    for (_, was), (_, now) in zip(before.iterrows(), after.iterrows()):
        a = old.get_detailed_results(was["backtest_id"])
        b = main.get_detailed_results(now["backtest_id"])
        assert (b["symbol"], b["params"], b["exit_rule"], b["tags"], b["note"]) == \
               (a["symbol"], a["params"], a["exit_rule"], a["tags"], a["note"])
        assert b["metrics"] == pytest.approx(a["metrics"], nan_ok=True)
        pd.testing.assert_series_equal(b["equity"], a["equity"])
        pd.testing.assert_frame_equal(b["trades"], a["trades"])
        assert b["scope_detail"]["window"] == {"start": a["start"].strftime("%Y-%m-%d"),
                                               "end": a["end"].strftime("%Y-%m-%d")}
    assert after["tags"].astype(str).str.contains(RUN_TAG).sum() == 1  # the recorded one only


def test_walk_forwards_already_in_the_store_are_not_copied_again(old_store, tmp_path):
    main = open_store(str(tmp_path / "store.zarr"), "r+")
    first = import_walkforward_store(main, str(tmp_path / "walkforward.zarr"))
    assert first == old_store["rows"]
    windows = len(stored_windows(main))
    # Only the backtest without walk-forward tags has nothing to recognise it by.
    assert import_walkforward_store(main, str(tmp_path / "walkforward.zarr")) == 1
    assert len(stored_windows(main)) == windows


def test_no_old_store_means_nothing_to_do(tmp_path):
    assert import_legacy_walkforward_store(str(tmp_path / "store.zarr")) == 0
    assert not (tmp_path / "store.zarr").exists()

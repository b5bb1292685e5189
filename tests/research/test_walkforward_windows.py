"""Walk-forward window arithmetic, checked against hand-computed windows."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import ValidationError
from core.walkforward import Window, walk_forward_windows


def test_rolling_windows_hand_computed():
    # 100 bars, IS 40, OOS 20, step 20: OOS [40,60) [60,80) [80,100); a 4th would end at 120
    assert walk_forward_windows(100, 40, 20) == [
        Window(0, 0, 40, 40, 60),
        Window(1, 20, 60, 60, 80),
        Window(2, 40, 80, 80, 100),
    ]


def test_anchored_windows_hand_computed():
    assert walk_forward_windows(100, 40, 20, anchored=True) == [
        Window(0, 0, 40, 40, 60),
        Window(1, 0, 60, 60, 80),
        Window(2, 0, 80, 80, 100),
    ]


def test_step_longer_than_oos_leaves_gaps_and_partial_tail_is_dropped():
    # 105 bars, IS 30, OOS 10, step 25: OOS [30,40) [55,65) [80,90); next OOS [105,115) no
    assert walk_forward_windows(105, 30, 10, step=25) == [
        Window(0, 0, 30, 30, 40),
        Window(1, 25, 55, 55, 65),
        Window(2, 50, 80, 80, 90),
    ]
    # 99 bars: the third OOS window would end at 100 > 99 and is dropped
    assert len(walk_forward_windows(99, 40, 20)) == 2


def test_oos_windows_tile_without_overlap():
    windows = walk_forward_windows(1000, 250, 63)
    assert all(b.oos_start == a.oos_end for a, b in zip(windows, windows[1:]))
    assert all(w.is_end == w.oos_start and w.is_end - w.is_start == 250 for w in windows)
    assert windows[-1].oos_end <= 1000 < windows[-1].oos_end + 63


@pytest.mark.parametrize("args, message", [
    ((100, 40, 20, 10), "would overlap"),
    ((50, 40, 20), "fewer than one window"),
    ((100, 0, 20), "in_sample must be"),
    ((100, 40, 2.5), "out_of_sample must be"),
])
def test_bad_windows_are_refused_with_the_fix(args, message):
    with pytest.raises(ValidationError, match=message):
        walk_forward_windows(*args)


@given(st.integers(2, 3000), st.integers(1, 400), st.integers(1, 200), st.integers(0, 100),
       st.booleans())
def test_window_count_and_bounds(n, in_sample, oos, extra_step, anchored):
    step = oos + extra_step
    if in_sample + oos > n:
        with pytest.raises(ValidationError):
            walk_forward_windows(n, in_sample, oos, step, anchored)
        return
    windows = walk_forward_windows(n, in_sample, oos, step, anchored)
    assert len(windows) == (n - in_sample - oos) // step + 1
    for k, w in enumerate(windows):
        assert w.k == k and w.oos_end - w.oos_start == oos and w.oos_end <= n
        assert w.is_end == w.oos_start == in_sample + k * step
        assert w.is_start == (0 if anchored else k * step)

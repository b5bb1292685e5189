"""The reduction of long lines for drawing (``views._charts.downsample_positions``): peaks and
troughs stay exact, the output never grows past what was asked."""
from __future__ import annotations

import numpy as np
import pytest

from views import _charts


def buckets_of(n: int, max_points: int) -> list[np.ndarray]:
    """Positions of each bucket as the function documents them: the points between the first
    and the last, in ``(max_points - 2) // 2`` runs of ``ceil(inner / buckets)`` points."""
    count = (max_points - 2) // 2
    size = -(-(n - 2) // count)
    inner = np.arange(1, n - 1)
    return [inner[start:start + size] for start in range(0, inner.size, size)]


def series(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "walk":
        return np.cumsum(rng.normal(size=n))
    if kind == "spikes":
        values = np.zeros(n)
        values[rng.integers(0, n, size=max(1, n // 50))] = rng.normal(scale=100, size=max(1, n // 50))
        return values
    if kind == "steps":  # many ties
        return np.repeat(rng.integers(0, 5, size=n // 10 + 1), 10)[:n].astype(float)
    return np.sin(np.arange(n) / 7.0)


@pytest.mark.parametrize("kind", ["walk", "spikes", "steps", "sine"])
@pytest.mark.parametrize("n, max_points", [(2520, 500), (2520, 150), (20_000, 800), (1001, 7),
                                           (503, 500), (10, 4), (37, 5)])
def test_every_bucket_keeps_its_low_and_high_and_the_ends(kind, n, max_points):
    values = series(kind, n, seed=n + max_points)
    keep = _charts.downsample_positions(values, max_points)
    assert len(keep) <= max_points
    assert np.all(np.diff(keep) > 0)
    assert keep[0] == 0 and keep[-1] == n - 1
    kept = set(keep.tolist())
    for bucket in buckets_of(n, max_points):
        lows = bucket[values[bucket] == values[bucket].min()]
        highs = bucket[values[bucket] == values[bucket].max()]
        assert kept & set(lows.tolist()), f"bucket {bucket[0]}..{bucket[-1]} lost its low"
        assert kept & set(highs.tolist()), f"bucket {bucket[0]}..{bucket[-1]} lost its high"
    # so the drawn line reaches the series' exact extremes
    assert values[keep].max() == values.max() and values[keep].min() == values.min()


def test_short_series_are_kept_whole():
    assert _charts.downsample_positions(np.arange(500.0), 500).tolist() == list(range(500))
    assert _charts.downsample_positions(np.array([]), 500).tolist() == []


@pytest.mark.parametrize("max_points", [2, 3])
def test_too_few_points_for_a_bucket_keep_the_ends(max_points):
    assert _charts.downsample_positions(np.arange(100.0), max_points).tolist() == [0, 99]


def test_asking_for_fewer_than_two_points_is_an_error():
    with pytest.raises(ValueError):
        _charts.downsample_positions(np.arange(100.0), 1)


def test_nans_are_not_picked_over_numbers():
    values = np.arange(3000.0)
    values[::3] = np.nan
    keep = _charts.downsample_positions(values, 100)
    assert len(keep) <= 100
    assert not np.isnan(values[keep[1:-1]]).any()
    assert np.nanmax(values) in values[keep]

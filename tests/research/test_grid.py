"""Grid specification: counting before allocation, the cap, expansion and random sampling."""
from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.errors import GridTooLargeError, ParamError, UnknownStrategyError
from core.strategies import validate_params
from core.sweep import (check_grid_size, count_grid, expand_grid, expand_or_sample,
                        grid_size_text, run_sweep)


def test_count_grid_hand_computed():
    # period 5..30 (26 values) x oversold 20..40 step 4 (6) x overbought 60..80 step 4 (6)
    ranges = {"period": {"start": 5, "stop": 30}, "oversold": {"start": 20, "stop": 40, "step": 4},
              "overbought": {"start": 60, "stop": 80, "step": 4}}
    assert count_grid(ranges, ["A"] * 10, [None]) == 26 * 6 * 6 * 10 == 9_360
    assert count_grid(ranges, 10, [None, {"type": "stop_loss", "pct": 0.05}]) == 18_720
    assert count_grid({"period": [10, 14], "oversold": 30}, 3, None) == 6
    # float steps: 0.5..2.0 step 0.25 is 7 values despite binary rounding
    assert count_grid({"num_std": {"start": 0.5, "stop": 2.0, "step": 0.25}}, 1, None) == 7
    assert count_grid({"num_std": {"start": 0.1, "stop": 0.3, "step": 0.1}}, 1, None) == 3


def test_count_grid_of_a_huge_grid_allocates_nothing():
    huge = {"period": {"start": 1, "stop": 10**9}, "oversold": {"start": 0, "stop": 10**6}}
    assert count_grid(huge, 100, None) == 10**9 * (10**6 + 1) * 100


@given(st.lists(st.integers(1, 6), min_size=1, max_size=3), st.integers(1, 5), st.integers(1, 3))
def test_count_matches_expansion_size(lengths, n_symbols, n_rules):
    ranges = {f"p{i}": list(range(n)) for i, n in enumerate(lengths)}
    expected = math.prod(lengths) * n_symbols * n_rules
    assert count_grid(ranges, ["S"] * n_symbols, [None] * n_rules) == expected


def test_cap_refuses_with_number_and_cap(provider):
    ranges = {"period": {"start": 2, "stop": 500}, "oversold": {"start": 0, "stop": 29}}
    with pytest.raises(GridTooLargeError) as info:
        run_sweep("rsi_meanrev", ranges, provider.symbols(), [None], None, provider, max_cells=10_000)
    message = str(info.value)
    assert "59,880" in message  # 499 x 30 x 4 symbols
    assert "10,000" in message
    assert "max-tries" in message


def test_an_absurd_grid_is_refused_in_one_short_line_without_its_exact_count(provider):
    ranges = {"period": {"start": 1, "stop": 1e300}}
    assert count_grid(ranges, 4, None) > 10**300  # the count itself stays exact
    with pytest.raises(GridTooLargeError) as info:
        run_sweep("rsi_meanrev", ranges, provider.symbols(), [None], None, provider,
                  max_cells=250_000)
    message = str(info.value)
    assert message.startswith("The sweep has more than 10^12 cells")
    assert "250,000" in message and "--max-tries N" in message and "Narrow the ranges" in message
    assert len(message) < 300 and "\n" not in message


def test_grid_sizes_up_to_10_to_the_12_are_printed_exactly():
    assert grid_size_text(1_347_300) == "1,347,300"
    assert grid_size_text(10**12) == "1,000,000,000,000"
    assert grid_size_text(10**12 + 1) == "more than 10^12"
    with pytest.raises(GridTooLargeError, match=r"^The sweep has 1,347,300 cells \(3 symbols\), more"):
        check_grid_size(1_347_300, 250_000, " (3 symbols)")


@pytest.mark.parametrize("spec", [{"start": -1e308, "stop": 1e308},
                                  {"start": 0, "stop": 1, "step": 1e-320}])
def test_a_range_too_long_to_count_is_named(spec):
    with pytest.raises(ParamError, match="Range for 'period' has too many values to count.*Narrow"):
        count_grid({"period": spec})


def test_expand_grid_validates_and_drops_cross_param_violations():
    grid = expand_grid("rsi_meanrev", {"period": [10, 14.0], "oversold": [30, 70], "overbought": [70]})
    # oversold 70 >= overbought 70 is left out; 14.0 becomes the int 14
    assert grid == [
        {"period": 10, "oversold": 30.0, "overbought": 70.0},
        {"period": 14, "oversold": 30.0, "overbought": 70.0},
    ]
    assert all(type(g["period"]) is int for g in grid)


def test_expand_grid_bad_input_names_the_value():
    with pytest.raises(ParamError, match="Did you mean 'period'"):
        expand_grid("rsi_meanrev", {"perod": [10]})
    with pytest.raises(ParamError, match="period=1 is out of range"):
        expand_grid("rsi_meanrev", {"period": [1, 10]})
    with pytest.raises(ParamError, match="stop .* is below start"):
        expand_grid("rsi_meanrev", {"period": {"start": 20, "stop": 10}})
    with pytest.raises(ParamError, match="step must be > 0"):
        expand_grid("rsi_meanrev", {"period": {"start": 5, "stop": 10, "step": 0}})
    with pytest.raises(ParamError, match="empty list"):
        expand_grid("rsi_meanrev", {"period": []})
    with pytest.raises(UnknownStrategyError, match="Did you mean 'rsi_meanrev'"):
        expand_grid("rsi_meanrevv", {})


def test_expand_grid_order_and_defaults():
    grid = expand_grid("ma_crossover", {"fast": {"start": 5, "stop": 15, "step": 5}, "slow": [10, 20]})
    expected = [validate_params("ma_crossover", {"fast": f, "slow": s})
                for f, s in itertools.product([5, 10, 15], [10, 20]) if f < s]
    assert grid == expected
    assert all(g["kind"] == "sma" for g in grid)


def test_random_sampling_is_seeded_distinct_and_inside_the_grid():
    ranges = {"period": {"start": 2, "stop": 40}, "oversold": {"start": 10, "stop": 30, "step": 2},
              "overbought": {"start": 60, "stop": 90, "step": 3}}
    full = {tuple(sorted(g.items())) for g in expand_grid("rsi_meanrev", ranges)}
    a, _ = expand_or_sample("rsi_meanrev", ranges, max_tries=50, seed=7)
    b, _ = expand_or_sample("rsi_meanrev", ranges, max_tries=50, seed=7)
    c, _ = expand_or_sample("rsi_meanrev", ranges, max_tries=50, seed=8)
    assert a == b and a != c
    keys = [tuple(sorted(g.items())) for g in a]
    assert len(keys) == len(set(keys)) == 50
    assert set(keys) <= full


def test_sampling_more_than_the_grid_is_the_whole_grid():
    ranges = {"period": [10, 14, 20]}
    sampled, _ = expand_or_sample("rsi_meanrev", ranges, max_tries=100, seed=0)
    assert sampled == expand_grid("rsi_meanrev", ranges)


def test_max_tries_counts_against_the_cap(provider):
    ranges = {"period": {"start": 2, "stop": 500}, "oversold": {"start": 0, "stop": 29}}
    report = run_sweep("rsi_meanrev", ranges, provider.symbols()[:1], [None], None, provider,
                       max_cells=100, max_tries=20, seed=1)
    assert report.sampled and report.n_params == 20 and report.n_computed == 20


@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.data())
def test_decode_walks_the_grid_in_product_order(sizes, data):
    from core.sweep import _decode

    names = [f"p{i}" for i in range(len(sizes))]
    axes = {n: [f"{n}={v}" for v in range(s)] for n, s in zip(names, sizes)}
    product = list(itertools.product(*(axes[n] for n in names)))
    index = data.draw(st.integers(0, len(product) - 1))
    assert _decode(index, sizes, axes, names) == product[index]


def test_a_range_too_long_to_list_is_refused_before_sampling():
    """A typo'd stop (1e300) with max_tries used to list every value, forever."""
    with pytest.raises(GridTooLargeError, match="'period'.*more than 10\\^12.*Narrow"):
        expand_or_sample("rsi_meanrev", {"period": {"start": 1, "stop": 1e300}}, max_tries=5)

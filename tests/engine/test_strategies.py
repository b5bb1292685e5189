"""Strategy registry: declarations, validation, signals and crossing conventions."""
from __future__ import annotations

import numpy as np
import pytest

from core.errors import ParamError, UnknownStrategyError
from core.strategies import (
    ABOVE,
    BELOW,
    Param,
    crossings,
    get_strategy,
    list_strategies,
    min_bars,
    param_columns,
    validate_params,
)

from . import reference
from .conftest import make_bars


def test_registry_lists_the_four_built_ins_with_prefixes():
    built_ins = [s for s in list_strategies() if s.source == "built-in"]
    assert [(s.name, s.prefix) for s in built_ins] == [
        ("rsi_meanrev", "rsi"), ("ma_crossover", "ma"), ("bollinger_reversion", "bb"),
        ("breakout", "dc"),
    ]
    for s in built_ins:
        assert s.params[-1].name == "direction" and s.params[-1].choices == ("long", "short")
        assert s.title and s.description and s.params
        for p in s.params:
            assert p.kind_name in ("int", "float", "choice") and p.help
            validate_params(s.name, {p.name: p.default})


def test_unknown_strategy_suggests_the_nearest():
    with pytest.raises(UnknownStrategyError, match="Did you mean 'rsi_meanrev'"):
        get_strategy("rsi_meanrevv")


def test_validate_fills_defaults_in_declaration_order_and_coerces_ints():
    params = validate_params("rsi_meanrev", {"overbought": 75, "period": 14.0})
    assert list(params) == ["period", "oversold", "overbought"]
    assert params == {"period": 14, "oversold": 30.0, "overbought": 75.0}
    assert type(params["period"]) is int and type(params["overbought"]) is float
    assert validate_params("rsi_meanrev", None) == validate_params("rsi_meanrev", {})


@pytest.mark.parametrize("params, message", [
    ({"perod": 14}, "no parameter 'perod'. Did you mean 'period'"),
    ({"period": "14"}, "period must be a number"),
    ({"period": True}, "period must be a number"),
    ({"period": 14.5}, "whole number, got 14.5"),
    ({"period": 1}, r"period=1 is out of range; use 2..500"),
    ({"oversold": float("nan")}, "finite"),
    ({"oversold": 80, "overbought": 70}, "oversold .* must be below overbought"),
])
def test_bad_rsi_params_are_named(params, message):
    with pytest.raises(ParamError, match=message):
        validate_params("rsi_meanrev", params)


def test_ma_crossover_rules():
    with pytest.raises(ParamError, match=r"fast \(50\) must be below slow \(20\)"):
        validate_params("ma_crossover", {"fast": 50, "slow": 20})
    with pytest.raises(ParamError, match="Did you mean 'ema'"):
        validate_params("ma_crossover", {"kind": "emaa"})
    with pytest.raises(ParamError, match="must be a mapping"):
        validate_params("ma_crossover", [("fast", 3)])


def test_param_columns_use_prefix_and_choice_index():
    params = validate_params("ma_crossover", {"fast": 5, "slow": 30, "kind": "ema"})
    assert param_columns("ma_crossover", params) == {"ma_fast": 5.0, "ma_slow": 30.0, "ma_kind": 1.0}
    assert param_columns("rsi_meanrev", validate_params("rsi_meanrev", None)) == {
        "rsi_period": 14.0, "rsi_oversold": 30.0, "rsi_overbought": 70.0}


def test_min_bars_is_first_defined_bar_plus_two():
    assert min_bars("rsi_meanrev", {"period": 14}) == 16  # RSI from bar 14
    assert min_bars("ma_crossover", {"fast": 5, "slow": 20}) == 21  # SMA(20) from bar 19
    assert min_bars("bollinger_reversion", {"period": 20}) == 21
    assert min_bars("breakout", {"period": 20, "exit_period": 30}) == 32  # prior-30 low from 30


def test_param_accepts_type_or_string_kind():
    assert Param("x", int, 1).kind_name == Param("x", "int", 1).kind_name == "int"
    assert Param("x", "float", 1.0, 0, 2).coerce(2, "s") == 2.0


def test_crossing_definitions_include_touching_the_level():
    # crosses below 30 at t: x[t-1] >= 30 and x[t] < 30
    assert crossings(np.array([50, 30, 29, 31.0]), 30, BELOW).tolist() == [False, False, True, False]
    # crosses above 70 at t: x[t-1] <= 70 and x[t] > 70
    assert crossings(np.array([70, 70, 71, 69.0]), 70, ABOVE).tolist() == [False, False, True, False]
    assert crossings(np.array([np.nan, 10, 40.0]), 30, ABOVE).tolist() == [False, False, True]


@pytest.mark.parametrize("name, params", [
    ("rsi_meanrev", {"period": 5, "oversold": 35, "overbought": 65}),
    ("ma_crossover", {"fast": 3, "slow": 12, "kind": "sma"}),
    ("ma_crossover", {"fast": 3, "slow": 12, "kind": "ema"}),
    ("bollinger_reversion", {"period": 10, "num_std": 1.0}),
    ("breakout", {"period": 10, "exit_period": 5}),
    ("rsi_meanrev", {"period": 5, "oversold": 35, "overbought": 65, "direction": "short"}),
    ("ma_crossover", {"fast": 3, "slow": 12, "kind": "ema", "direction": "short"}),
    ("bollinger_reversion", {"period": 10, "num_std": 1.0, "direction": "short"}),
    ("breakout", {"period": 10, "exit_period": 5, "direction": "short"}),
])
def test_signals_match_reference_and_have_no_look_ahead(name, params):
    bars = make_bars(300, seed=7)
    arrays = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    entries, exits = get_strategy(name).signals(*arrays, **params)
    assert entries.dtype == bool and exits.dtype == bool and entries.any() and exits.any()
    ref_entries, ref_exits = reference.signals(name, validate_params(name, params),
                                               *[a.tolist() for a in arrays])
    assert entries.tolist() == ref_entries and exits.tolist() == ref_exits
    for t in (60, 150, 299):
        e, x = get_strategy(name).signals(*[a[:t] for a in arrays], **params)
        assert (e == entries[:t]).all() and (x == exits[:t]).all()


@pytest.mark.parametrize("name, params", [
    ("rsi_meanrev", {"period": 5, "oversold": 35, "overbought": 65}),
    ("ma_crossover", {"fast": 3, "slow": 12, "kind": "sma"}),
    ("bollinger_reversion", {"period": 10, "num_std": 1.0}),
    ("breakout", {"period": 10, "exit_period": 5}),
])
def test_short_rules_are_the_documented_mirror(name, params):
    """RSI: enter above overbought, exit below oversold; MA: enter on the cross down, exit on
    the cross up (the long rules swapped); Bollinger: enter above the upper band, exit below
    the middle; breakout: enter below the prior `period` low, exit above the prior
    `exit_period` high."""
    bars = make_bars(400, seed=11)
    arrays = [bars[c].to_numpy() for c in ("open", "high", "low", "close")]
    o, h, lo, c = arrays
    strategy = get_strategy(name)
    long_entries, long_exits = strategy.signals(*arrays, **params)
    entries, exits = strategy.signals(*arrays, **params, direction="short")
    if name == "rsi_meanrev":
        from core.indicators import rsi
        value = rsi(c, 5)
        assert entries.tolist() == crossings(value, 65.0, ABOVE).tolist()
        assert exits.tolist() == crossings(value, 35.0, BELOW).tolist()
    elif name == "ma_crossover":
        assert entries.tolist() == long_exits.tolist() and exits.tolist() == long_entries.tolist()
    elif name == "bollinger_reversion":
        from core.indicators import bollinger
        middle, upper, _ = bollinger(c, 10, 1.0)
        assert entries.tolist() == crossings(c - upper, 0.0, ABOVE).tolist()
        assert exits.tolist() == crossings(c - middle, 0.0, BELOW).tolist()
    else:
        from core.indicators import donchian
        assert entries.tolist() == crossings(c - donchian(h, lo, 10)[1], 0.0, BELOW).tolist()
        assert exits.tolist() == crossings(c - donchian(h, lo, 5)[0], 0.0, ABOVE).tolist()
    assert entries.any() and exits.any()
    assert min_bars(name, {**params, "direction": "short"}) == min_bars(name, params)

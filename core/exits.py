"""Exit rules as data: schema, validation, canonical form, labels and the kernel vector.

A rule is a dict such as ``{"type": "stop_loss", "pct": 0.05}``; a list combines several.
The canonical form is a list sorted by type with every param present; the strategy's own
``{"type": "signal"}`` exit is always there unless disabled with
``{"type": "signal", "enabled": false}`` (kept in that form so a form round-trips).
Within-bar order and fill prices are documented in docs/engine.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from core.errors import ParamError, UnknownExitRuleError, did_you_mean
from core.strategies import Param

#: Exit rule type -> its params (the UI builds forms from this; ``signal`` takes none).
EXIT_RULE_TYPES: dict[str, tuple[Param, ...]] = {
    "signal": (),
    "stop_loss": (
        Param("pct", float, 0.05, 0.0001, 0.99, 0.01,
              help="exit when price moves pct against the entry (a short: above it)"),
    ),
    "take_profit": (
        Param("pct", float, 0.10, 0.0001, 100.0, 0.01,
              help="exit when price moves pct in favour of the entry (a short: below it)"),
    ),
    "trailing_stop": (
        Param("pct", float, 0.05, 0.0001, 0.99, 0.01,
              help="exit pct below the highest high since entry (a short: above the lowest low)"),
    ),
    "time_stop": (
        Param("bars", int, 10, 1, 100_000, 1, help="exit at the open N bars after the entry bar"),
    ),
    "atr_stop": (
        Param("mult", float, 2.0, 0.1, 100.0, 0.1,
              help="stop at entry - mult x ATR (a short: entry + mult x ATR)"),
        Param("period", int, 14, 1, 1000, 1, help="ATR look-back in bars"),
    ),
}

#: Layout of ``exit_vector``: one float per slot, NaN when the rule is absent.
VECTOR_SLOTS: tuple[str, ...] = (
    "signal", "stop_loss", "take_profit", "trailing_stop", "time_stop", "atr_mult", "atr_period",
)


def _rule_dicts(rule: Any) -> list:
    if rule is None:
        return []
    if isinstance(rule, Mapping):
        return [rule]
    if isinstance(rule, (list, tuple)):
        return list(rule)
    raise ParamError(
        f"An exit rule must be a dict like {{'type': 'stop_loss', 'pct': 0.05}} or a list of "
        f"them, got {rule!r}."
    )


def _canonical_one(item: Any) -> dict:
    """One validated rule dict with every param present (signal: enabled only when False)."""
    if not isinstance(item, Mapping):
        raise ParamError(f"Each exit rule must be a dict with a 'type', got {item!r}.")
    if "type" not in item:
        raise ParamError(f"Exit rule {dict(item)!r} has no 'type'; e.g. {{'type': 'stop_loss'}}.")
    kind = item["type"]
    if not isinstance(kind, str) or kind not in EXIT_RULE_TYPES:
        raise UnknownExitRuleError(
            f"Unknown exit rule {kind!r}.{did_you_mean(kind, EXIT_RULE_TYPES)}"
        )
    if kind == "signal":
        return _canonical_signal(item)
    params = EXIT_RULE_TYPES[kind]
    names = [p.name for p in params]
    for key in item:
        if key != "type" and key not in names:
            raise ParamError(f"Exit rule {kind!r} has no parameter {key!r}.{did_you_mean(key, names)}")
    out = {"type": kind}
    for p in params:
        out[p.name] = p.coerce(item[p.name], f"exit rule {kind}") if p.name in item else p.default
    return out


def _canonical_signal(item: Mapping) -> dict:
    for key in item:
        if key not in ("type", "enabled"):
            raise ParamError(
                f"Exit rule 'signal' has no parameter {key!r}.{did_you_mean(key, ['enabled'])}"
            )
    enabled = item.get("enabled", True)
    if not isinstance(enabled, (bool, np.bool_)):
        raise ParamError(f"Exit rule 'signal': enabled must be true or false, got {enabled!r}.")
    return {"type": "signal"} if enabled else {"type": "signal", "enabled": False}


def canonical_exit_rule(rule: Mapping | list | None) -> list[dict]:
    """Validated canonical list: sorted by type, every param present, signal unless disabled."""
    rules = [_canonical_one(item) for item in _rule_dicts(rule)]
    seen: set[str] = set()
    for r in rules:
        if r["type"] in seen:
            raise ParamError(f"Exit rule {r['type']!r} is listed twice; keep one.")
        seen.add(r["type"])
    if "signal" not in seen:
        rules.append({"type": "signal"})
    return sorted(rules, key=lambda r: r["type"])


def _pct(value: float) -> str:
    """A fraction as a percentage with its unit: 0.05 -> ``"5 %"``, 0.025 -> ``"2.5 %"``."""
    return f"{round(value * 100, 8):.12g} %"


def _bars(count: int) -> str:
    """``"1 bar"``, ``"20 bars"``."""
    return f"{count} bar" if count == 1 else f"{count} bars"


_LABELS = {
    "stop_loss": lambda r: f"stop loss {_pct(r['pct'])}",
    "take_profit": lambda r: f"take profit {_pct(r['pct'])}",
    "trailing_stop": lambda r: f"trailing stop {_pct(r['pct'])}",
    "time_stop": lambda r: f"time stop {_bars(r['bars'])}",
    "atr_stop": lambda r: f"ATR stop {r['mult']:g} × ATR({r['period']})",
}


def exit_label(rule: Mapping | list | None) -> str:
    """Human label naming each rule and its unit, joined with `` + `` (the signal first).

    E.g. ``"signal + stop loss 5 %"``, ``"take profit 10 % + trailing stop 8 %"``,
    ``"time stop 20 bars"``, ``"ATR stop 3 × ATR(14)"``; ``"end of data only"`` if none.
    """
    parts = []
    for r in canonical_exit_rule(rule):
        if r["type"] == "signal":
            if r.get("enabled", True):
                parts.insert(0, "signal")
        else:
            parts.append(_LABELS[r["type"]](r))
    return " + ".join(parts) if parts else "end of data only"


def stored_exit_rules(store) -> list[tuple[str, list[dict]]]:
    """The distinct exit rules a store holds as (label, canonical rule list), sorted by label:
    the choices of an exit-rule filter (pass the list to ``store.query``)."""
    rules = [canonical_exit_rule(rule) for rule in store.exit_rules().values()]
    return sorted(((exit_label(rule), rule) for rule in rules), key=lambda item: item[0].lower())


def exit_vector(rule: Mapping | list | None) -> np.ndarray:
    """Kernel form of an exit rule: float64 per ``VECTOR_SLOTS``, NaN where a rule is absent."""
    vec = np.full(len(VECTOR_SLOTS), np.nan)
    for r in canonical_exit_rule(rule):
        kind = r["type"]
        if kind == "signal":
            vec[0] = 1.0 if r.get("enabled", True) else 0.0
        elif kind == "time_stop":
            vec[4] = r["bars"]
        elif kind == "atr_stop":
            vec[5], vec[6] = r["mult"], r["period"]
        else:
            vec[VECTOR_SLOTS.index(kind)] = r["pct"]
    return vec


def atr_periods(rule: Mapping | list | None) -> list[int]:
    """ATR look-backs an exit rule needs (empty unless it has an ``atr_stop``)."""
    return [r["period"] for r in canonical_exit_rule(rule) if r["type"] == "atr_stop"]

"""Canonical store keys: symbol, strategy, params and exit rule in the one form the store hashes.

The registry (``core.strategies``) and the exit-rule module (``core.exits``) own the rules; this
module only adapts them for the store, and remembers each distinct value's canonical form.
"""
from __future__ import annotations

import json
from typing import Any

from core.canonical import canonical_json, flat_params_json, hash_of_json
from core.data.symbols import validate_symbol
from core.errors import ValidationError

__all__ = ["KeyMemo", "canonical_exit", "canonical_params", "check_strategy", "definition_of",
           "exit_key", "param_column_names", "params_form", "params_key", "validate_symbol"]


def _strategies():
    """The strategy registry (imported when first needed: the store opens without it)."""
    from core import strategies

    return strategies


def check_strategy(name: object) -> str:
    """Return the strategy name if registered; raise UnknownStrategyError (with a suggestion)."""
    if not isinstance(name, str):
        raise ValidationError(f"Strategy must be a name, got {name!r}.")
    _strategies().get_strategy(name)
    return name


def canonical_params(strategy: str, params: Any) -> dict:
    """Validated params of ``strategy`` (defaults filled in, ints coerced) as a plain dict."""
    if isinstance(params, str):
        params = _load_json(params, "params")
    return _strategies().validate_params(strategy, dict(params or {}))


def canonical_exit(exit_rule: Any) -> list:
    """Canonical exit-rule list (``None`` means the strategy's own signal exit)."""
    from core.exits import canonical_exit_rule

    if isinstance(exit_rule, str):
        exit_rule = _load_json(exit_rule, "exit rule")
    return canonical_exit_rule(exit_rule)


def params_form(strategy: str, params: Any) -> tuple[str, str, dict[str, float]]:
    """(canonical JSON, hash, ``{param column: float}``) of a params dict for ``strategy``."""
    canonical = canonical_params(strategy, params)
    text = flat_params_json(canonical)  # validated params are flat: canonical_json's text
    columns = _strategies().param_columns(strategy, canonical)
    return text, hash_of_json(text), columns


def params_key(strategy: str, params: Any) -> tuple[str, str]:
    """(canonical JSON, hash) of a params dict for ``strategy``."""
    return params_form(strategy, params)[:2]


def exit_key(exit_rule: Any) -> tuple[str, str]:
    """(canonical JSON, hash) of an exit rule."""
    text = canonical_json(canonical_exit(exit_rule))
    return text, hash_of_json(text)


def definition_of(strategy: str) -> str:
    """The current definition hash of a strategy ("" for built-ins): part of a stored key."""
    return _strategies().get_strategy(strategy).definition_hash or ""


def param_column_names(strategy: str) -> dict[str, str]:
    """``{column: bare param name}`` of the numeric param columns of ``strategy``."""
    registry = _strategies()
    spec = registry.get_strategy(strategy)
    columns = registry.param_columns(strategy, registry.validate_params(strategy, {}))
    prefix = getattr(spec, "prefix", strategy)
    return {column: column[len(prefix) + 1:] if column.startswith(prefix + "_") else column
            for column in columns}


def _load_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Cannot parse {what} JSON {text[:80]!r}: {exc.msg}.") from None


class KeyMemo:
    """Canonical forms of the key values a store handle has written, by (kind, ``repr``).

    Canonicalising is pure, and a sweep stores one parameter grid symbol after symbol: each
    distinct value is validated once per handle. Equal reprs mean equal values (``14`` and
    ``14.0``, ``True`` and ``1`` have different reprs, and are canonicalised apart).
    """

    LIMIT = 250_000

    def __init__(self) -> None:
        self.forms: dict[tuple, Any] = {}

    def trim(self) -> None:
        """Forget everything once the memo holds more than LIMIT values (bounded memory)."""
        if len(self.forms) > self.LIMIT:
            self.forms.clear()

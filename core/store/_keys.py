"""Canonical store keys: symbol, strategy, params and exit rule in the one form the store hashes.

The registry (``core.strategies``) and the exit-rule module (``core.exits``) own the rules; this
module only adapts them for the store and memoises per call site where that is safe.
"""
from __future__ import annotations

import json
from typing import Any

from core.canonical import canonical_json, hash_of_json, stable_hash
from core.data.symbols import validate_symbol
from core.errors import ValidationError


def strategies():
    """The strategy registry module (imported lazily: the store opens without the engine)."""
    from core import strategies as registry

    return registry


def exits():
    """The exit-rule module (imported lazily)."""
    from core import exits as exit_rules

    return exit_rules


def check_strategy(name: object) -> str:
    """Return the strategy name if registered; raise UnknownStrategyError (with a suggestion)."""
    if not isinstance(name, str):
        raise ValidationError(f"Strategy must be a name, got {name!r}.")
    strategies().get_strategy(name)
    return name


def canonical_params(strategy: str, params: Any) -> dict:
    """Validated params of ``strategy`` (defaults filled in, ints coerced) as a plain dict."""
    if isinstance(params, str):
        params = _load_json(params, "params")
    return strategies().validate_params(strategy, dict(params or {}))


def canonical_exit(exit_rule: Any) -> list:
    """Canonical exit-rule list (``None`` means the strategy's own signal exit)."""
    if isinstance(exit_rule, str):
        exit_rule = _load_json(exit_rule, "exit rule")
    return exits().canonical_exit_rule(exit_rule)


def params_key(strategy: str, params: Any) -> tuple[str, str]:
    """(canonical JSON, hash) of a params dict for ``strategy``."""
    canonical = canonical_params(strategy, params)
    return canonical_json(canonical), stable_hash(canonical)


def exit_key(exit_rule: Any) -> tuple[str, str]:
    """(canonical JSON, hash) of an exit rule."""
    canonical = canonical_exit(exit_rule)
    return canonical_json(canonical), stable_hash(canonical)


def param_column_names(strategy: str) -> dict[str, str]:
    """``{column: bare param name}`` of the numeric param columns of ``strategy``."""
    registry = strategies()
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


class ParamsCanon:
    """Canonical (JSON, hash, param columns) of one strategy's params dicts, built per value.

    The registry's rules apply per parameter (``Param.coerce``) plus one cross-parameter
    check, so each distinct (name, type, value) is coerced by the registry once and its JSON
    fragment kept; a new dict then costs a few dict lookups, the strategy's ``check``, one join
    and one hash instead of a full ``validate_params`` + ``canonical_json`` (~10x less). Any
    dict this path cannot vouch for (unknown names, a value the registry rejects, an
    unhashable value, a failed check) returns None: the caller then runs the registry itself,
    which raises its precise error. Every ``SAMPLE_EVERY``-th new dict is also canonicalised
    the registry's way and must agree.
    """

    SAMPLE_EVERY = 512

    def __init__(self, strategy: str) -> None:
        registry = strategies()
        self.spec = registry.get_strategy(strategy)
        self.params = self.spec.params
        self.names = frozenset(self.spec.param_names)
        self.json_order = sorted(range(len(self.params)), key=lambda i: self.params[i].name)
        self.values: list[dict] = [{} for _ in self.params]
        self.defaults = [self._entry(p, p.default) for p in self.params]
        self.columns = [f"{self.spec.prefix}_{p.name}" for p in self.params]
        self.made = 0

    def _entry(self, param, value) -> tuple[Any, str, float]:
        """(coerced value, its ``"name":value`` JSON fragment, its float param column)."""
        fragment = canonical_json({param.name: value})[1:-1]
        column = param.choices.index(value) if param.kind_name == "choice" else value
        return value, fragment, float(column)

    def key(self, params: dict) -> tuple[str, str, dict] | None:
        """(canonical JSON, hash, {column: float}) of a params dict, or None (see above)."""
        if not self.names.issuperset(params):
            return None
        entries = []
        for param, known, default in zip(self.params, self.values, self.defaults):
            if param.name not in params:
                entries.append(default)
                continue
            value = params[param.name]
            try:
                entry = known.get((type(value), value))
            except TypeError:
                return None
            if entry is None:
                try:
                    coerced = param.coerce(value, self.spec.name)
                except Exception:  # noqa: BLE001 - the registry path raises the real error
                    return None
                entry = known[(type(value), value)] = self._entry(param, coerced)
            entries.append(entry)
        if self.spec.check is not None and self.spec.check(
                {p.name: e[0] for p, e in zip(self.params, entries)}):
            return None
        text = "{" + ",".join([entries[i][1] for i in self.json_order]) + "}"
        found = (text, hash_of_json(text),
                 dict(zip(self.columns, [e[2] for e in entries])))
        self.made += 1
        if self.made % self.SAMPLE_EVERY == 1:
            self._agrees(params, found)
        return found

    def _agrees(self, params: dict, found: tuple[str, str, dict]) -> None:
        canonical = canonical_params(self.spec.name, params)
        expected = (canonical_json(canonical), stable_hash(canonical),
                    {c: float(v) for c, v in strategies().param_columns(
                        self.spec.name, canonical).items()})
        if found != expected:
            raise ValidationError(f"Params {params!r} of {self.spec.name!r} canonicalise to "
                                  f"{found[0]!r} per value but {expected[0]!r} by the registry; "
                                  "report this (the strategy's rules are not per value).")

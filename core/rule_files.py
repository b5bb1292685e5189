"""Rule strategies from TOML files: one file per strategy in the strategies folder.

``load_text`` turns one file's text into a ``Strategy`` (or raises ``StrategyFileError`` naming
the file, the field and the fix); ``scan_folder`` loads every ``*.toml`` of a folder, keeping
each malformed file as a ``FileProblem`` so that it never stops the others from loading. Files
are re-read only when their modification time or size changes. Format: docs/strategies.md.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core import rules
from core.canonical import canonical_json, hash_of_json
from core.errors import HindsightError, RuleError, StrategyFileError, did_you_mean
from core.strategies import ABOVE, Cross, Param, Strategy, crossings, validate_params

MAX_FILE_BYTES = 64_000
MAX_PARAMS = 20
NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")
DIRECTIONS = ("long", "short")
FIELDS = ("name", "title", "description", "direction", "entry", "exit", "require", "params")
PARAM_FIELDS = ("kind", "default", "low", "high", "step", "choices", "help")
KINDS = ("int", "float", "choice")
#: Param names taken by the engine or by the language.
RESERVED_PARAMS = rules.RESERVED | {"direction"}


class FileProblem(NamedTuple):
    """A strategy file that could not be loaded, and why."""

    path: str
    error: str


@dataclass(frozen=True)
class FolderScan:
    """Every loadable strategy of a folder by name, and the files that failed."""

    folder: str
    strategies: dict[str, Strategy]
    problems: tuple[FileProblem, ...]


# --- one file ---------------------------------------------------------------------------------

def load_file(path: str | os.PathLike) -> Strategy:
    """The strategy declared in the TOML file at ``path``."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise StrategyFileError(f"{path}: the file is {size:,} bytes; a strategy file "
                                    f"holds at most {MAX_FILE_BYTES:,}. Is it the right file?")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise StrategyFileError(f"{path}: the file is not UTF-8 text; save it as UTF-8.") from None
    except OSError as exc:
        raise StrategyFileError(f"{path}: cannot read the file ({exc.strerror or exc}).") from None
    return load_text(text, str(path))


def load_text(text: str, source: str = "<text>") -> Strategy:
    """The strategy declared by TOML ``text``; errors start with ``source``.

    Whether its name or store columns are free is the registry's check (``Claims``)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise StrategyFileError(f"{source}: not valid TOML ({exc}). Check quotes, '=' and "
                                "[section] headers against docs/strategies.md.") from None
    try:
        return _strategy(doc, source)
    except (RuleError, StrategyFileError) as exc:
        raise StrategyFileError(f"{source}: {exc}") from None


def _strategy(doc: dict, source: str) -> Strategy:
    unknown = [k for k in doc if k not in FIELDS]
    if unknown:
        raise StrategyFileError(f"unknown field {unknown[0]!r}.{did_you_mean(unknown[0], FIELDS)}")
    name = _name(doc.get("name"))
    direction = doc.get("direction", "long")
    if direction not in DIRECTIONS:
        raise StrategyFileError(f"direction = {direction!r}; use \"long\" or \"short\".")
    params = _params(doc.get("params", {}))
    kinds = {p.name: _number_kind(p) for p in params}
    entry = rules.parse(_text_field(doc, "entry"), kinds, "entry")
    exit_ = rules.parse(_text_field(doc, "exit"), kinds, "exit")
    require = doc.get("require", [])
    if not isinstance(require, list):
        raise StrategyFileError("require must be a list of conditions, e.g. "
                                "require = [\"fast < slow\"].")
    conditions = tuple(rules.parse(c, kinds, f"require[{i}]", rules.CONDITION)
                       for i, c in enumerate(require))
    used = set(entry.params) | set(exit_.params)
    for p in params:
        if p.name not in used:
            raise StrategyFileError(f"param {p.name!r} is declared but neither entry nor exit "
                                    "uses it; use it or remove [params." + p.name + "].")
    program = RuleProgram(entry, exit_, conditions, rules.function_calls(entry, exit_))
    definition = canonical_definition(program, params, direction)
    strategy = Strategy(
        name, name, _optional_text(doc, "title") or name, _optional_text(doc, "description"),
        params, None, partial(_crosses, program), partial(_check, program),
        direction=direction, source=source, definition=definition,
        definition_hash=hash_of_json(definition),
    )
    # signals validates its params against the declaration, so it is bound once that exists
    strategy = replace(strategy, signals=partial(_signals, program, strategy))
    try:
        validate_params(strategy, {})
    except HindsightError as exc:
        raise StrategyFileError(f"the defaults do not work: {exc}") from None
    return strategy


def _name(name: Any) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise StrategyFileError(
            f"name = {name!r}: give a name of lowercase letters, digits and _, starting with a "
            "letter, at most 40 characters, e.g. name = \"rsi_trend\".")
    return name


def _text_field(doc: dict, field: str) -> str:
    if field not in doc:
        raise StrategyFileError(f"the {field} rule is missing; add e.g. {field} = "
                                "\"rsi(close, 14) crosses_below 30\".")
    return doc[field]


def _optional_text(doc: dict, field: str) -> str:
    value = doc.get(field, "")
    if not isinstance(value, str):
        raise StrategyFileError(f"{field} must be text in quotes, got {value!r}.")
    return value.strip()


def _number_kind(param: Param) -> str:
    """``"int"`` or ``"float"``: how an expression sees the param (choices: by their values)."""
    if param.kind_name == "choice":
        return rules.INT if all(isinstance(c, int) for c in param.choices) else rules.FLOAT
    return param.kind_name


def _params(table: Any) -> tuple[Param, ...]:
    if not isinstance(table, dict):
        raise StrategyFileError("params must be tables like [params.period] with kind and "
                                "default.")
    if len(table) > MAX_PARAMS:
        raise StrategyFileError(f"{len(table)} params; a strategy has at most {MAX_PARAMS}.")
    return tuple(_param(name, spec) for name, spec in table.items())


def _param(name: str, spec: Any) -> Param:
    where = f"[params.{name}]"
    if not NAME_PATTERN.fullmatch(name) or name in RESERVED_PARAMS:
        why = "is reserved" if name in RESERVED_PARAMS else "is not a lowercase identifier"
        raise StrategyFileError(f"{where}: the name {why}; choose another, e.g. period.")
    if not isinstance(spec, dict):
        raise StrategyFileError(f"{where} must be a table with kind and default.")
    unknown = [k for k in spec if k not in PARAM_FIELDS]
    if unknown:
        raise StrategyFileError(
            f"{where}: unknown field {unknown[0]!r}.{did_you_mean(unknown[0], PARAM_FIELDS)}")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise StrategyFileError(f"{where}: kind = {kind!r}; use \"int\", \"float\" or "
                                "\"choice\".")
    if "default" not in spec:
        raise StrategyFileError(f"{where}: add a default value.")
    help_ = spec.get("help", "")
    if not isinstance(help_, str):
        raise StrategyFileError(f"{where}: help must be text in quotes.")
    if kind == "choice":
        return _choice_param(name, spec, where, help_)
    bounds = {k: _number(spec.get(k), f"{where} {k}") for k in ("low", "high", "step")}
    if bounds["low"] is not None and bounds["high"] is not None and bounds["low"] > bounds["high"]:
        raise StrategyFileError(f"{where}: low ({bounds['low']:g}) is above high "
                                f"({bounds['high']:g}); swap them.")
    if bounds["step"] is not None and bounds["step"] <= 0:
        raise StrategyFileError(f"{where}: step must be above 0.")
    if kind == "int":
        bounds = {k: v if v is None else _whole(v, f"{where} {k}") for k, v in bounds.items()}
    param = Param(name, kind, None, bounds["low"], bounds["high"],
                  bounds["step"] if bounds["step"] is not None else (1 if kind == "int" else None),
                  help=help_)
    try:
        default = param.coerce(spec["default"], where)
    except HindsightError as exc:
        raise StrategyFileError(f"default: {exc}") from None
    return replace(param, default=default)


def _choice_param(name: str, spec: dict, where: str, help_: str) -> Param:
    choices = spec.get("choices")
    if (not isinstance(choices, list) or not choices
            or not all(_is_number(c) for c in choices) or len(set(choices)) != len(choices)):
        raise StrategyFileError(f"{where}: a choice param needs choices = a list of distinct "
                                "numbers, e.g. choices = [10, 20, 50].")
    if spec["default"] not in choices:
        raise StrategyFileError(f"{where}: default {spec['default']!r} is not one of the "
                                f"choices {choices}.")
    extra = [k for k in ("low", "high", "step") if k in spec]
    if extra:
        raise StrategyFileError(f"{where}: a choice param has no {extra[0]}; list the values "
                                "in choices.")
    return Param(name, "choice", spec["default"], choices=tuple(choices), help=help_)


def _is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if not _is_number(value):
        raise StrategyFileError(f"{where} must be a number, got {value!r}.")
    return value


def _whole(value: float, where: str) -> int:
    if not float(value).is_integer():
        raise StrategyFileError(f"{where} must be a whole number for an int param, got {value!r}.")
    return int(value)


# --- the strategy's behaviour -------------------------------------------------------------------

class RuleProgram(NamedTuple):
    """A rule strategy's parsed entry, exit, requirements and the function calls they make."""

    entry: rules.Node
    exit: rules.Node
    require: tuple[rules.Node, ...]
    calls: tuple[rules.Node, ...]


def canonical_definition(program: RuleProgram, params: tuple[Param, ...], direction: str) -> str:
    """Canonical JSON of what decides a rule strategy's results: the rules in canonical text,
    the param names, kinds and choices, and the direction (titles, help, defaults and ranges
    change no result, so editing them keeps the stored record current)."""
    return canonical_json({
        "direction": direction,
        "entry": program.entry.text,
        "exit": program.exit.text,
        "require": [c.text for c in program.require],
        "params": [[p.name, p.kind_name, list(p.choices)] for p in params],
    })


def _crosses(program: RuleProgram, **params) -> tuple[Cross, Cross]:
    """The engine's entry and exit: crossings that fire where each rule becomes true."""
    entry, exit_ = (Cross(*rules.engine_rule(node, params), ABOVE)
                    for node in (program.entry, program.exit))
    return entry, exit_


def _check(program: RuleProgram, params: dict) -> str | None:
    """Why ``params`` cannot run (a failed requirement, a period below 1), or None."""
    for condition in program.require:
        if not rules.scalar(condition, params):
            return f"{condition.text} must hold; got " + ", ".join(
                f"{name}={params[name]}" for name in condition.params)
    return rules.call_problem(program.calls, params)


def _signals(program: RuleProgram, strategy: Strategy, open_, high, low, close, volume=None,
             **params) -> tuple[np.ndarray, np.ndarray]:
    """Entries and exits: bars where each rule becomes true (true now, false on the bar before),
    exactly what the engine trades on."""
    params = validate_params(strategy, params)
    arrays = [None if a is None else np.array(a, dtype=np.float64)
              for a in (open_, high, low, close, volume)]
    bars = rules.Bars(*arrays)
    memo: dict = {}
    out = []
    for node in (program.entry, program.exit):
        signal = rules.evaluate(node, bars, params, memo).astype(np.float64)
        out.append(crossings(signal, 0.5, ABOVE))
    return out[0], out[1]


# --- a folder ---------------------------------------------------------------------------------

_FILES: dict[str, tuple[tuple[int, int], Strategy | str]] = {}  # path -> (mtime, size), result
_SCANS: dict[str, tuple[tuple, FolderScan]] = {}  # folder -> (signature, scan)


class Claims:
    """Strategy names and stored param columns (``<name>_<param>``) in use, and by whom."""

    def __init__(self, strategies: Iterable[Strategy] = ()):
        self.names: dict[str, str] = {}
        self.columns: dict[str, str] = {}
        for strategy in strategies:
            self.add(strategy)

    def add(self, strategy: Strategy) -> None:
        holder = (f"the built-in {strategy.name}" if strategy.source == "built-in"
                  else strategy.source)
        self.names[strategy.name] = holder
        for column in _columns(strategy):
            self.columns[column] = holder

    def clash(self, strategy: Strategy) -> str | None:
        """Why ``strategy`` cannot join (its name or a store column is taken), or None."""
        if strategy.name in self.names:
            return (f"name {strategy.name!r} is already used by {self.names[strategy.name]}; "
                    "choose another name.")
        for column in _columns(strategy):
            if column in self.columns:
                return (f"its stored param column {column!r} (name_param) is already used by "
                        f"{self.columns[column]}; rename the strategy or the param.")
        return None


def _columns(strategy: Strategy) -> list[str]:
    return [f"{strategy.prefix}_{p.name}" for p in strategy.params]


def scan_folder(folder: str | os.PathLike, reserved: Iterable[Strategy] = ()) -> FolderScan:
    """Every ``*.toml`` strategy of ``folder`` (files in name order; a missing folder is empty).

    A file that fails, or whose name or stored param columns a ``reserved`` strategy (the
    built-ins) or an earlier file already holds, becomes a ``FileProblem``.
    """
    folder = os.path.abspath(folder)
    signature = _signature(folder)
    cached = _SCANS.get(folder)
    if cached is not None and cached[0] == signature:
        return cached[1]
    claims = Claims(reserved)
    found, problems = {}, []
    for name, mtime, size in signature:
        path = os.path.join(folder, name)
        result = _load_cached(path, (mtime, size))
        clash = claims.clash(result) if not isinstance(result, str) else None
        if isinstance(result, str):
            problems.append(FileProblem(path, result))
        elif clash:
            problems.append(FileProblem(path, f"{path}: {clash}"))
        else:
            claims.add(result)
            found[result.name] = result
    scan = FolderScan(folder, found, tuple(problems))
    _SCANS[folder] = (signature, scan)
    return scan


def _signature(folder: str) -> tuple:
    """(file name, mtime ns, size) of every ``*.toml`` in ``folder``, sorted by name."""
    try:
        entries = [e for e in os.scandir(folder) if e.name.endswith(".toml") and e.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return ()
    return tuple(sorted((e.name, *_stamp(e.stat())) for e in entries))


def _stamp(stat: os.stat_result) -> tuple[int, int]:
    return stat.st_mtime_ns, stat.st_size


def _load_cached(path: str, stamp: tuple[int, int]) -> Strategy | str:
    """The file's strategy (names checked by the caller) or its error text, re-read on change."""
    cached = _FILES.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        result: Strategy | str = load_file(path)
    except HindsightError as exc:
        result = str(exc)
    _FILES[path] = (stamp, result)
    return result


def is_current(strategy: Strategy) -> bool:
    """Whether a rule strategy's file is unchanged since it was loaded (one ``stat``)."""
    cached = _FILES.get(strategy.source)
    if cached is None or cached[1] is not strategy:
        return False
    try:
        return cached[0] == _stamp(os.stat(strategy.source))
    except OSError:
        return False


def check_file(path: str | os.PathLike, registered: Iterable[Strategy]) -> Strategy:
    """Load one file as the registry would: its name and stored param columns must not be
    held by another of the ``registered`` strategies (its own earlier version does not count)."""
    here = os.path.abspath(path)
    strategy = load_file(here)
    clash = Claims(s for s in registered if s.source != here).clash(strategy)
    if clash:
        raise StrategyFileError(f"{here}: {clash}")
    return strategy

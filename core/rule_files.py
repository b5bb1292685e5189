"""Rule strategies from TOML files: one file per strategy in the strategies folder.

``load_text`` turns one file's text into a ``Strategy`` (or raises ``StrategyFileError`` naming
the file, the field and the fix); ``scan_folder`` loads every ``*.toml`` of a folder, keeping
each malformed file as a ``FileProblem`` so that it never stops the others from loading. Files
are re-read only when their modification time or size changes. ``render_toml`` and
``save_strategy`` write a strategy defined elsewhere (the app's "New strategy" form) in the same
format, checked as loading checks it, so a saved file always loads. Format: docs/strategies.md.
"""
from __future__ import annotations

import math
import os
import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from numbers import Integral, Real
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core import rules
from core.canonical import canonical_json, hash_of_json
from core.errors import (HindsightError, RuleError, StrategyExistsError, StrategyFileError,
                         did_you_mean)
from core.strategies import (ABOVE, Cross, Param, Strategy, crossings, list_strategies,
                             validate_params)

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
        indicators=rules.rule_indicators(program.entry, program.exit),
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


# --- a new strategy: render, check, preview, save -----------------------------------------------

DRAFT_SOURCE = "the new strategy"  # how errors name a definition that has no file yet
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f",
            "\r": "\\r"}


def render_toml(definition: Mapping[str, Any]) -> str:
    """TOML text of a strategy ``definition`` in the documented file format.

    ``definition`` holds a file's fields as a dict: ``name``, ``title``, ``description``,
    ``direction``, ``entry``, ``exit``, optional ``require`` (a list) and ``params`` as
    ``{name: {"kind": ..., "default": ..., "low": ...}}``. Empty optional values (None, "",
    []) are left out. Whether the strategy is valid is ``load_text``'s check, not this one's.
    """
    unknown = [k for k in definition if k not in FIELDS]
    if unknown:
        raise StrategyFileError(f"unknown field {unknown[0]!r}.{did_you_mean(unknown[0], FIELDS)}")
    lines = [f"{field} = {_toml_value(definition[field], field)}"
             for field in FIELDS if field != "params" and not _is_empty(definition.get(field))]
    params = definition.get("params") or {}
    if not isinstance(params, Mapping):
        raise StrategyFileError(f"params must be a table of params by name, got {params!r}.")
    for name, spec in params.items():
        where = f"[params.{name}]"
        if not isinstance(spec, Mapping):
            raise StrategyFileError(f"{where} must be a table with kind and default, got "
                                    f"{spec!r}.")
        keys = [*(k for k in PARAM_FIELDS if k in spec), *(k for k in spec if k not in
                                                          PARAM_FIELDS)]
        lines += ["", f"[params.{_toml_key(str(name))}]"]
        lines += [f"{_toml_key(str(k))} = {_toml_value(spec[k], f'{where} {k}')}"
                  for k in keys if not _is_empty(spec[k])]
    return "\n".join(lines) + "\n"


def _is_empty(value: Any) -> bool:
    """None, blank text or an empty list: an optional value left out of the file."""
    if isinstance(value, str):
        return not value.strip()
    return value is None or (isinstance(value, (list, tuple)) and not value)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_string(key)


def _toml_value(value: Any, where: str) -> str:
    """One value as TOML: text, a number, true/false or a list of them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        return repr(float(value))  # nan and inf are TOML too; loading refuses them by name
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    raise StrategyFileError(f"{where}: cannot write {value!r} ({type(value).__name__}); use "
                            "text, a number or a list of them.")


def _toml_string(text: str) -> str:
    """A TOML basic string: quotes, backslashes and control characters escaped."""
    return '"' + "".join(
        _ESCAPES.get(c) or (f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c)
        for c in text) + '"'


def parse_params(table: Any) -> tuple[Param, ...]:
    """The typed params of a definition's ``params`` table; ``StrategyFileError`` names the
    first bad one and the fix (the same checks as loading a file)."""
    return _params(table)


def check_rule(text: Any, params: Iterable[Param], where: str = "entry") -> rules.Node:
    """The parsed entry or exit ``text`` given the declared ``params`` (``RuleError`` names
    the column and the fix); the node's ``params`` are the ones the rule uses."""
    return rules.parse(text, {p.name: _number_kind(p) for p in params}, where)


def undeclared_names(text: str, params: Iterable[Param]) -> list[str]:
    """Names in ``text`` that are not a series, a function, a keyword or one of ``params``:
    the params it still needs declared, in order of appearance (none when it cannot be read)."""
    try:
        tokens = rules.tokenize(text, "rule")
    except RuleError:
        return []
    declared = {p.name for p in params}
    names = [token.text for token, after in zip(tokens, tokens[1:])
             if token.kind == "name" and after.text != "("
             and token.text not in rules.RESERVED and token.text not in declared]
    return list(dict.fromkeys(names))


def draft_strategy(definition: Mapping[str, Any]) -> Strategy:
    """The strategy ``definition`` declares, validated exactly as its saved file would be
    (``StrategyFileError`` otherwise); not registered and not written anywhere."""
    return load_text(render_toml(definition), DRAFT_SOURCE)


def draft_signals(definition: Mapping[str, Any], bars,
                  params: Mapping[str, Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Entry and exit booleans of an unsaved ``definition`` on ``bars`` (a DataFrame with open,
    high, low and close), with its default ``params`` unless given: what a backtest of it
    would trade on, for a preview before the file exists."""
    strategy = draft_strategy(definition)
    columns = [bars[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")]
    return strategy.signals(*columns, **dict(params or {}))


def strategy_path(folder: str | os.PathLike, name: str) -> Path:
    """Where the strategy ``name`` is saved in ``folder``: ``<folder>/<name>.toml``."""
    return Path(os.path.abspath(folder)) / f"{name}.toml"


def check_definition(definition: Mapping[str, Any], folder: str | os.PathLike,
                     overwrite: bool = False) -> Strategy:
    """The strategy ``definition`` declares, checked as if saved in ``folder``.

    ``StrategyFileError`` when it is malformed; ``StrategyExistsError`` when its name or a
    stored param column is held by a built-in or another file of the folder, or when its file
    exists already and ``overwrite`` is False.
    """
    strategy = draft_strategy(definition)
    path = strategy_path(folder, strategy.name)
    builtins = [s for s in list_strategies() if s.source == "built-in"]
    others = [s for s in scan_folder(folder, builtins).strategies.values()
              if s.source != str(path)]
    clash = Claims([*builtins, *others]).clash(strategy)
    if clash:
        raise StrategyExistsError(f"{DRAFT_SOURCE}: {clash}")
    if path.exists() and not overwrite:
        raise StrategyExistsError(
            f"{path} exists already; saving would replace that strategy. Confirm the "
            "overwrite (overwrite=True) or choose another name.")
    return strategy


def save_strategy(definition: Mapping[str, Any], folder: str | os.PathLike,
                  overwrite: bool = False) -> Path:
    """Write ``definition`` to ``<folder>/<name>.toml`` and return the path.

    Checked first (``check_definition``: a saved file always loads, and nothing is replaced
    without ``overwrite``); written atomically (a reader sees the old file or the new one,
    never part of one); the registry sees the new strategy at once.
    """
    strategy = check_definition(definition, folder, overwrite)
    path = strategy_path(folder, strategy.name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, render_toml(definition))
    except OSError as exc:
        raise StrategyFileError(f"{path}: cannot write the file ({exc.strerror or exc}); check "
                                "the folder's permissions or the strategies_folder setting.") \
            from None
    forget(path)
    return path


def _write_atomic(path: Path, text: str) -> None:
    """``text`` into a temporary file beside ``path``, then renamed over it (``os.replace``)."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temp, 0o644)  # mkstemp makes it private; a strategy file is a plain file
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def forget(path: str | os.PathLike) -> None:
    """Drop what is cached about the file at ``path`` and its folder, so the next look-up reads
    it again (a rewrite within the file system's time resolution may keep mtime and size)."""
    here = os.path.abspath(path)
    _FILES.pop(here, None)
    _SCANS.pop(os.path.dirname(here), None)

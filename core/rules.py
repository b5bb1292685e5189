"""Rule expressions: the small, safe language of rule strategies (docs/strategies.md).

Text is tokenized and parsed by recursive descent into a typed tree of ``Node`` (never ``eval``);
size and nesting are bounded. Every node has a canonical text (fully parenthesised, numbers
normalised), which is its identity: the same rule written with other spacing or redundant
parentheses has the same text. Evaluation is pure numpy over the bars, using
``core.indicators``; each distinct sub-expression (text + the values of the params it uses) is
computed once per set of bars and shared, so a grid of 900 cells computes RSI once per period.

Types: a *number* (int or float: literals, params, arithmetic of numbers), a *series* (one
value per bar), a *signal* (true/false per bar: a comparison or crossing with a series, and
``and``/``or``/``not`` of signals) and a *condition* (a comparison of numbers only, for a
strategy's ``require`` list). A comparison with NaN is false; division by zero gives NaN.
"""
from __future__ import annotations

import math
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from core import indicators
from core.errors import RuleError, did_you_mean

MAX_LENGTH = 1000  # characters in one expression
MAX_NODES = 200  # terms in one expression
MAX_DEPTH = 30  # nesting of parentheses, calls and unary operators

SERIES_NAMES = ("open", "high", "low", "close", "volume")
KEYWORDS = ("and", "or", "not", "crosses_above", "crosses_below")

INT, FLOAT, SERIES, SIGNAL, CONDITION = "int", "float", "series", "signal", "condition"
_NUMBER = (INT, FLOAT)
_TYPE_WORDS = {INT: "a whole number", FLOAT: "a number", SERIES: "a series",
               SIGNAL: "a signal (true/false on each bar)", CONDITION: "a condition on params"}


class Function(NamedTuple):
    """A built-in function: argument kinds (``x`` series, ``n`` period, ``k`` number)."""

    args: str
    usage: str
    warmup: Callable[..., int]  # (first bar of x, *numbers) -> first defined bar
    compute: Callable[..., np.ndarray]  # (x or None, bars, *numbers) -> series


def _bars_key(kind: str) -> Callable[..., np.ndarray]:
    """A function of the bars alone, computed as the built-in series of that key."""
    return lambda _x, bars, n: indicators.compute_series((kind, n), *bars[:4])


FUNCTIONS: dict[str, Function] = {
    "sma": Function("xn", "sma(x, n)", lambda s, n: s + n - 1,
                    lambda x, _b, n: indicators.sma(x, n)),
    "ema": Function("xn", "ema(x, n)", lambda s, n: s + n - 1,
                    lambda x, _b, n: indicators.ema(x, n)),
    "rsi": Function("xn", "rsi(x, n)", lambda s, n: s + n,
                    lambda x, _b, n: indicators.rsi(x, n)),
    "roc": Function("xn", "roc(x, n)", lambda s, n: s + n,
                    lambda x, _b, n: indicators.roc(x, n)),
    "highest": Function("xn", "highest(x, n)", lambda s, n: s + n - 1,
                        lambda x, _b, n: indicators.highest(x, n)),
    "lowest": Function("xn", "lowest(x, n)", lambda s, n: s + n - 1,
                       lambda x, _b, n: indicators.lowest(x, n)),
    "shift": Function("xn", "shift(x, n)", lambda s, n: s + n,
                      lambda x, _b, n: indicators.shift(x, n)),
    "atr": Function("n", "atr(n)", lambda _s, n: n, _bars_key("atr")),
    "bb_upper": Function("xnk", "bb_upper(x, n, k)", lambda s, n, _k: s + n - 1,
                         lambda x, _b, n, k: indicators.bollinger(x, n, k)[1]),
    "bb_mid": Function("xn", "bb_mid(x, n)", lambda s, n: s + n - 1,
                       lambda x, _b, n: indicators.sma(x, n)),
    "bb_lower": Function("xnk", "bb_lower(x, n, k)", lambda s, n, _k: s + n - 1,
                         lambda x, _b, n, k: indicators.bollinger(x, n, k)[2]),
    "donchian_high": Function("n", "donchian_high(n)", lambda _s, n: n, _bars_key("dc_high")),
    "donchian_low": Function("n", "donchian_low(n)", lambda _s, n: n, _bars_key("dc_low")),
    "macd": Function("xnn", "macd(x, fast, slow)", lambda s, f, sl: s + max(f, sl) - 1,
                     lambda x, _b, f, sl: indicators.macd(x, f, sl)),
    "macd_signal": Function(
        "xnnn", "macd_signal(x, fast, slow, signal)",
        lambda s, f, sl, sig: s + max(f, sl) + sig - 2,
        lambda x, _b, f, sl, sig: indicators.macd_signal(x, f, sl, sig)),
}

#: Names a param may not take: series, functions and keywords.
RESERVED = frozenset(SERIES_NAMES) | frozenset(FUNCTIONS) | frozenset(KEYWORDS)


class Node:
    """One typed node of a parsed expression; equal nodes have equal canonical ``text``."""

    __slots__ = ("kind", "op", "args", "value", "type", "text", "params")

    def __init__(self, kind: str, type_: str, text: str, *, op: str = "", args: tuple = (),
                 value: Any = None, params: tuple[str, ...] = ()):
        self.kind, self.type, self.text = kind, type_, text
        self.op, self.args, self.value = op, args, value
        self.params = params  # names of the params used below this node, sorted

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Node) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"Node({self.text!r})"

    def __reduce__(self):
        return (_node, (self.kind, self.type, self.text, self.op, self.args, self.value,
                        self.params))


def _node(kind, type_, text, op, args, value, params) -> Node:
    """Rebuild a Node (pickling: rule strategies travel to worker processes)."""
    return Node(kind, type_, text, op=op, args=args, value=value, params=params)


# --- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|<|>|\+|-|\*|/|\(|\)|,)
""", re.VERBOSE)

_CHARACTER_FIXES = {
    "=": "compare with < <= > >= (there is no == or =)",
    "!": "write not", "&": "write and", "|": "write or", "%": "use / and *",
    "[": "use shift(x, n) for an earlier bar", "]": "use shift(x, n) for an earlier bar",
    "^": "multiply instead (x * x)",
}


class Token(NamedTuple):
    kind: str  # number | name | op | end
    text: str
    column: int  # 1-based


def tokenize(text: str, where: str) -> list[Token]:
    """Tokens of ``text`` ending with an ``end`` token; ``RuleError`` at the first bad character."""
    tokens, pos = [], 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            char = text[pos]
            fix = _CHARACTER_FIXES.get(char, "use names, numbers, + - * / < <= > >= and ( , )")
            raise RuleError(f"{where}, column {pos + 1}: unexpected character {char!r}; {fix}.")
        if match.lastgroup != "space":
            tokens.append(Token(match.lastgroup, match.group(), pos + 1))
        pos = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# --- parser ---------------------------------------------------------------------------------

def _number_text(value: float) -> str:
    """Canonical text of a number: integral values without a decimal point."""
    if math.isfinite(value) and value == int(value):
        return str(int(value))
    return repr(value)


class _Parser:
    """Recursive descent over the tokens; builds typed nodes and checks them as it goes.

    Grammar (lowest precedence first)::

        expr  := and ("or" and)*
        and   := not ("and" not)*
        not   := "not" not | cmp
        cmp   := sum [("<" | "<=" | ">" | ">=" | "crosses_above" | "crosses_below") sum]
        sum   := prod (("+" | "-") prod)*
        prod  := unary (("*" | "/") unary)*
        unary := "-" unary | atom
        atom  := number | name | name "(" expr ("," expr)* ")" | "(" expr ")"
    """

    def __init__(self, text: str, params: Mapping[str, str], where: str):
        self.where = where
        if len(text) > MAX_LENGTH:
            raise RuleError(f"{where} is {len(text)} characters long; the limit is "
                            f"{MAX_LENGTH}. Split the idea into simpler rules.")
        self.tokens = tokenize(text, where)
        self.params = params
        self.pos = 0
        self.depth = 0
        self.count = 0

    def fail(self, token: Token, problem: str) -> RuleError:
        return RuleError(f"{self.where}, column {token.column}: {problem}")

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def at(self, *texts: str) -> bool:
        return self.token.kind in ("op", "name") and self.token.text in texts

    def expect(self, text: str, context: str) -> Token:
        if not self.at(text):
            found = f"{self.token.text!r}" if self.token.kind != "end" else "the end"
            raise self.fail(self.token, f"expected {text!r} {context}, found {found}.")
        return self.take()

    def make(self, token: Token, kind: str, type_: str, text: str, **fields) -> Node:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(token, f"the expression has more than {MAX_NODES} terms; "
                                   "write a simpler rule.")
        return Node(kind, type_, text, **fields)

    def nest(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(token, f"the expression nests deeper than {MAX_DEPTH} levels; "
                                   "remove parentheses or split the rule.")

    def parse(self) -> Node:
        node = self.expr()
        if self.token.kind != "end":
            hint = did_you_mean(self.token.text, KEYWORDS) if self.token.kind == "name" else ""
            raise self.fail(self.token, f"unexpected {self.token.text!r} after a complete "
                                        f"expression; join rules with and / or.{hint}")
        return node

    def expr(self) -> Node:
        return self.logic("or", self.conj)

    def conj(self) -> Node:
        return self.logic("and", self.negation)

    def logic(self, word: str, operand: Callable[[], Node]) -> Node:
        left = operand()
        while self.at(word):
            token = self.take()
            right = operand()
            type_ = self.logic_type(token, word, left, right)
            left = self.make(token, word, type_, f"({left.text} {word} {right.text})",
                             args=(left, right), params=_union(left, right))
        return left

    def logic_type(self, token: Token, word: str, *operands: Node) -> str:
        types = {n.type for n in operands}
        if types <= {SIGNAL} or types <= {CONDITION}:
            return types.pop()
        if types <= {SIGNAL, CONDITION}:
            raise self.fail(token, f"{word} joins a signal with a condition on params; keep "
                                   "conditions on params in the require list.")
        bad = next(n for n in operands if n.type not in (SIGNAL, CONDITION))
        raise self.fail(token, f"{word} needs true/false on both sides, but {bad.text} is "
                               f"{_TYPE_WORDS[bad.type]}; compare it, e.g. {bad.text} > 0.")

    def negation(self) -> Node:
        if not self.at("not"):
            return self.comparison()
        token = self.take()
        self.nest(token)
        operand = self.negation()
        self.depth -= 1
        if operand.type not in (SIGNAL, CONDITION):
            raise self.fail(token, f"not needs true/false, but {operand.text} is "
                                   f"{_TYPE_WORDS[operand.type]}; compare it first.")
        return self.make(token, "not", operand.type, f"(not {operand.text})", args=(operand,),
                         params=operand.params)

    def comparison(self) -> Node:
        left = self.sum()
        if not self.at("<", "<=", ">", ">=", "crosses_above", "crosses_below"):
            return left
        token = self.take()
        right = self.sum()
        if self.at("<", "<=", ">", ">=", "crosses_above", "crosses_below"):
            raise self.fail(self.token, "comparisons cannot be chained; join them with and, "
                                        "e.g. a < b and b < c.")
        for side in (left, right):
            if side.type not in (*_NUMBER, SERIES):
                raise self.fail(token, f"{token.text} compares numbers or series, but "
                                       f"{side.text} is {_TYPE_WORDS[side.type]}.")
        numbers_only = left.type in _NUMBER and right.type in _NUMBER
        if token.text.startswith("crosses"):
            if numbers_only:
                raise self.fail(token, f"{token.text} needs a series on one side, e.g. "
                                       f"rsi(close, 14) {token.text} 30.")
            kind = "cross"
        else:
            kind = "cmp"
        return self.make(token, kind, CONDITION if numbers_only else SIGNAL,
                         f"({left.text} {token.text} {right.text})", op=token.text,
                         args=(left, right), params=_union(left, right))

    def sum(self) -> Node:
        return self.arithmetic(("+", "-"), self.product)

    def product(self) -> Node:
        return self.arithmetic(("*", "/"), self.unary)

    def arithmetic(self, ops: tuple[str, ...], operand: Callable[[], Node]) -> Node:
        left = operand()
        while self.token.kind == "op" and self.token.text in ops:
            token = self.take()
            right = operand()
            for side in (left, right):
                if side.type not in (*_NUMBER, SERIES):
                    raise self.fail(token, f"{token.text} needs numbers or series, but "
                                           f"{side.text} is {_TYPE_WORDS[side.type]}.")
            if SERIES in (left.type, right.type):
                type_ = SERIES
            elif left.type == right.type == INT and token.text != "/":
                type_ = INT
            else:
                type_ = FLOAT
            left = self.make(token, "arith", type_, f"({left.text} {token.text} {right.text})",
                             op=token.text, args=(left, right), params=_union(left, right))
        return left

    def unary(self) -> Node:
        if not (self.token.kind == "op" and self.token.text == "-"):
            return self.atom()
        token = self.take()
        self.nest(token)
        operand = self.unary()
        self.depth -= 1
        if operand.type not in (*_NUMBER, SERIES):
            raise self.fail(token, f"- needs a number or a series, but {operand.text} is "
                                   f"{_TYPE_WORDS[operand.type]}.")
        if operand.kind == "num":
            return self.make(token, "num", operand.type, _number_text(-operand.value),
                             value=-operand.value)
        return self.make(token, "neg", operand.type, f"(-{operand.text})", args=(operand,),
                         params=operand.params)

    def atom(self) -> Node:
        token = self.take()
        if token.kind == "number":
            value = float(token.text)
            if not math.isfinite(value):
                raise self.fail(token, f"the number {token.text} is too large.")
            type_ = INT if value == int(value) else FLOAT  # as its canonical text reads
            return self.make(token, "num", type_, _number_text(value), value=value)
        if token.kind == "name":
            return self.name(token)
        if token.text == "(":
            self.nest(token)
            inner = self.expr()
            self.expect(")", f"to close the parenthesis opened at column {token.column}")
            self.depth -= 1
            return inner
        found = f"{token.text!r}" if token.kind != "end" else "the end of the expression"
        raise self.fail(token, f"expected a number, a name or '(', found {found}.")

    def name(self, token: Token) -> Node:
        name = token.text
        if name in FUNCTIONS:
            return self.call(token)
        if self.at("("):
            known = [*FUNCTIONS]
            raise self.fail(token, f"unknown function {name!r}.{did_you_mean(name, known)}")
        if name in KEYWORDS:
            raise self.fail(token, f"{name} needs an operand on each side, e.g. "
                                   "rsi(close, 14) crosses_below 30 and close > sma(close, 200).")
        if name in SERIES_NAMES:
            return self.make(token, "series", SERIES, name, value=name)
        if name in self.params:
            kind = self.params[name]
            return self.make(token, "param", INT if kind == INT else FLOAT, name, value=name,
                             params=(name,))
        hint = did_you_mean(name, [*SERIES_NAMES, *self.params, *FUNCTIONS])
        raise self.fail(token, f"unknown name {name!r}; declare it under [params.{name}] or "
                               f"use a series (open high low close volume).{hint}")

    def call(self, token: Token) -> Node:
        spec = FUNCTIONS[token.text]
        self.expect("(", f"after {token.text}: write {spec.usage}")
        self.nest(token)
        args = [self.expr()]
        while self.at(","):
            self.take()
            args.append(self.expr())
        self.expect(")", f"to close {token.text}(: write {spec.usage}")
        self.depth -= 1
        if len(args) != len(spec.args):
            raise self.fail(token, f"{token.text} takes {len(spec.args)} argument(s), got "
                                   f"{len(args)}; write {spec.usage}.")
        for kind, arg in zip(spec.args, args):
            self.check_argument(token, spec, kind, arg)
        text = f"{token.text}({', '.join(a.text for a in args)})"
        return self.make(token, "call", SERIES, text, op=token.text, args=tuple(args),
                         params=_union(*args))

    def check_argument(self, token: Token, spec: Function, kind: str, arg: Node) -> None:
        if kind == "x" and arg.type != SERIES:
            raise self.fail(token, f"{spec.usage}: x must be a series such as close or "
                                   f"ema(close, 10), but {arg.text} is {_TYPE_WORDS[arg.type]}.")
        if kind == "n" and arg.type != INT:
            hint = (f" Declare {arg.text} with kind = \"int\"." if arg.kind == "param" else "")
            raise self.fail(token, f"{spec.usage}: a period must be a whole number or an int "
                                   f"param, but {arg.text} is {_TYPE_WORDS[arg.type]}.{hint}")
        if kind == "k" and arg.type not in _NUMBER:
            raise self.fail(token, f"{spec.usage}: k must be a number or a param, but "
                                   f"{arg.text} is {_TYPE_WORDS[arg.type]}.")


def _union(*nodes: Node) -> tuple[str, ...]:
    return tuple(sorted(set().union(*(n.params for n in nodes))))


def parse(text: Any, params: Mapping[str, str], where: str = "rule",
          expect: str = SIGNAL) -> Node:
    """The typed tree of ``text``; ``params`` maps declared param names to ``"int"``/``"float"``.

    ``expect`` is ``SIGNAL`` (entry and exit rules) or ``CONDITION`` (``require`` entries).
    ``RuleError`` names ``where``, the column and the fix.
    """
    if not isinstance(text, str) or not text.strip():
        raise RuleError(f"{where} must be a non-empty expression in quotes, e.g. "
                        f"\"rsi(close, 14) crosses_below 30\", got {text!r}.")
    node = _Parser(text, params, where).parse()
    if node.type != expect:
        if expect == SIGNAL and node.type == CONDITION:
            fix = "it compares params only; compare a series, e.g. close > sma(close, n)"
        elif expect == SIGNAL:
            fix = "compare it, e.g. " + f"{node.text} > 0"
        else:
            fix = "a requirement compares params, e.g. fast < slow"
        raise RuleError(f"{where}: {node.text} is {_TYPE_WORDS[node.type]}, not "
                        f"{_TYPE_WORDS[expect]}; {fix}.")
    return node


# --- static facts under given param values ----------------------------------------------------

def scalar(node: Node, params: Mapping[str, Any]) -> Any:
    """Value of a number or condition node under ``params`` (division by zero gives NaN)."""
    kind = node.kind
    if kind == "num":
        return node.value
    if kind == "param":
        return params[node.value]
    if kind == "neg":
        return -scalar(node.args[0], params)
    values = [scalar(a, params) for a in node.args]
    if kind == "arith":
        return _ARITHMETIC[node.op](*values)
    if kind == "cmp":
        return bool(_COMPARE[node.op](*values))
    if kind == "and":
        return values[0] and values[1]
    if kind == "or":
        return values[0] or values[1]
    return not values[0]  # not


def _divide(a, b):
    if np.ndim(b) == 0:
        return a / b if b != 0 else np.full(np.shape(a), np.nan) if np.ndim(a) else math.nan
    out = np.full(np.broadcast(a, b).shape, np.nan)
    np.divide(a, b, out=out, where=b != 0)
    return out


_ARITHMETIC = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b,
               "/": _divide}
_COMPARE = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal}


def function_calls(*nodes: Node) -> tuple[Node, ...]:
    """The distinct function calls under ``nodes`` (nested ones included)."""
    found: dict[str, Node] = {}
    stack = list(nodes)
    while stack:
        node = stack.pop()
        if node.kind == "call":
            found.setdefault(node.text, node)
        stack.extend(node.args)
    return tuple(found.values())


def call_problem(calls: tuple[Node, ...], params: Mapping[str, Any]) -> str | None:
    """Why one of ``calls`` cannot run with ``params`` (a period below 1), or None."""
    for node in calls:
        for kind, arg in zip(FUNCTIONS[node.op].args, node.args):
            if kind == "x":
                continue
            value = scalar(arg, params)
            if kind == "n" and not (value >= 1 and float(value).is_integer()):
                return (f"{node.text} needs a whole period >= 1, but {arg.text} is {value:g} "
                        f"here; choose params that keep it at least 1")
            if kind == "k" and not math.isfinite(value):
                return f"{node.text} needs a finite k, but {arg.text} is {value} here"
    return None


def first_valid(node: Node, params: Mapping[str, Any]) -> int:
    """First bar where every indicator under ``node`` is defined (0 for raw series)."""
    if node.kind == "call":
        spec = FUNCTIONS[node.op]
        numbers = [int(scalar(a, params)) if k == "n" else scalar(a, params)
                   for k, a in zip(spec.args, node.args) if k != "x"]
        start = first_valid(node.args[0], params) if spec.args[0] == "x" else 0
        return spec.warmup(start, *numbers)
    return max((first_valid(a, params) for a in node.args if a.type != INT and a.type != FLOAT),
               default=0)


# --- evaluation -------------------------------------------------------------------------------

class Bars(NamedTuple):
    """The price arrays an expression reads (``volume`` may be missing)."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None = None


def evaluate(node: Node, bars: Bars, params: Mapping[str, Any], memo: dict) -> Any:
    """Value of ``node`` over ``bars`` (array per bar, or a number); ``memo`` shares
    sub-expressions between calls on the same bars (keyed by text and param values)."""
    if node.type in (INT, FLOAT, CONDITION):
        return scalar(node, params)
    if node.kind == "series":  # never memoised: the memo must not keep the bars alive
        return _series(node, bars)
    key = (node.text, *[params[p] for p in node.params])
    found = memo.get(key)
    if found is None:
        found = memo[key] = _compute(node, bars, params, memo)
    return found


def _series(node: Node, bars: Bars) -> np.ndarray:
    values = getattr(bars, node.value)
    if values is None:
        raise RuleError(f"{node.text}: these bars have no volume data; remove volume from "
                        "the rule or load bars with a volume column.")
    return np.ascontiguousarray(values, dtype=np.float64)


def _compute(node: Node, bars: Bars, params: Mapping[str, Any], memo: dict) -> np.ndarray:
    kind = node.kind
    if kind == "call":
        return _call(node, bars, params, memo)
    values = [evaluate(a, bars, params, memo) for a in node.args]
    if kind == "arith":
        with np.errstate(all="ignore"):
            return _ARITHMETIC[node.op](*values)
    if kind == "neg":
        return -values[0]
    if kind == "cmp":
        return _COMPARE[node.op](*values)
    if kind == "cross":
        return crosses(*values, len(bars.close), above=node.op == "crosses_above")
    if kind == "and":
        return values[0] & values[1]
    if kind == "or":
        return values[0] | values[1]
    return ~values[0]  # not


def crosses(a: Any, b: Any, n: int, above: bool) -> np.ndarray:
    """``a crosses_above b`` at t: ``a[t-1] <= b[t-1] and a[t] > b[t]``; ``crosses_below``:
    ``a[t-1] >= b[t-1] and a[t] < b[t]``. Either side may be a number; NaN never crosses."""
    a_prev, a_now = (a[:-1], a[1:]) if np.ndim(a) else (a, a)
    b_prev, b_now = (b[:-1], b[1:]) if np.ndim(b) else (b, b)
    out = np.zeros(n, dtype=bool)
    if above:
        np.logical_and(a_prev <= b_prev, a_now > b_now, out=out[1:])
    else:
        np.logical_and(a_prev >= b_prev, a_now < b_now, out=out[1:])
    return out


def _call(node: Node, bars: Bars, params: Mapping[str, Any], memo: dict) -> np.ndarray:
    """A function over its series argument's defined tail (NaN before), so indicators of
    indicators start where their input starts rather than being NaN throughout."""
    spec = FUNCTIONS[node.op]
    numbers = [int(scalar(a, params)) if k == "n" else float(scalar(a, params))
               for k, a in zip(spec.args, node.args) if k != "x"]
    if spec.args[0] != "x":
        return spec.compute(None, bars, *numbers)
    x = evaluate(node.args[0], bars, params, memo)
    start = first_valid(node.args[0], params)
    if start == 0:
        return spec.compute(x, bars, *numbers)
    out = np.full(x.shape[0], np.nan)
    if start < x.shape[0]:
        out[start:] = spec.compute(x[start:], bars, *numbers)
    return out


# --- a rule bound to param values, as an engine series ------------------------------------------

class BoundRule:
    """A signal rule with its param values: a series key the engine computes and shares.

    ``compute`` gives the signal as 0.0/1.0 per bar (``sign=-1``: 0.0/-1.0). Sub-expressions
    are shared between all bound rules evaluated on the same price arrays (``bars_memo``).
    """

    __slots__ = ("node", "values", "sign", "params", "_hash")

    def __init__(self, node: Node, params: Mapping[str, Any], sign: int = 1):
        self.node = node
        self.params = {p: params[p] for p in node.params}
        self.values = tuple(self.params.values())
        self.sign = sign
        self._hash = hash((node.text, self.values, sign))

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, BoundRule) and other.node.text == self.node.text
                and other.values == self.values and other.sign == self.sign)

    def __hash__(self) -> int:
        return self._hash

    def __repr__(self) -> str:
        return f"BoundRule({self.node.text!r}, {self.params}, sign={self.sign})"

    def __reduce__(self):
        return (BoundRule, (self.node, self.params, self.sign))

    def first_valid(self) -> int:
        key = (self.node.text, self.values)
        found = _FIRST_VALID.get(key)
        if found is None:
            if len(_FIRST_VALID) > 100_000:
                _FIRST_VALID.clear()
            found = _FIRST_VALID[key] = first_valid(self.node, self.params)
        return found

    def compute(self, open_, high, low, close, volume=None) -> np.ndarray:
        bars = Bars(open_, high, low, close, volume)
        signal = evaluate(self.node, bars, self.params, bars_memo(bars))
        return signal.astype(np.float64) if self.sign > 0 else -signal.astype(np.float64)


_FIRST_VALID: dict[tuple, int] = {}


def engine_rule(node: Node, params: Mapping[str, Any]) -> tuple[tuple, tuple | None, float]:
    """A signal rule as the engine's crossing: (series key, other key or None, level); the
    rule fires where ``series - other`` crosses above ``level``, i.e. where it becomes true.

    ``a and b`` / ``a or b`` at the top become ``a - (-b)``, which is 2 exactly where both
    hold and at least 1 where either does, crossing above 1.5 / 0.5. Each side then depends
    only on its own params, so a grid shares far fewer series (e.g. 100 RSI crossings and 9
    trend filters instead of 900 combinations).
    """
    if node.kind in ("and", "or"):
        left, right = node.args
        return ((BoundRule(left, params),), (BoundRule(right, params, sign=-1),),
                1.5 if node.kind == "and" else 0.5)
    return (BoundRule(node, params),), None, 0.5


_MEMOS: dict[tuple, dict] = {}


def bars_memo(bars: Bars) -> dict:
    """The sub-expression memo of these exact price arrays, dropped when they are freed.

    The engine keeps one set of arrays per symbol for a whole ``run_many`` call, so every
    cell of a grid shares the indicators computed for that symbol.
    """
    arrays = [a for a in bars if a is not None]
    key = tuple(id(a) for a in arrays)
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = {}
        for array in arrays:
            weakref.finalize(array, _MEMOS.pop, key, None)
    return memo


# --- the indicators a strategy's chart draws ----------------------------------------------------

PRICE, OSCILLATOR = "price", "oscillator"

#: How a legend names each function.
TITLES = {"sma": "SMA", "ema": "EMA", "rsi": "RSI", "roc": "ROC", "highest": "Highest",
          "lowest": "Lowest", "shift": "Shift", "atr": "ATR", "bb_upper": "BB upper",
          "bb_mid": "BB mid", "bb_lower": "BB lower", "donchian_high": "Donchian high",
          "donchian_low": "Donchian low", "macd": "MACD", "macd_signal": "MACD signal"}
#: Functions whose values are not prices, by the pane they share (MACD with its signal line).
OSCILLATORS = {"rsi": "RSI", "roc": "ROC", "macd": "MACD", "macd_signal": "MACD", "atr": "ATR"}
#: Oscillator panes drawn without levels.
UNLEVELLED = ("ATR",)


class Indicator(NamedTuple):
    """One series a strategy's chart draws: a call of this language on the strategy's params.

    ``fn`` is a function name, or the name of a choice param whose value is one
    (``ma_crossover``'s ``kind``). ``args`` and ``levels`` are expressions over the params
    (``"close"``, ``"period"``, ``"30"``). ``pane`` is ``"price"`` (over the price) or
    ``"oscillator"`` (a pane below, with dashed lines at ``levels``). ``label`` defaults to the
    function's title; ``direction`` keeps a built-in's indicator to its long or short runs.
    """

    fn: str
    args: tuple[str, ...]
    pane: str = PRICE
    levels: tuple[str, ...] = ()
    label: str = ""
    direction: str | None = None


class IndicatorSeries(NamedTuple):
    """One indicator computed over bars, ready to draw."""

    label: str  # the call with its numbers: "SMA(50)", "RSI(14)", "SMA(high, 10)"
    pane: str  # "price" or "oscillator"
    group: str  # oscillators of one group share a pane: "RSI", "MACD", ...
    values: np.ndarray  # one value per bar, NaN during warm-up
    levels: dict[str, float]  # level (a param name or a number's text) -> its value


def rule_indicators(*signals: Node) -> tuple[Indicator, ...]:
    """A rule strategy's indicators: each function call of its rules (nested ones too) in
    reading order; the numbers an oscillator is compared with or crosses are its levels."""
    calls: dict[str, Node] = {}
    for node in _reading_order(signals):
        if node.kind == "call":
            calls.setdefault(node.text, node)
    compared = _compared_numbers(signals)
    out = []
    for call in calls.values():
        group = scale_group(call)
        pane = PRICE if group == PRICE else OSCILLATOR
        levels = () if pane == PRICE or group in UNLEVELLED else compared.get(call.text, ())
        out.append(Indicator(call.op, tuple(a.text for a in call.args), pane, tuple(levels)))
    return tuple(out)


def _reading_order(nodes) -> list[Node]:
    """Every node under ``nodes``, each before its arguments, left to right."""
    out, stack = [], list(reversed(nodes))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.args))
    return out


def _compared_numbers(nodes) -> dict[str, list[str]]:
    """Text of each call -> texts of the numbers it is compared with or crosses."""
    found: dict[str, list[str]] = {}
    for node in _reading_order(nodes):
        if node.kind not in ("cmp", "cross"):
            continue
        for side, other in (node.args, node.args[::-1]):
            if side.kind == "call" and other.type in _NUMBER:
                texts = found.setdefault(side.text, [])
                if other.text not in texts:
                    texts.append(other.text)
    return found


def scale_group(node: Node) -> str:
    """The scale a series is drawn on: ``"price"``, an oscillator's pane (``"RSI"``,
    ``"MACD"``, ...) or ``"Volume"``. An indicator of an oscillator goes with it:
    ``sma(rsi(close, 14), 5)`` is drawn in the RSI pane."""
    if node.kind == "call" and node.op in OSCILLATORS:
        return OSCILLATORS[node.op]
    if node.kind == "series":
        return "Volume" if node.value == "volume" else PRICE
    groups = [scale_group(a) for a in node.args if a.type == SERIES]
    return next((g for g in groups if g != PRICE), PRICE)


def compute_indicator(spec: Indicator, bars: Bars, params: Mapping[str, Any],
                      memo: dict) -> IndicatorSeries:
    """``spec`` over ``bars`` with validated ``params``: its values, label, pane and levels."""
    fn = spec.fn if spec.fn in FUNCTIONS else params[spec.fn]
    kinds = _number_kinds(params)
    call = parse(f"{fn}({', '.join(spec.args)})", kinds, f"indicator {fn}", SERIES)
    levels = {text: _level(text, kinds, params) for text in spec.levels}
    return IndicatorSeries(_label(spec.label or TITLES[fn], call, params), spec.pane,
                           scale_group(call), evaluate(call, bars, params, memo), levels)


def _number_kinds(params: Mapping[str, Any]) -> dict[str, str]:
    """``"int"`` or ``"float"`` of each numeric param value (choices of text are left out)."""
    return {name: INT if isinstance(value, int) else FLOAT for name, value in params.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def _level(text: str, kinds: Mapping[str, str], params: Mapping[str, Any]) -> float:
    node = _Parser(text, kinds, f"level {text!r}").parse()
    if node.type not in _NUMBER:
        raise RuleError(f"level {text!r} is {_TYPE_WORDS[node.type]}; a level is a number or "
                        "a param, e.g. 30 or oversold.")
    return float(scalar(node, params))


def _label(title: str, call: Node, params: Mapping[str, Any]) -> str:
    """``title`` with the call's numbers: ``RSI(14)``, ``BB upper(20, 2)``; a series other
    than close is named: ``SMA(high, 10)``."""
    parts = []
    for kind, arg in zip(FUNCTIONS[call.op].args, call.args):
        if kind != "x":
            parts.append(f"{scalar(arg, params):g}")
        elif arg.text != "close":
            parts.append(arg.text)
    return f"{title}({', '.join(parts)})"

"""The rule language: a hand-written tokenizer, a precedence-climbing parser and an evaluator."""

from __future__ import annotations

import math
import operator
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, NoReturn

from atlas_stream.errors import ExprError, RecordError

__all__ = ["EvalError", "Expr", "MAX_DEPTH", "MAX_LENGTH", "compile_expr", "field_definition"]

#: Longest expression text accepted, in characters.
MAX_LENGTH = 2000
#: Deepest nesting accepted (parentheses, unary operators, operands of operators).
MAX_DEPTH = 100

Resolve = Callable[[str], Any]


class EvalError(RecordError):
    """An expression could not be evaluated on these values (type mismatch, division by zero...)."""


# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<num>(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)
      | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | (?P<op>==|!=|<=|>=|[-+*/%<>(),])
    """,
    re.VERBOSE | re.ASCII,
)
_KEYWORDS = frozenset({"true", "false", "and", "or", "not"})
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


class _Tok:
    __slots__ = ("kind", "value", "col", "text")

    def __init__(self, kind: str, value: Any, col: int, text: str = "") -> None:
        self.kind = kind  # num | str | name | field | kw | op | eof
        self.value = value
        self.col = col  # 1-based column of the token's first character
        self.text = text or str(value)  # as written

    def describe(self) -> str:
        if self.kind == "eof":
            return "end of expression"
        if self.kind == "str":
            return "string literal"
        if self.kind == "field":
            return f"field `{self.value}`"
        return f"'{self.text}'"


def _fail(col: int, message: str) -> NoReturn:
    raise ExprError(f"column {col}: {message}")


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'\"":
            i = _read_string(text, i, toks)
            continue
        if ch == "`":
            end = text.find("`", i + 1)
            if end < 0:
                _fail(i + 1, "unterminated `field name`")
            if end == i + 1:
                _fail(i + 1, "empty `field name`")
            toks.append(_Tok("field", text[i + 1:end], i + 1))
            i = end + 1
            continue
        m = _TOKEN.match(text, i)
        if m is None:
            if ch in "=!":
                _fail(i + 1, f"unexpected '{ch}' (comparisons are == and !=)")
            _fail(i + 1, f"unexpected character {ch!r}")
        kind = m.lastgroup
        word = m.group()
        if kind == "num":
            toks.append(_Tok("num", _number(word, i + 1), i + 1, word))
        elif kind == "name":
            toks.append(_Tok("kw" if word in _KEYWORDS else "name", word, i + 1))
        elif kind == "op":
            toks.append(_Tok("op", word, i + 1))
        i = m.end()
    toks.append(_Tok("eof", None, n + 1))
    return toks


def _number(word: str, col: int) -> int | float:
    if word.isdigit():
        return int(word)
    value = float(word)
    if not math.isfinite(value):
        _fail(col, f"number {word} is out of range")
    return value


def _read_string(text: str, start: int, toks: list[_Tok]) -> int:
    quote, i = text[start], start + 1
    parts: list[str] = []
    while i < len(text):
        ch = text[i]
        if ch == quote:
            toks.append(_Tok("str", "".join(parts), start + 1))
            return i + 1
        if ch == "\\":
            esc = text[i + 1:i + 2]
            if esc not in _ESCAPES:
                _fail(i + 1, f"unknown escape \\{esc} (known: \\n \\t \\r \\\\ \\' \\\")")
            parts.append(_ESCAPES[esc])
            i += 2
            continue
        parts.append(ch)
        i += 1
    _fail(start + 1, "unterminated string")


# --------------------------------------------------------------------------- values


def _kind(v: Any) -> str:
    t = type(v)
    if t is bool:
        return "bool"
    if t is int or t is float:
        return "number"
    if t is str:
        return "string"
    if t is datetime:
        return "timestamp"
    if t is date:
        return "date"
    return t.__name__


_NUMS = frozenset({int, float})  # exact types: bool is not a number
_PASS_THROUGH = frozenset({int, str, bool, datetime, date})
_isfinite = math.isfinite


def _finite(v: Any) -> Any:
    if type(v) is float and not _isfinite(v):
        raise EvalError("result is not a finite number")
    return v


def _need_nums(op: str, a: Any, b: Any) -> None:
    if type(a) not in _NUMS or type(b) not in _NUMS:
        raise EvalError(f"'{op}' needs two numbers, got {_kind(a)} and {_kind(b)}")


def _add(a: Any, b: Any) -> Any:
    if type(a) in _NUMS and type(b) in _NUMS:
        return _finite(a + b)
    if type(a) is str and type(b) is str:
        return a + b
    raise EvalError(f"'+' needs two numbers or two strings, got {_kind(a)} and {_kind(b)}")


def _sub(a: Any, b: Any) -> Any:
    if type(a) in _NUMS and type(b) in _NUMS:
        return _finite(a - b)
    ka, kb = _kind(a), _kind(b)
    if ka == kb == "timestamp":
        return (a - b).total_seconds()
    if ka == kb == "date":
        return (a - b).days
    raise EvalError(f"'-' needs two numbers, timestamps or dates, got {ka} and {kb}")


def _mul(a: Any, b: Any) -> Any:
    _need_nums("*", a, b)
    return _finite(a * b)


def _div(a: Any, b: Any) -> Any:
    _need_nums("/", a, b)
    if b == 0:
        raise EvalError("division by zero")
    return _finite(a / b)


def _mod(a: Any, b: Any) -> Any:
    _need_nums("%", a, b)
    if b == 0:
        raise EvalError("modulo by zero")
    return _finite(a % b)


_ARITH: dict[str, Callable[[Any, Any], Any]] = {"+": _add, "-": _sub, "*": _mul, "/": _div, "%": _mod}
_ORDER: dict[str, Callable[[Any, Any], Any]] = {
    "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
    "==": operator.eq, "!=": operator.ne,
}
_ORDERED_KINDS = frozenset({"number", "string", "date", "timestamp"})


def _compare(op: str, a: Any, b: Any) -> bool:
    """The general case of a comparison (the common number/number case is inlined by callers)."""
    ka, kb = _kind(a), _kind(b)
    if op == "==":
        return ka == kb and bool(a == b)
    if op == "!=":
        return ka != kb or bool(a != b)
    if ka != kb or ka not in _ORDERED_KINDS:
        raise EvalError(f"'{op}' cannot order {ka} and {kb}")
    return bool(_ORDER[op](a, b))


def _entry(name: str, v: Any) -> Any:
    """Normalise a field value on its way in: Decimal -> float, only known kinds accepted."""
    t = type(v)
    if t in _PASS_THROUGH:
        return v
    if t is float or t is Decimal:
        f = float(v)
        if not _isfinite(f):
            raise EvalError(f"field `{name}` is not a finite number")
        return f
    raise EvalError(f"field `{name}` holds an unsupported {t.__name__} value")


# --------------------------------------------------------------------------- AST


class _Node:
    __slots__ = ()

    def ev(self, r: Resolve) -> Any:
        raise NotImplementedError


class _Const(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def ev(self, r: Resolve) -> Any:
        return self.value


class _Field(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def ev(self, r: Resolve) -> Any:
        try:
            v = r(self.name)
        except LookupError:
            raise EvalError(f"field `{self.name}` has no value") from None
        if type(v) in _PASS_THROUGH:
            return v
        return _entry(self.name, v)


class _Arith(_Node):
    """A left-associative chain ``a op b op c`` of one precedence level (kept flat, not deep)."""

    __slots__ = ("first", "rest")

    def __init__(self, first: _Node, rest: list[tuple[Callable[[Any, Any], Any], _Node]]) -> None:
        self.first = first
        self.rest = rest

    def ev(self, r: Resolve) -> Any:
        acc = self.first.ev(r)
        for fn, node in self.rest:
            acc = fn(acc, node.ev(r))
        return acc


class _Compare(_Node):
    __slots__ = ("op", "fn", "left", "right")

    def __init__(self, op: str, left: _Node, right: _Node) -> None:
        self.op = op
        self.fn = _ORDER[op]
        self.left = left
        self.right = right

    def ev(self, r: Resolve) -> Any:
        a = self.left.ev(r)
        b = self.right.ev(r)
        if type(a) in _NUMS and type(b) in _NUMS:
            return self.fn(a, b)
        return _compare(self.op, a, b)


class _Logic(_Node):
    """``and``/``or`` over operands, short-circuit, every evaluated operand must be a bool."""

    __slots__ = ("op", "operands", "stop")

    def __init__(self, op: str, operands: list[_Node]) -> None:
        self.op = op
        self.operands = operands
        self.stop = op == "or"  # the value that ends evaluation early

    def ev(self, r: Resolve) -> Any:
        for node in self.operands:
            v = node.ev(r)
            if type(v) is not bool:
                raise EvalError(f"'{self.op}' needs bool operands, got {_kind(v)}")
            if v is self.stop:
                return v
        return not self.stop


class _Not(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node) -> None:
        self.operand = operand

    def ev(self, r: Resolve) -> Any:
        v = self.operand.ev(r)
        if type(v) is not bool:
            raise EvalError(f"'not' needs a bool, got {_kind(v)}")
        return not v


class _Neg(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node) -> None:
        self.operand = operand

    def ev(self, r: Resolve) -> Any:
        v = self.operand.ev(r)
        if type(v) not in _NUMS:
            raise EvalError(f"unary '-' needs a number, got {_kind(v)}")
        return -v


class _Abs(_Node):
    __slots__ = ("operand",)

    def __init__(self, operand: _Node) -> None:
        self.operand = operand

    def ev(self, r: Resolve) -> Any:
        v = self.operand.ev(r)
        if type(v) not in _NUMS:
            raise EvalError(f"abs() needs a number, got {_kind(v)}")
        return abs(v)


# --------------------------------------------------------------------------- parser

_BINARY_PREC = {
    "or": 1, "and": 2,
    "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
    "+": 5, "-": 5, "*": 6, "/": 6, "%": 6,
}
_NOT_PREC, _CMP_PREC, _NEG_PREC = 3, 4, 7
_FUNCTIONS = frozenset({"abs"})


class _Parser:
    """Precedence climbing: or < and < not < comparison < +,- < *,/,% < unary minus < atom."""

    def __init__(self, toks: list[_Tok]) -> None:
        self.toks = toks
        self.pos = 0
        self.depth = 0
        self.fields: set[str] = set()

    def peek(self) -> _Tok:
        return self.toks[self.pos]

    def take(self) -> _Tok:
        tok = self.toks[self.pos]
        self.pos += 1
        return tok

    def binary_prec(self, tok: _Tok) -> int:
        if tok.kind in ("op", "kw"):
            return _BINARY_PREC.get(tok.value, 0)
        return 0

    def parse(self) -> _Node:
        node = self.expr(1)
        tok = self.peek()
        if tok.kind != "eof":
            _fail(tok.col, f"unexpected {tok.describe()}")
        return node

    def expr(self, min_prec: int) -> _Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            _fail(self.peek().col, f"expression nested too deeply (limit {MAX_DEPTH})")
        left = self.prefix(min_prec)
        while True:
            tok = self.peek()
            prec = self.binary_prec(tok)
            if prec == 0 or prec < min_prec:
                break
            if prec == _CMP_PREC:
                self.take()
                left = _Compare(tok.value, left, self.expr(prec + 1))
                nxt = self.peek()
                if self.binary_prec(nxt) == _CMP_PREC:
                    _fail(nxt.col, f"comparisons cannot be chained: {nxt.describe()} after "
                                   f"'{tok.value}' (use 'and')")
            elif prec <= 2:
                operands = [left]
                while self.peek().value == tok.value and self.peek().kind == "kw":
                    self.take()
                    operands.append(self.expr(prec + 1))
                left = _Logic(tok.value, operands)
            else:
                rest: list[tuple[Callable[[Any, Any], Any], _Node]] = []
                while self.binary_prec(self.peek()) == prec:
                    op = self.take().value
                    rest.append((_ARITH[op], self.expr(prec + 1)))
                left = _Arith(left, rest)
        self.depth -= 1
        return left

    def prefix(self, min_prec: int) -> _Node:
        tok = self.take()
        if tok.kind == "kw" and tok.value == "not":
            if min_prec > _NOT_PREC:
                _fail(tok.col, "'not' needs parentheses here")
            return _Not(self.expr(_NOT_PREC))
        if tok.kind == "op" and tok.value == "-":
            nxt = self.peek()
            if nxt.kind == "num":  # fold a negative literal
                self.take()
                return _Const(-nxt.value)
            return _Neg(self.expr(_NEG_PREC))
        if tok.kind in ("num", "str"):
            return _Const(tok.value)
        if tok.kind == "kw" and tok.value in ("true", "false"):
            return _Const(tok.value == "true")
        if tok.kind == "field":
            self.fields.add(tok.value)
            return _Field(tok.value)
        if tok.kind == "name":
            if self.peek().kind == "op" and self.peek().value == "(":
                return self.call(tok)
            self.fields.add(tok.value)
            return _Field(tok.value)
        if tok.kind == "op" and tok.value == "(":
            node = self.expr(1)
            self.expect(")", tok)
            return node
        _fail(tok.col, f"unexpected {tok.describe()}")

    def call(self, name: _Tok) -> _Node:
        if name.value not in _FUNCTIONS:
            _fail(name.col, f"unknown function '{name.value}' (available: abs)")
        open_tok = self.take()
        if self.peek().kind == "op" and self.peek().value == ")":
            _fail(self.peek().col, f"{name.value}() takes exactly one argument")
        arg = self.expr(1)
        if self.peek().kind == "op" and self.peek().value == ",":
            _fail(self.peek().col, f"{name.value}() takes exactly one argument")
        self.expect(")", open_tok)
        return _Abs(arg)

    def expect(self, op: str, opener: _Tok) -> None:
        tok = self.take()
        if tok.kind != "op" or tok.value != op:
            _fail(tok.col, f"expected '{op}' to close '{opener.value}' of column {opener.col}, "
                           f"got {tok.describe()}")


# --------------------------------------------------------------------------- public


class Expr:
    """A compiled expression. Evaluation is deterministic and never runs Python code from text."""

    __slots__ = ("text", "fields", "_root")

    def __init__(self, text: str, root: _Node, fields: frozenset[str]) -> None:
        self.text = text
        self.fields = fields
        self._root = root

    def __repr__(self) -> str:
        return f"Expr({self.text!r})"

    def evaluate(self, resolve: Resolve) -> Any:
        """Evaluate with ``resolve(name)`` giving each field's coerced value. Raises EvalError."""
        try:
            return self._root.ev(resolve)
        except EvalError:
            raise
        except (ArithmeticError, TypeError, ValueError) as exc:
            # e.g. int too large for a float, naive vs aware timestamps
            raise EvalError(str(exc)) from exc


def compile_expr(text: str) -> Expr:
    """Parse ``text`` into an Expr. Raises ExprError naming the column of the problem."""
    if not isinstance(text, str):
        raise ExprError(f"column 1: expression must be a string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        _fail(MAX_LENGTH + 1, f"expression is {len(text)} characters long (limit {MAX_LENGTH})")
    if not text.strip():
        _fail(1, "empty expression")
    parser = _Parser(_tokenize(text))
    root = parser.parse()
    return Expr(text, root, frozenset(parser.fields))


def field_definition(expr: Expr) -> tuple[str, Expr] | None:
    """``(field, E)`` when ``expr`` says a field equals an expression of other fields:
    ``field == E`` or ``abs(field - E) < tolerance`` (``<=`` too); None otherwise.

    Sample data uses it: random values almost never satisfy such a rule, so the generator
    computes the field from the others instead.
    """
    root = expr._root
    if not isinstance(root, _Compare):
        return None
    defined: _Node | None = None
    if root.op == "==" and isinstance(root.left, _Field):
        name, defined = root.left.name, root.right
    elif root.op in ("<", "<=") and isinstance(root.left, _Abs):
        diff = root.left.operand
        if (isinstance(diff, _Arith) and isinstance(diff.first, _Field) and len(diff.rest) == 1
                and diff.rest[0][0] is _sub):
            name, defined = diff.first.name, diff.rest[0][1]
    if defined is None:
        return None
    return name, Expr(expr.text, defined, frozenset(expr.fields - {name}))

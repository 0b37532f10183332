"""The rule language on Arrow: a parsed expression (atlas_stream.expr) compiled to pyarrow.compute.

Every field has a fixed dtype, so the kind of every sub-expression (int, float, string, bool,
date, timestamp) is known before any row is read: a type mismatch is decided once for the whole
batch, and only the data-dependent errors (division or modulo by zero, a result that is not
finite) are tracked per row, as a mask. ``and``/``or`` keep Python's short-circuit: an operand
that is not evaluated for a row cannot make that row fail.

Python integers never overflow; int64 arrays do. Where an exact result cannot be guaranteed on
int64/float64 arrays (an overflow, an int beyond 2**53 compared with or divided as a float, a
timestamp difference beyond 2**53 microseconds) :class:`NotVectorised` is raised and the caller
evaluates that batch row by row with :meth:`atlas_stream.expr.Expr.evaluate`. That is the only
per-row fallback, and ordinary data never reaches it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from .. import expr as _x
from ..errors import AtlasError
from ..model import DType
from .arrow_const import const
from .arrow_values import Mask, any_, full, to_mask

__all__ = ["ArrowExpr", "Env", "NotVectorised", "Result", "dtype_kind"]

_OPS: dict[Callable[[Any, Any], Any], str] = {fn: op for op, fn in _x._ARITH.items()}
_EXACT = 2 ** 53
_NUMBER = ("int", "float")


class NotVectorised(AtlasError):
    """This batch needs the per-row evaluator (an exact result is not possible on arrays)."""


def dtype_kind(dtype: DType) -> str:
    """The rule-language kind of a field of ``dtype`` (decimals are used as floats)."""
    name = dtype.name
    if name in ("int", "bigint"):
        return "int"
    if name in ("float", "double", "decimal"):
        return "float"
    return name  # string, bool, date, timestamp


@dataclass
class Result:
    """A value per row: ``kind`` (``error`` when it always fails), ``value`` (array or scalar),
    ``err`` (rows whose evaluation failed; None for none)."""

    kind: str
    value: Any
    err: Mask | None


#: field name -> (kind, array with a harmless placeholder where the field has no value)
Env = Mapping[str, tuple[str, pa.Array]]


def _or(a: Mask | None, b: Mask | None) -> Mask | None:
    if a is None:
        return b
    if b is None:
        return a
    return pc.or_(a, b)


def _full(n: int, value: bool) -> Mask:
    return full(n, value)


class ArrowExpr:
    """An expression compiled for record batches."""

    def __init__(self, compiled: _x.Expr) -> None:
        self.expr = compiled
        self.fields = compiled.fields

    def evaluate(self, env: Env, n: int) -> Result:
        """Evaluate over ``n`` rows. Raises NotVectorised (see the module docstring)."""
        try:
            return _Eval(env, n).node(self.expr._root)
        except (pa.ArrowInvalid, OverflowError) as exc:  # overflow in a *_checked kernel
            raise NotVectorised(str(exc)) from None

    def true_mask(self, env: Env, n: int) -> Mask:
        """Rows where the expression is exactly ``true`` (false, non-bool or error: not)."""
        r = self.evaluate(env, n)
        if r.kind != "bool":
            return _full(n, False)
        out = _broadcast(r.value, n)
        return out if r.err is None else pc.and_(out, pc.invert(r.err))


def _broadcast(value: Any, n: int) -> Mask:
    if isinstance(value, pa.Scalar):
        return _full(n, bool(value.as_py()))
    return to_mask(value)


class _Eval:
    def __init__(self, env: Env, n: int) -> None:
        self.env = env
        self.n = n

    def error(self) -> Result:
        return Result("error", None, _full(self.n, True))

    def node(self, node: Any) -> Result:
        if isinstance(node, _x._Const):
            return self.const(node.value)
        if isinstance(node, _x._Field):
            kind, arr = self.env[node.name]
            return Result(kind, arr, None)
        if isinstance(node, _x._Arith):
            acc = self.node(node.first)
            for fn, operand in node.rest:
                acc = self.arith(_OPS[fn], acc, self.node(operand))
            return acc
        if isinstance(node, _x._Compare):
            return self.compare(node.op, self.node(node.left), self.node(node.right))
        if isinstance(node, _x._Logic):
            return self.logic(node.op, node.operands)
        if isinstance(node, _x._Not):
            v = self.node(node.operand)
            if v.kind != "bool":
                return Result("error", None, _full(self.n, True))
            return Result("bool", pc.invert(v.value), v.err)
        if isinstance(node, (_x._Neg, _x._Abs)):
            v = self.node(node.operand)
            if v.kind not in _NUMBER:
                return Result("error", None, _full(self.n, True))
            fn = pc.negate_checked if isinstance(node, _x._Neg) else pc.abs_checked
            return Result(v.kind, fn(v.value), v.err)
        raise NotVectorised(f"unknown node {type(node).__name__}")

    def const(self, value: Any) -> Result:
        t = type(value)
        if t is bool:
            return Result("bool", const(value, pa.bool_()), None)
        if t is int:
            if not -(2 ** 63) <= value < 2 ** 63:
                raise NotVectorised("integer literal beyond 64 bits")
            return Result("int", const(value, pa.int64()), None)
        if t is float:
            return Result("float", const(value, pa.float64()), None)
        return Result("string", const(value, pa.string()), None)

    # ------------------------------------------------------------------ arithmetic

    def _exact_ints(self, *values: Result) -> None:
        for v in values:
            if v.kind == "int":
                big = pc.greater(pc.abs_checked(v.value), const(_EXACT))
                if pc.any(big).as_py() if not isinstance(big, pa.Scalar) else big.as_py():
                    raise NotVectorised("an integer beyond 2**53 mixed with floats")

    def arith(self, op: str, a: Result, b: Result) -> Result:
        err = _or(a.err, b.err)
        if a.kind == "error" or b.kind == "error":
            return Result("error", None, _full(self.n, True))
        if op == "+" and a.kind == b.kind == "string":
            return Result("string", pc.binary_join_element_wise(a.value, b.value, const("")), err)
        if op == "-" and a.kind == b.kind == "timestamp":
            us = pc.cast(pc.subtract_checked(a.value, b.value), pa.int64())
            self._exact_ints(Result("int", us, None))
            return Result("float", pc.divide(pc.cast(us, pa.float64()), const(1e6)), err)
        if op == "-" and a.kind == b.kind == "date":
            days = pc.subtract(pc.cast(pc.cast(a.value, pa.int32()), pa.int64()),
                               pc.cast(pc.cast(b.value, pa.int32()), pa.int64()))
            return Result("int", days, err)
        if a.kind not in _NUMBER or b.kind not in _NUMBER:
            return Result("error", None, _full(self.n, True))
        both_int = a.kind == b.kind == "int"
        x, y = a.value, b.value
        if op in ("/", "%"):
            zero = pc.equal(y, const(0))
            zero_mask = _broadcast(zero, self.n)
            err = _or(err, zero_mask)
            y = pc.if_else(zero, const(1, y.type), y)
        if both_int and op != "/":
            fn = {"+": pc.add_checked, "-": pc.subtract_checked, "*": pc.multiply_checked,
                  "%": pc.modulo_checked}[op]
            return Result("int", fn(x, y), err)
        if op == "/" and both_int:
            self._exact_ints(a, b)
        elif not both_int:
            self._exact_ints(a, b)  # Python converts an int to float exactly only below 2**53
        fx, fy = pc.cast(x, pa.float64()), pc.cast(y, pa.float64())
        fn = {"+": pc.add, "-": pc.subtract, "*": pc.multiply, "/": pc.divide, "%": pc.modulo}[op]
        value = fn(fx, fy)
        bad = pc.invert(pc.is_finite(value))
        return Result("float", value, _or(err, _broadcast(bad, self.n)))

    # ------------------------------------------------------------------ comparison

    def compare(self, op: str, a: Result, b: Result) -> Result:
        err = _or(a.err, b.err)
        if a.kind == "error" or b.kind == "error":
            return Result("error", None, _full(self.n, True))
        fn = {"<": pc.less, "<=": pc.less_equal, ">": pc.greater, ">=": pc.greater_equal,
              "==": pc.equal, "!=": pc.not_equal}[op]
        if a.kind in _NUMBER and b.kind in _NUMBER:
            if a.kind != b.kind:
                self._exact_ints(a, b)
            return Result("bool", fn(a.value, b.value), err)
        same = a.kind == b.kind
        if op in ("==", "!="):
            if not same:
                return Result("bool", const(op == "!=", pa.bool_()), err)
            return Result("bool", fn(a.value, b.value), err)
        if not same or a.kind not in ("string", "date", "timestamp"):
            return Result("error", None, _full(self.n, True))
        return Result("bool", fn(a.value, b.value), err)

    # ------------------------------------------------------------------ logic

    def logic(self, op: str, operands: list[Any]) -> Result:
        stop = op == "or"  # the value that ends evaluation early
        n = self.n
        done = _full(n, False)  # rows whose result is ``stop``
        err = _full(n, False)
        for operand in operands:
            active = pc.and_(pc.invert(done), pc.invert(err))
            if not any_(active):
                break
            v = self.node(operand)
            if v.kind != "bool":
                err = pc.or_(err, active)
                continue
            if v.err is not None:
                err = pc.or_(err, pc.and_(active, v.err))
                active = pc.and_(active, pc.invert(v.err))
            value = _broadcast(v.value, n)
            done = pc.or_(done, pc.and_(active, value if stop else pc.invert(value)))
        result = done if stop else pc.invert(done)
        return Result("bool", result, err if any_(err) else None)


def python_rows(compiled: _x.Expr, columns: Mapping[str, list[Any]], rows: list[int]) -> list[Any]:
    """Per-row fallback: the Python evaluator on ``rows`` (None where evaluation fails)."""
    out: list[Any] = []
    for i in rows:
        values = {name: col[i] for name, col in columns.items()}
        try:
            out.append(compiled.evaluate(values.__getitem__))
        except _x.EvalError:
            out.append(_FAILED)
    return out


class _Failed:
    """Marks an evaluation error in python_rows' output."""


_FAILED: Any = _Failed()
FAILED = _FAILED

__all__ += ["FAILED", "python_rows"]

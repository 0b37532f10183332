"""A dataset's transformations applied to a batch of columns, as transform.Transformer per record.

Columns follow the record semantics exactly: a key absent from some rows has a ``present`` mask,
``rename`` moves a value only where the old key is present, ``fill_null`` fills absent and
missing values, ``trim``/``lower``/``upper`` touch strings only. String steps are vectorised
(``lower``/``upper`` for ASCII text; other text goes through ``str.lower``/``str.upper`` so that
e.g. ``ß`` upper-cases the way Python does). ``cast`` converts one value at a time with the
Python coercer: a cast column may mix converted and unconverted values, and only a Python list
keeps both exactly.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..dtypes import CoercionError, coercer, is_missing
from ..expr import compile_expr
from ..model import Feature, Transformation
from ..transform import _schema_step
from .arrow_const import const, null_of
from .arrow_expr import FAILED, ArrowExpr, NotVectorised, dtype_kind, python_rows
from .arrow_values import (
    Col,
    Mask,
    all_,
    any_,
    coerce_column,
    flags,
    from_python,
    full,
    missing_mask,
    nonzero,
    python_values,
    strip,
    to_mask,
)

__all__ = ["ArrowTransformer", "Columns", "decimal_floats", "field_env"]

Columns = dict[str, Col]

_PLACEHOLDER: dict[str, Any] = {"int": 0, "float": 0.0, "string": "", "bool": False}


def decimal_floats(values: pa.Array) -> pa.Array:
    """``float(Decimal)`` of every value: the correctly rounded double. Up to 15 digits the
    unscaled integer (below 2**53) and 10**scale are both exact doubles, so their quotient is
    the correctly rounded value (IEEE division rounds correctly); other decimals go through
    their text, which Arrow reads correctly rounded (the direct cast does not round correctly)."""
    typ = values.type
    if typ.bit_width != 128 or typ.precision > 15 or values.offset or sys.byteorder != "little":
        return pc.cast(pc.cast(values, pa.string()), pa.float64())
    n = len(values)
    # a decimal128 is two little-endian 64-bit words; below 2**63 the low one is the integer
    words = pa.Array.from_buffers(pa.int64(), 2 * n, [None, values.buffers()[1]])
    unscaled = pc.list_element(pa.FixedSizeListArray.from_arrays(words, 2), const(0))
    quotient = pc.divide(pc.cast(unscaled, pa.float64()), const(float(10 ** typ.scale)))
    return pa.Array.from_buffers(pa.float64(), n, [values.buffers()[0], quotient.buffers()[1]],
                                 null_count=values.null_count)


def field_env(kind: str, values: pa.Array) -> pa.Array:
    """A field as an expression sees it: decimals as float (via their text, which Arrow turns
    into the correctly rounded float like ``float(Decimal)``; the direct cast does not), and a
    harmless placeholder where the field has no value."""
    if pa.types.is_decimal(values.type):
        values = decimal_floats(values)
    if kind in _PLACEHOLDER:
        return pc.fill_null(values, const(_PLACEHOLDER[kind], values.type))
    # date / timestamp: day 0 / epoch
    return pc.fill_null(values, pa.scalar(0, pa.int64()).cast(values.type) if kind == "timestamp"
                        else pa.scalar(0, pa.int32()).cast(pa.date32()))


def _merge(where: Mask, a: Col, b: Col | None, n: int) -> Col:
    """Rows of ``where`` from ``a``, the others from ``b`` (None: absent)."""
    if b is None:
        return Col(a.values, a.present)
    a_present = a.present if a.present is not None else full(n, True)
    b_present = b.present if b.present is not None else full(n, True)
    present = pc.if_else(where, a_present, b_present)
    av, bv = a.values, b.values
    if not isinstance(av, list) and not isinstance(bv, list) and av.type == bv.type:
        values: Any = pc.if_else(where, av, bv)
    else:
        la, lb = python_values(av), python_values(bv)
        values = from_python([x if w else y for w, x, y in zip(where.to_pylist(), la, lb)])
    return Col(values, None if all_(present) else present)


def _fill(col: Col | None, value: Any, nulls: frozenset[str], n: int) -> Col:
    constant = from_python([value]) if value is not None else pa.nulls(1)
    if col is None:
        if isinstance(constant, list):
            return Col([value] * n)
        return Col(pa.repeat(constant[0], n) if len(constant) else pa.nulls(n))
    m = missing_mask(col, n, nulls)
    if not any_(m):
        return Col(col.values)
    v = col.values
    if not isinstance(v, list) and pa.types.is_null(v.type) and not isinstance(constant, list):
        return Col(pa.repeat(constant[0], n))
    if not isinstance(v, list) and not isinstance(constant, list) and constant.type == v.type:
        return Col(pc.if_else(m, constant[0], v))
    values = python_values(v)
    return Col(from_python([value if miss else x for miss, x in zip(m.to_pylist(), values)]))


def _text_step(col: Col, op: str) -> Col:
    v = col.values
    methods: dict[str, Callable[[str], str]] = {"trim": str.strip, "lower": str.lower, "upper": str.upper}
    method = methods[op]
    if isinstance(v, list):
        return Col([method(x) if isinstance(x, str) else x for x in v], col.present)
    if not pa.types.is_string(v.type):
        return col
    if op == "trim":
        return Col(strip(v), col.present)
    fast = pc.ascii_lower(v) if op == "lower" else pc.ascii_upper(v)
    other = nonzero(pc.and_(pc.invert(to_mask(pc.string_is_ascii(v))), pc.is_valid(v)))
    if other:
        fast = pc.replace_with_mask(fast, flags(len(v), other),
                                    pa.array([method(v[i].as_py()) for i in other], pa.string()))
    return Col(fast, col.present)


def _cast(col: Col, feature_dtype: Any, nulls: frozenset[str]) -> Col:
    conv = coercer(feature_dtype)
    out: list[Any] = []
    for v in python_values(col.values):
        if is_missing(v, nulls):
            out.append(v)
            continue
        try:
            out.append(conv(v))
        except CoercionError:
            out.append(v)
    return Col(out, col.present)


class ArrowTransformer:
    """Applies a dataset's transformations to a batch of columns (never fails a row)."""

    def __init__(self, source_features: Sequence[Feature], transformations: Sequence[Transformation],
                 null_values: frozenset[str] = frozenset()) -> None:
        self.null_values = frozenset(null_values)
        features = {f.name: f for f in source_features}
        steps: list[tuple[Transformation, Mapping[str, Feature], ArrowExpr | None]] = []
        for index, t in enumerate(transformations):
            before = features
            features = _schema_step(features, t, index)
            compiled = ArrowExpr(compile_expr(t.params["expr"])) if t.op == "derive" else None
            steps.append((t, before, compiled))
        self._steps = tuple(steps)

    def apply(self, cols: Columns, n: int) -> Columns:
        cols = dict(cols)
        nulls = self.null_values
        for t, before, compiled in self._steps:
            op = t.op
            if op == "rename":
                for old, new in t.params["mapping"].items():
                    if old in cols:
                        src = cols.pop(old)
                        present = src.present if src.present is not None else full(n, True)
                        cols[new] = _merge(present, src, cols.get(new), n)
            elif op == "drop":
                for name in t.fields:
                    cols.pop(name, None)
            elif op == "fill_null":
                for name in t.fields:
                    cols[name] = _fill(cols.get(name), t.params["value"], nulls, n)
            elif op in ("trim", "lower", "upper"):
                for name in t.fields:
                    if name in cols:
                        cols[name] = _text_step(cols[name], op)
            elif op == "cast":
                for name in t.fields:
                    if name in cols:
                        cols[name] = _cast(cols[name], t.params["dtype"], nulls)
            else:
                assert compiled is not None
                cols[t.params["name"]] = self._derive(compiled, before, cols, n)
        return cols

    def _derive(self, compiled: ArrowExpr, features: Mapping[str, Feature], cols: Columns, n: int) -> Col:
        ok = full(n, True)
        env: dict[str, tuple[str, pa.Array]] = {}
        typed: dict[str, pa.Array] = {}
        for name in sorted(compiled.fields):
            dtype = features[name].dtype
            col = cols.get(name)
            if col is None:
                return Col(pa.nulls(n))
            wanted = pc.invert(missing_mask(col, n, self.null_values))
            coerced = coerce_column(col.values, dtype, wanted)
            ok = pc.and_(ok, coerced.ok)
            kind = dtype_kind(dtype)
            typed[name] = coerced.values
            env[name] = (kind, field_env(kind, coerced.values))
        try:
            r = compiled.evaluate(env, n)
        except NotVectorised:
            return self._derive_rows(compiled, typed, ok, n)
        if r.kind == "error":
            return Col(pa.nulls(n))
        good = ok if r.err is None else pc.and_(ok, pc.invert(r.err))
        value = r.value
        if isinstance(value, pa.Scalar):
            value = pa.repeat(value, n)
        if pa.types.is_null(value.type):
            return Col(value)
        return Col(pc.if_else(good, value, null_of(value.type)))

    @staticmethod
    def _derive_rows(compiled: ArrowExpr, typed: Mapping[str, pa.Array], ok: Mask, n: int) -> Col:
        columns = {name: arr.to_pylist() for name, arr in typed.items()}
        rows = nonzero(ok)
        got = python_rows(compiled.expr, columns, rows)
        out: list[Any] = [None] * n
        for i, v in zip(rows, got):
            out[i] = None if v is FAILED else v
        return Col(from_python(out))

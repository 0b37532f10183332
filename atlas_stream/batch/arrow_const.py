"""Arrow scalars and small arrays of constants, built from their bytes instead of converted from
Python values.

Why: pyarrow 26 imports pandas at its first conversion of any Python value (``pa.array``,
``pa.scalar``, a Python literal given to a compute function: ``pandas-shim.pxi``), which costs
the batch command about 0.25 s of start-up on one thread and 50 MB of memory, and every literal
given to a compute function is converted again at each call. The values are the same as
``pa.scalar(value, typ)`` / ``pa.array(values, typ)`` give (a unit test compares them).
"""

from __future__ import annotations

import array
import itertools
import struct
from functools import lru_cache
from typing import Any, Sequence

import pyarrow as pa

__all__ = ["const", "const_array", "counting", "i64", "null_of"]

#: struct codes of the fixed-width types built here (native byte order, as Arrow's buffers)
_FORMATS = {pa.int8(): "b", pa.int32(): "i", pa.int64(): "q", pa.float64(): "d"}
#: the type ``pa.scalar`` infers for a Python value of these types
_INFERRED = {bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string()}


def const_array(values: Sequence[Any], typ: pa.DataType) -> pa.Array:
    """``pa.array(values, typ)`` for bool, int8, int32, int64, float64 and string values
    without nulls; timestamps are cast from int64, dates from int32, decimals from their text."""
    n = len(values)
    if typ == pa.bool_():
        bits = sum(1 << i for i, v in enumerate(values) if v)
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(bits.to_bytes(max(1, (n + 7) // 8), "little"))])
    if typ == pa.string():
        encoded = [v.encode() for v in values]
        offsets = array.array("i", itertools.accumulate(map(len, encoded), initial=0))
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])
    code = _FORMATS.get(typ)
    if code is not None:
        return pa.Array.from_buffers(typ, n, [None, pa.py_buffer(struct.pack(f"={n}{code}", *values))])
    if pa.types.is_decimal(typ):
        return const_array([format(v, "f") for v in values], pa.string()).cast(typ)
    return const_array(values, pa.int32() if pa.types.is_date32(typ) else pa.int64()).cast(typ)


@lru_cache(maxsize=1024, typed=True)
def const(value: Any, typ: pa.DataType | None = None) -> pa.Scalar:
    """``pa.scalar(value, typ)`` (``typ`` None: inferred as pa.scalar does for bool, int,
    float and str), cached."""
    return const_array([value], _INFERRED[type(value)] if typ is None else typ)[0]


def i64(value: int) -> pa.Scalar:
    """``pa.scalar(value, pa.int64())``."""
    return const(value, pa.int64())


@lru_cache(maxsize=64)
def null_of(typ: pa.DataType) -> pa.Scalar:
    """``pa.scalar(None, typ)``."""
    return pa.nulls(1, typ)[0]


_COUNTING: list[pa.Array] = [const_array([], pa.int64())]


def counting(n: int) -> pa.Array:
    """``0, 1, ..., n - 1`` as int64 (a slice of a cached array that grows by doubling)."""
    numbers = _COUNTING[0]
    if len(numbers) < n:
        size = max(n, 2 * len(numbers))
        numbers = pa.Array.from_buffers(pa.int64(), size, [None, pa.py_buffer(array.array("q", range(size)))])
        _COUNTING[0] = numbers
    return numbers.slice(0, n)

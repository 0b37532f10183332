"""Missing values, dtype coercion, constraint bounds and canonical text: what a field's value is."""

from __future__ import annotations

import math
import re
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from typing import Any, Callable

import orjson

from atlas_stream.errors import RecordError
from atlas_stream.model import DType

__all__ = [
    "CoercionError",
    "INT64_MAX",
    "INT64_MIN",
    "canonical_text",
    "coerce",
    "coercer",
    "is_missing",
    "parse_bound",
    "to_json_value",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

# ASCII digits only (``\d`` would also take other scripts' digits, which Arrow's RE2 does not).
_NUMERIC = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_BOOL_TEXT = {
    "true": True, "t": True, "yes": True, "y": True, "1": True,
    "false": False, "f": False, "no": False, "n": False, "0": False,
}
_UTC = timezone.utc

Coercer = Callable[[Any], Any]


class CoercionError(RecordError, ValueError):
    """A value cannot be read as the requested dtype."""


def is_missing(value: Any, null_values: frozenset[str] = frozenset()) -> bool:
    """True for None, a blank string, or a string whose strip() is one of ``null_values``."""
    if value is None:
        return True
    if isinstance(value, str):
        s = value.strip()
        return not s or s in null_values
    return False


def _show(value: Any) -> str:
    """A short description of a value for error messages (never a huge repr)."""
    if isinstance(value, str):
        return repr(value[:40]) + ("..." if len(value) > 40 else "")
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return repr(value) if abs(value) < 10**30 else f"an int of {value.bit_length()} bits"
    if isinstance(value, (float, Decimal, date)):
        return repr(value)[:60]
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return f"a {type(value).__name__}"


def _fail(value: Any, dtype: str, why: str = "") -> CoercionError:
    return CoercionError(f"cannot read {_show(value)} as {dtype}" + (f": {why}" if why else ""))


def _numeric_text(value: str, dtype: str) -> str:
    s = value.strip()
    if _NUMERIC.fullmatch(s) is None:
        raise _fail(value, dtype, "not a number")
    return s


def _to_int(value: Any) -> int:
    t = type(value)
    if t is int:
        if INT64_MIN <= value <= INT64_MAX:
            return int(value)
        raise _fail(value, "int", "outside the 64-bit range")
    if t is bool:
        raise _fail(value, "int", "a bool is not a number")
    if t is float:
        if not value.is_integer():  # also False for inf and nan
            raise _fail(value, "int", "not an integral finite number")
        if not INT64_MIN <= value <= INT64_MAX:
            raise _fail(value, "int", "outside the 64-bit range")
        return int(value)
    if t is str:
        d = Decimal(_numeric_text(value, "int"))
    elif t is Decimal:
        d = value
        if not d.is_finite():
            raise _fail(value, "int", "not finite")
    else:
        raise _fail(value, "int")
    # Range first: comparing is exact and cheap even for '1e999999999'.
    if not INT64_MIN <= d <= INT64_MAX:
        raise _fail(value, "int", "outside the 64-bit range")
    if d != d.to_integral_value():
        raise _fail(value, "int", "not integral")
    return int(d)


def _to_float(value: Any) -> float:
    t = type(value)
    if t is float:
        if math.isfinite(value):
            return float(value)
        raise _fail(value, "float", "not finite")
    if t is bool:
        raise _fail(value, "float", "a bool is not a number")
    if t is int:
        try:
            return float(value)
        except OverflowError:
            raise _fail(value, "float", "too large") from None
    if t is str:
        f = float(_numeric_text(value, "float"))
    elif t is Decimal:
        f = float(value)
    else:
        raise _fail(value, "float")
    if not math.isfinite(f):
        raise _fail(value, "float", "not finite")
    return f


def _decimal_coercer(dtype: DType) -> Coercer:
    precision, scale = dtype.precision or 38, dtype.scale or 0
    max_int_digits = precision - scale
    name = str(dtype)

    def to_decimal(value: Any) -> Decimal:
        t = type(value)
        d: Decimal
        if t is Decimal:
            d = value
        elif t is int:
            d = Decimal(value)
        elif t is float:
            if not math.isfinite(value):
                raise _fail(value, name, "not finite")
            d = Decimal(repr(value))
        elif t is str:
            d = Decimal(_numeric_text(value, name))
        else:
            raise _fail(value, name, "a bool is not a number" if t is bool else "")
        if not d.is_finite():
            raise _fail(value, name, "not finite")
        if d.is_zero():
            return d
        _, digits, exp = d.as_tuple()
        assert isinstance(exp, int)  # finite
        trailing = len(digits) - len(bytes(digits).rstrip(b"\x00"))
        exp += trailing
        frac_digits = max(0, -exp)
        int_digits = max(0, len(digits) - trailing + exp)
        if frac_digits > scale:
            raise _fail(value, name, f"{frac_digits} digits after the point (scale {scale})")
        if int_digits > max_int_digits:
            raise _fail(value, name, f"{int_digits} digits before the point (at most {max_int_digits})")
        return d

    return to_decimal


def _to_string(value: Any) -> str:
    t = type(value)
    if t is str:
        return str(value)
    if t is float and not math.isfinite(value):
        raise _fail(value, "string", "not a finite number")
    if t is Decimal and not value.is_finite():
        raise _fail(value, "string", "not a finite number")
    if t in (bool, int, float, Decimal, date, datetime):
        return canonical_text(value)
    raise _fail(value, "string", "expected any JSON scalar")


def _to_bool(value: Any) -> bool:
    t = type(value)
    if t is bool:
        return bool(value)
    if t is int or t is float:
        if value == 0:
            return False
        if value == 1:
            return True
    elif t is str:
        b = _BOOL_TEXT.get(value.strip().lower())
        if b is not None:
            return b
    raise _fail(value, "bool")


def _to_date(value: Any) -> date:
    t = type(value)
    if t is date:
        d: date = value
        return d
    if t is str:
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(value, "date", "expected an ISO date such as 2024-01-31")


def _utc(dt: datetime, original: Any) -> datetime:
    if dt.tzinfo is None or dt.utcoffset() is None:
        return dt.replace(tzinfo=_UTC)
    if dt.tzinfo is _UTC:
        return dt
    try:
        return dt.astimezone(_UTC)
    except OverflowError:
        raise _fail(original, "timestamp", "out of range in UTC") from None


def _to_timestamp(value: Any) -> datetime:
    t = type(value)
    if t is datetime:
        return _utc(value, value)
    if t is str:
        try:
            return _utc(datetime.fromisoformat(value.strip()), value)
        except ValueError:
            pass
    elif t is date:
        return datetime(value.year, value.month, value.day, tzinfo=_UTC)
    raise _fail(value, "timestamp", "expected an ISO timestamp such as 2024-01-31T12:00:00Z")


_SIMPLE: dict[str, Coercer] = {
    "int": _to_int,
    "bigint": _to_int,
    "float": _to_float,
    "double": _to_float,
    "string": _to_string,
    "bool": _to_bool,
    "date": _to_date,
    "timestamp": _to_timestamp,
}


@lru_cache(maxsize=None)
def coercer(dtype: DType) -> Coercer:
    """The coercion function of ``dtype`` (cached): value -> typed value, or CoercionError."""
    if dtype.name == "decimal":
        return _decimal_coercer(dtype)
    try:
        return _SIMPLE[dtype.name]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype}") from None


def coerce(value: Any, dtype: DType) -> Any:
    """Return ``value`` as ``dtype`` (idempotent) or raise CoercionError."""
    return coercer(dtype)(value)


def parse_bound(value: Any, dtype: DType) -> Any:
    """A contract's min/max as a comparable of ``dtype``. Raises ValueError when it cannot be."""
    if dtype.is_numeric:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            raise ValueError(f"bound {_show(value)} of a {dtype} field must be a number")
        if dtype.name == "decimal":
            d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
            if not d.is_finite():
                raise ValueError(f"bound {_show(value)} must be finite")
            return d
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"bound {_show(value)} must be finite")
        return float(value) if isinstance(value, Decimal) else value
    if dtype.is_temporal:
        if not isinstance(value, str):
            raise ValueError(f"bound {_show(value)} of a {dtype} field must be an ISO {dtype} string")
        try:
            return coerce(value, dtype)
        except CoercionError as exc:
            raise ValueError(f"bad bound for a {dtype} field: {exc}") from None
    raise ValueError(f"min/max do not apply to {dtype} fields")


def canonical_text(value: Any) -> str:
    """Text form used by ``pattern`` and ``max_length``: JSON text for numbers, ISO for times."""
    t = type(value)
    if t is str:
        return str(value)
    if t is bool:
        return "true" if value else "false"
    if t is int:
        return str(int(value))  # same digits as JSON, also beyond 64 bits
    if t is float:
        return orjson.dumps(value).decode()
    if t is Decimal:
        return str(value)
    if t is date or t is datetime:
        return str(value.isoformat())
    raise TypeError(f"no canonical text for {_show(value)}")


def to_json_value(value: Any) -> Any:
    """JSON-ready form of a coerced value: ISO text for date/timestamp, str for Decimal."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value

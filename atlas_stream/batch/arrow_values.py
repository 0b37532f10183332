"""Field values on Arrow arrays: missing masks, dtype coercion and canonical text, as dtypes.py.

Every function here gives, for every row, exactly what :mod:`atlas_stream.dtypes` gives for the
value the stream would see. The common shapes of a value are read with ``pyarrow.compute``
(plain integers and decimals, ISO dates and timestamps, ``true``/``yes``...). Anything outside
those shapes (exponents, ``20240131``, non-ASCII text for ``lower``, a column mixing JSON
kinds, ...) is a *hard* row: it is handed to the Python coercer of dtypes.py one value at a
time, so an unusual value costs a little time but can never be read differently.

Columns hold the values as the stream sees them in a raw JSON message ("JSON view"): string,
int64, float64, bool or null arrays, or a Python list when one column mixes JSON kinds. Derived
fields may also hold date32 and timestamp arrays (an expression can return a field as is).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext
from functools import lru_cache
from typing import Any, Callable, Iterable, TypeAlias

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..dtypes import INT64_MAX, CoercionError, canonical_text, coercer, is_missing
from ..lake import arrow_type
from ..sources.files.options import json_default as poller_json_default
from ..model import DType
from .arrow_const import const, const_array, i64, null_of

__all__ = [
    "PY_WHITESPACE",
    "Coerced",
    "Col",
    "Mask",
    "Values",
    "all_",
    "any_",
    "canonical",
    "coerce_column",
    "days_from_civil",
    "flags",
    "forget_stripped",
    "from_python",
    "full",
    "ints",
    "json_default",
    "json_view",
    "missing_mask",
    "nonzero",
    "python_values",
    "raw_value",
    "strip",
    "to_mask",
]

#: Every character ``str.strip()`` removes: Python's whitespace, which is not Arrow's
#: (a unit test checks it against ``str.isspace`` over all of Unicode).
PY_WHITESPACE = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
                 "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000")

_STRIPPED = threading.local()

#: Bytes a value may start or end with when ``str.strip()`` changes it: ASCII whitespace, and any
#: byte of a non-ASCII character (the first and last bytes of one are never ASCII).
_EDGE = np.zeros(256, dtype=bool)
_EDGE[0x80:] = True
_EDGE[[ord(c) for c in PY_WHITESPACE if c.isascii()]] = True


def _nothing_to_strip(text: pa.Array) -> bool:
    """True when no value can change under ``str.strip()``: its first and last bytes are ASCII
    and not whitespace. Read from the offsets and data buffers (two gathers, no pass over the
    text); empty and null values may read a neighbour's byte, which can only say False."""
    offsets_buf, data_buf = text.buffers()[1:3]
    if data_buf is None or data_buf.size == 0 or not pa.types.is_string(text.type):
        return False
    offsets = np.frombuffer(offsets_buf, dtype=np.int32, count=len(text) + 1, offset=text.offset * 4)
    data = np.frombuffer(data_buf, dtype=np.uint8)
    firsts = data.take(offsets[:-1], mode="clip")
    lasts = data.take(offsets[1:] - 1, mode="clip")
    return not (_EDGE.take(firsts).any() or _EDGE.take(lasts).any())


def strip(text: pa.Array) -> pa.Array:
    """``str.strip()`` of every value. The missing mask and the coercion of a field strip the
    same array one after the other, and a ``trim`` transformation's output needs no second
    strip: each thread keeps its results (with their inputs, so no id is reused) until
    :func:`forget_stripped` (the scorer calls it around each batch)."""
    seen: dict[int, tuple[pa.Array, pa.Array]] | None = getattr(_STRIPPED, "seen", None)
    if seen is None:
        seen = _STRIPPED.seen = {}
    hit = seen.get(id(text))
    if hit is not None and hit[0] is text:
        return hit[1]
    out = text if _nothing_to_strip(text) else pc.utf8_trim(text, PY_WHITESPACE)
    seen[id(text)] = (text, out)
    seen[id(out)] = (out, out)  # stripping twice changes nothing
    return out


def forget_stripped() -> None:
    """Drop this thread's kept :func:`strip` results (their memory)."""
    _STRIPPED.seen = {}


Mask: TypeAlias = pa.Array  # booleans, one per row, never null
Values: TypeAlias = "pa.Array | list[Any]"  # a list: Python objects (mixed JSON kinds, nested values)

_UTC_US = pa.timestamp("us", tz="UTC")
_US_PER_DAY = 86_400_000_000
_I64 = pa.int64()


@dataclass
class Col:
    """One field of a batch: its values and, when some rows lack the key, where it is present."""

    values: Values
    present: Mask | None = None  # None: the key is present in every row


def to_mask(arr: Any) -> Mask:
    """A boolean array without nulls (null counts as false)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr if not arr.null_count else pc.fill_null(arr, const(False))


def full(n: int, value: bool) -> Mask:
    return pa.repeat(const(value), n)


def any_(mask: Mask) -> bool:
    return bool(pc.any(mask).as_py())


def all_(mask: Mask) -> bool:
    return len(mask) == 0 or bool(pc.all(mask).as_py())


def nonzero(mask: Mask) -> list[int]:
    """Positions of the true rows."""
    return pc.indices_nonzero(mask).to_pylist()


def flags(n: int, rows: Iterable[int]) -> Mask:
    out = [False] * n
    for i in rows:
        out[i] = True
    return pa.array(out, pa.bool_())


def ints(arr: Any) -> pa.Array:
    """An int64 array, null as 0."""
    return pc.fill_null(pc.cast(arr, _I64), const(0))


def python_values(values: Values) -> list[Any]:
    return values if isinstance(values, list) else values.to_pylist()


_PLAIN = {str: pa.string(), float: pa.float64(), bool: pa.bool_()}


def from_python(values: list[Any]) -> Values:
    """A typed Arrow array when every non-null value has one JSON kind, else the list itself."""
    kinds = {type(v) for v in values}
    kinds.discard(type(None))
    if not kinds:
        return pa.nulls(len(values))
    if len(kinds) == 1:
        kind = kinds.pop()
        if kind in _PLAIN:
            return pa.array(values, _PLAIN[kind])
        if kind is int:
            try:
                return pa.array(values, _I64)
            except (OverflowError, pa.ArrowInvalid):
                return values
    return values


def json_view(arr: pa.Array, convert: Callable[[Any], Any]) -> Values:
    """An input column as the stream sees it once the source wrote it as JSON: strings,
    integers, floats and booleans as they are; other types through ``convert`` (the JSON
    conversion of the source: decimals and times to text, ...), one value at a time."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_string(t) or pa.types.is_boolean(t) or pa.types.is_null(t) or t == _I64 \
            or t == pa.float64():
        return arr
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return arr.cast(pa.string())
    if pa.types.is_integer(t) and not (t == pa.uint64() and (pc.max(arr).as_py() or 0) > INT64_MAX):
        return arr.cast(_I64)
    if pa.types.is_floating(t):
        return arr.cast(pa.float64())
    return from_python([None if v is None else convert(v) for v in arr.to_pylist()])


@lru_cache(maxsize=64)
def _tokens(nulls: frozenset[str]) -> tuple[pa.Array, int]:
    """A dataset's null tokens and the blank text as an Arrow array, and the byte length of the
    longest token."""
    return const_array(sorted(nulls | {""}), pa.string()), max(len(t.encode()) for t in nulls)


def missing_mask(col: Col | None, n: int, nulls: frozenset[str]) -> Mask:
    """Rows where the field is missing: absent, null, blank after strip(), or a null token."""
    if col is None:
        return full(n, True)
    v = col.values
    if isinstance(v, list):
        m = pa.array([is_missing(x, nulls) for x in v], pa.bool_())
    elif pa.types.is_string(v.type):
        t = strip(v)
        if nulls:
            tokens, longest = _tokens(nulls)
            # blank or a null token: only text as short as the longest token can be either (""
            # too), so most columns need no lookup at all
            short = any_(_short(t, longest))
            blank = pc.is_in(t, tokens) if short else full(len(t), False)
        else:
            blank = pc.equal(t, const(""))
        m = blank if not v.null_count else to_mask(pc.or_kleene(pc.is_null(v), blank))  # CSV text has no nulls
    else:
        m = pc.is_null(v)
    if col.present is not None:
        m = pc.or_(m, pc.invert(col.present))
    return m


# --------------------------------------------------------------------------- coercion

Vector: TypeAlias = "tuple[pa.Array | None, Mask, Mask]"  # (typed values, readable, hard: left to Python)


def _text_fast(t: pa.Array, regex: str) -> tuple[pa.Array, Mask]:
    fast = to_mask(pc.match_substring_regex(t, regex))
    return pc.if_else(fast, t, const("0")), fast


def _cheap_then_exact(t: pa.Array, cheap: Mask, wanted: Mask, cast: Callable[[pa.Array], pa.Array],
                      exact: Callable[[pa.Array, Mask], Vector], filler: str = "0") -> Vector:
    """``exact(t, wanted)``, with fewer regular expression passes: the ``cheap`` rows (cheap
    predicates, no regex; a row the exact path reads with the same ``cast`` of its text) are
    read by ``cast`` at once (the other rows as ``filler``), and only the other wanted rows go
    through ``exact``. Should ``cast`` refuse a cheap row, the whole batch goes through ``exact``."""
    try:
        value = cast(t if all_(cheap) else pc.if_else(cheap, t, const(filler)))
    except pa.ArrowInvalid:
        return exact(t, wanted)
    rest = pc.and_(wanted, pc.invert(cheap))
    if not any_(rest):
        return value, cheap, pc.invert(cheap)
    sub = t.filter(rest)
    sub_value, sub_ok, sub_hard = exact(sub, full(len(sub), True))
    assert sub_value is not None and sub_value.type == value.type
    return (pc.replace_with_mask(value, rest, sub_value), pc.replace_with_mask(cheap, rest, sub_ok),
            pc.replace_with_mask(full(len(t), False), rest, sub_hard))


def _only_chars(t: pa.Array, chars: str) -> Mask:
    """Rows made of ``chars`` (ASCII) alone; true for "" (which is never a wanted row: blank is missing)."""
    return to_mask(pc.equal(pc.binary_length(pc.ascii_trim(t, chars)), const(0)))


def _short(t: pa.Array, longest: int) -> Mask:
    return to_mask(pc.less_equal(pc.binary_length(t), const(longest)))


def _int_from_text(t: pa.Array, wanted: Mask) -> Vector:
    # Unsigned runs of at most 18 ASCII digits: the exact path's first regex matches them.
    cheap = pc.and_(to_mask(pc.ascii_is_decimal(t)), _short(t, 18))
    return _cheap_then_exact(t, cheap, wanted, lambda g: pc.cast(g, _I64), _int_exact)


def _int_exact(t: pa.Array, wanted: Mask) -> Vector:
    guarded, plain = _text_fast(t, r"^-?[0-9]{1,18}$")
    value = pc.cast(guarded, _I64)
    if not any_(pc.and_(wanted, pc.invert(plain))):
        return value, plain, pc.invert(plain)
    guarded, fast = _text_fast(t, r"^[+-]?[0-9]{1,18}(?:\.0*)?$")
    digits = pc.replace_substring_regex(guarded, r"^\+|\.0*$", "")
    return pc.cast(digits, _I64), fast, pc.invert(fast)


def _float_from_text(t: pa.Array, wanted: Mask) -> Vector:
    # At most 15 characters of digits, points and signs that Arrow reads as a number (a sign
    # first, one point, a digit): the regex below matches them; ".", "1.2.3" or "1-2" make the
    # cast raise.
    cheap = pc.and_(_only_chars(t, "0123456789.+-"), _short(t, 15))
    return _cheap_then_exact(t, cheap, wanted, lambda g: pc.cast(g, pa.float64()), _float_exact)


def _float_exact(t: pa.Array, wanted: Mask) -> Vector:
    guarded, fast = _text_fast(t, r"^[+-]?(?:[0-9]{1,15}(?:\.[0-9]{0,15})?|\.[0-9]{1,15})$")
    return pc.cast(guarded, pa.float64()), fast, pc.invert(fast)


_DEC_PARTS = r"^(?P<sign>[+-]?)0*(?P<int>[0-9]*?)(?:\.(?P<frac>[0-9]*?)0*)?$"


def _decimal_from_text(t: pa.Array, dtype: DType, wanted: Mask | None = None) -> Vector:
    if wanted is None:
        return _decimal_exact(t, dtype, None)
    # Digits with a point and a sign that Arrow's safe cast reads: the value fits decimal(p, s)
    # exactly (Arrow raises on a digit lost or beyond the precision), which is the Python
    # coercer's condition; the exact path gives the same cast. At most 38 - s characters:
    # Arrow scales the digits it read to s places in 128 bits, and more digits may wrap
    # around without an error.
    typ = pa.decimal128(dtype.precision or 38, dtype.scale or 0)
    cheap = pc.and_(_only_chars(t, "0123456789.+-"), _short(t, 38 - typ.scale))
    return _cheap_then_exact(t, cheap, wanted, lambda g: pc.cast(g, typ),
                             lambda sub, w: _decimal_exact(sub, dtype, w))


def _decimal_exact(t: pa.Array, dtype: DType, wanted: Mask | None) -> Vector:
    precision, scale = dtype.precision or 38, dtype.scale or 0
    if wanted is not None and precision > scale:  # ([0-9]{1,0} is no regex: decimal(2, 2) goes on below)
        # Common case: at most p-s digits before the point and s after: Arrow's cast is exact.
        frac = rf"(?:\.[0-9]{{0,{scale}}})?" if scale else r"\.?"
        guarded, plain = _text_fast(t, rf"^[+-]?[0-9]{{1,{precision - scale}}}{frac}$")
        if not any_(pc.and_(wanted, pc.invert(plain))):
            return pc.cast(guarded, pa.decimal128(precision, scale)), plain, pc.invert(plain)
    guarded, fast = _text_fast(t, r"^[+-]?(?:[0-9]{1,38}(?:\.[0-9]{0,38})?|\.[0-9]{1,38})$")
    parts = pc.extract_regex(guarded, _DEC_PARTS)
    sign = pc.if_else(pc.equal(parts.field("sign"), const("-")), const("-"), const(""))
    ipart, frac = parts.field("int"), parts.field("frac")
    ilen, flen = ints(pc.utf8_length(ipart)), ints(pc.utf8_length(frac))
    zero = pc.and_(pc.equal(ilen, i64(0)), pc.equal(flen, i64(0)))
    fits = pc.and_(pc.less_equal(flen, const(scale)), pc.less_equal(ilen, const(precision - scale)))
    ok = pc.and_(fast, pc.or_(zero, fits))
    # no ".0" after a whole number: 38 digits and one more would be too many for Arrow's cast
    no_frac = pc.equal(frac, const(""))
    text = pc.binary_join_element_wise(sign, pc.if_else(pc.equal(ipart, const("")), const("0"), ipart),
                                       pc.if_else(no_frac, const(""), const(".")), frac, const(""))
    value = pc.cast(pc.if_else(ok, text, const("0")), pa.decimal128(precision, scale))
    return value, ok, pc.invert(fast)


_TRUE = const_array(["true", "t", "yes", "y", "1"], pa.string())
_FALSE = const_array(["false", "f", "no", "n", "0"], pa.string())


def _bool_from_text(t: pa.Array) -> Vector:
    ascii_ = to_mask(pc.string_is_ascii(t))
    low = pc.ascii_lower(t)
    yes = to_mask(pc.is_in(low, _TRUE))
    no = to_mask(pc.is_in(low, _FALSE))
    return yes, pc.and_(ascii_, pc.or_(yes, no)), pc.invert(ascii_)


def days_from_civil(y: pa.Array, m: pa.Array, d: pa.Array) -> pa.Array:
    """Days since 1970-01-01 of proleptic Gregorian dates (year >= 1; int64 arrays)."""
    y = pc.subtract(y, pc.cast(pc.less_equal(m, i64(2)), _I64))  # >= 0, so / is floor division
    era = pc.divide(y, i64(400))
    yoe = pc.subtract(y, pc.multiply(era, i64(400)))
    mm = pc.add(m, pc.if_else(pc.greater(m, i64(2)), i64(-3), i64(9)))
    doy = pc.add(pc.divide(pc.add(pc.multiply(mm, i64(153)), i64(2)), i64(5)), pc.subtract(d, i64(1)))
    doe = pc.add(pc.subtract(pc.add(pc.multiply(yoe, i64(365)), pc.divide(yoe, i64(4))), pc.divide(yoe, i64(100))), doy)
    return pc.subtract(pc.add(pc.multiply(era, i64(146097)), doe), i64(719468))


_DIM = const_array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], _I64)


def _valid_date(y: pa.Array, m: pa.Array, d: pa.Array) -> Mask:
    month_ok = pc.and_(pc.greater_equal(m, i64(1)), pc.less_equal(m, i64(12)))
    leap = pc.or_(pc.and_(_divisible(y, 4), pc.invert(_divisible(y, 100))), _divisible(y, 400))
    dim = pc.add(pc.take(_DIM, pc.if_else(month_ok, m, i64(1))), pc.cast(pc.and_(pc.equal(m, i64(2)), leap), _I64))
    return to_mask(pc.and_(pc.and_(pc.greater_equal(y, i64(1)), month_ok),
                           pc.and_(pc.greater_equal(d, i64(1)), pc.less_equal(d, dim))))


def _divisible(y: pa.Array, k: int) -> Mask:
    return pc.equal(pc.subtract(y, pc.multiply(pc.divide(y, i64(k)), i64(k))), i64(0))


def _part(parts: Any, name: str) -> pa.Array:
    field = pc.fill_null(parts.field(name), const(""))
    return ints(pc.cast(pc.if_else(pc.equal(field, const("")), const("0"), field), _I64))


def _civil(valid: Mask, y: pa.Array, m: pa.Array, d: pa.Array) -> pa.Array:
    return days_from_civil(pc.if_else(valid, y, i64(1970)), pc.if_else(valid, m, i64(1)), pc.if_else(valid, d, i64(1)))


def _date_from_text(t: pa.Array) -> Vector:
    parts = pc.extract_regex(t, r"^(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})$")
    fast = to_mask(parts.is_valid())
    y, m, d = _part(parts, "Y"), _part(parts, "M"), _part(parts, "D")
    ok = pc.and_(fast, _valid_date(y, m, d))
    # A plain YYYY-MM-DD that is not a calendar date is refused by date.fromisoformat too.
    return pc.cast(pc.cast(_civil(ok, y, m, d), pa.int32()), pa.date32()), ok, pc.invert(fast)


_TS_PARTS = (r"^(?P<Y>[0-9]{4})-(?P<M>[0-9]{2})-(?P<D>[0-9]{2})"
             r"(?:[T ](?P<h>[0-9]{2}):(?P<mi>[0-9]{2})(?::(?P<s>[0-9]{2})(?:\.(?P<f>[0-9]{6}|[0-9]{3}))?)?"
             r"(?P<tz>Z|[+-][0-9]{2}:[0-9]{2})?)?$")
_EPOCH_DATE = date(1970, 1, 1)
_MIN_US = (date(1, 1, 1) - _EPOCH_DATE).days * _US_PER_DAY
_MAX_US = ((date(9999, 12, 31) - _EPOCH_DATE).days + 1) * _US_PER_DAY - 1


_HMS = r"(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_YMD = r"^[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])"
_ZONED = _YMD + r"[T ]" + _HMS + r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
_NAIVE = _YMD + r"(?:[T ]" + _HMS + r")?$"


def _timestamp_from_text(t: pa.Array, wanted: Mask) -> Vector:
    # "YYYY-MM-DDThh:mm:ss[.f{1,6}]Z": digits, "-:.TZ", 20 or 22-27 characters, ending in Z.
    # Arrow's cast reads its layouts by position: given the length and the final Z, the one
    # it accepts is this one, with the fields in range (a calendar date), which _ZONED matches;
    # anything else it refuses (and the batch takes the exact path).
    length = pc.binary_length(t)
    cheap = pc.and_(pc.and_(to_mask(pc.ends_with(t, "Z")), _only_chars(t, "0123456789-:.TZ")),
                    to_mask(pc.or_(pc.equal(length, const(20)),
                                   pc.and_(pc.greater_equal(length, const(22)), pc.less_equal(length, const(27))))))
    value, ok, hard = _cheap_then_exact(t, cheap, wanted, lambda g: pc.cast(g, _UTC_US), _timestamp_exact,
                                        "1970-01-01T00:00:00Z")
    us = pc.cast(value, _I64)
    # in range in UTC, as the exact path checks
    in_range = pc.and_(pc.greater_equal(us, const(_MIN_US)), pc.less_equal(us, const(_MAX_US)))
    return value, pc.and_(ok, in_range), pc.or_(hard, pc.and_(cheap, pc.invert(in_range)))


def _timestamp_exact(t: pa.Array, wanted: Mask) -> Vector:
    """Plain ISO layouts through Arrow's cast (zoned, then naive = UTC); anything else, or a
    batch where Arrow refuses one of them (Feb 30th), through the field-by-field reading."""
    try:
        guarded, zoned = _text_fast(t, _ZONED)
        value = pc.cast(pc.if_else(zoned, guarded, const("1970-01-01T00:00:00Z")), _UTC_US)
        fast = zoned
        rest = pc.and_(wanted, pc.invert(zoned))
        if any_(rest):
            guarded, naive = _text_fast(t, _NAIVE)
            naive = pc.and_(naive, rest)
            local = pc.cast(pc.cast(pc.if_else(naive, guarded, const("1970-01-01")), pa.timestamp("us")), _UTC_US)
            value = pc.if_else(naive, local, value)
            fast = pc.or_(fast, naive)
    except pa.ArrowInvalid:
        return _timestamp_fields(t)
    us = pc.cast(value, _I64)
    fast = pc.and_(fast, pc.and_(pc.greater_equal(us, const(_MIN_US)), pc.less_equal(us, const(_MAX_US))))
    return value, fast, pc.invert(fast)


def _timestamp_fields(t: pa.Array) -> Vector:
    parts = pc.extract_regex(t, _TS_PARTS)
    matched = to_mask(parts.is_valid())
    y, m, d = _part(parts, "Y"), _part(parts, "M"), _part(parts, "D")
    h, mi, s = _part(parts, "h"), _part(parts, "mi"), _part(parts, "s")
    frac = pc.fill_null(parts.field("f"), const(""))
    millis = pc.equal(pc.utf8_length(frac), const(3, pa.int32()))
    f = pc.multiply(_part(parts, "f"), pc.if_else(millis, i64(1000), i64(1)))
    tz = pc.fill_null(parts.field("tz"), const(""))
    tz6 = pc.if_else(pc.equal(pc.utf8_length(tz), const(6, pa.int32())), tz, const("+00:00"))
    oh = ints(pc.cast(pc.utf8_slice_codeunits(tz6, 1, 3), _I64))
    om = ints(pc.cast(pc.utf8_slice_codeunits(tz6, 4, 6), _I64))
    osign = pc.if_else(pc.starts_with(tz6, "-"), i64(-1), i64(1))
    valid = matched
    for cond in (_valid_date(y, m, d), pc.less_equal(h, i64(23)), pc.less_equal(mi, i64(59)), pc.less_equal(s, i64(59)),
                 pc.less_equal(oh, i64(23)), pc.less_equal(om, i64(59))):
        valid = pc.and_(valid, cond)
    clock = pc.add(pc.multiply(pc.add(pc.multiply(pc.add(pc.multiply(h, i64(60)), mi), i64(60)), s), i64(1_000_000)), f)
    offset = pc.multiply(pc.multiply(pc.add(pc.multiply(oh, i64(60)), om), i64(60_000_000)), osign)
    us = pc.subtract(pc.add(pc.multiply(_civil(valid, y, m, d), i64(_US_PER_DAY)), clock), offset)
    fast = pc.and_(valid, pc.and_(pc.greater_equal(us, const(_MIN_US)), pc.less_equal(us, const(_MAX_US))))
    # Anything else (other layouts, invalid fields, out of range in UTC) is Python's to decide.
    return pc.cast(pc.if_else(fast, us, i64(0)), _UTC_US), fast, pc.invert(fast)


def _from_text(t_raw: pa.Array, dtype: DType, wanted: Mask) -> Vector:
    name = dtype.name
    n = len(t_raw)
    if name == "string":
        return t_raw, full(n, True), full(n, False)
    t = strip(t_raw)
    if name in ("int", "bigint"):
        return _int_from_text(t, wanted)
    if name in ("float", "double"):
        return _float_from_text(t, wanted)
    if name == "decimal":
        return _decimal_from_text(t, dtype, wanted)
    if name == "bool":
        return _bool_from_text(t)
    if name == "date":
        return _date_from_text(t)
    return _timestamp_from_text(t, wanted)


def _from_int(v: pa.Array, dtype: DType) -> Vector:
    name = dtype.name
    n = len(v)
    yes, no = full(n, True), full(n, False)
    if name in ("int", "bigint"):
        return v, yes, no
    if name in ("float", "double"):
        return pc.cast(v, pa.float64(), safe=False), yes, no
    if name == "string":
        return pc.cast(v, pa.string()), yes, no
    if name == "bool":
        return to_mask(pc.equal(v, i64(1))), to_mask(pc.is_in(v, const_array([0, 1], _I64))), no
    if name == "decimal":
        precision, scale = dtype.precision or 38, dtype.scale or 0
        digits = precision - scale
        limit = 10 ** digits
        ok = yes if digits >= 19 else to_mask(pc.and_(pc.less(v, i64(limit)), pc.greater(v, i64(-limit))))
        return pc.cast(pc.if_else(ok, v, i64(0)), pa.decimal128(precision, scale)), ok, no
    return None, no, no  # date, timestamp: numbers are refused


def _from_float(v: pa.Array, dtype: DType) -> Vector:
    name = dtype.name
    no = full(len(v), False)
    finite = to_mask(pc.is_finite(v))
    if name in ("float", "double"):
        return v, finite, no
    if name in ("int", "bigint"):
        whole = pc.and_(pc.equal(pc.floor(v), v),
                        pc.and_(pc.greater_equal(v, const(-(2.0 ** 63))), pc.less(v, const(2.0 ** 63))))
        ok = to_mask(pc.and_(finite, whole))
        return pc.cast(pc.if_else(ok, v, const(0.0)), _I64, safe=False), ok, no
    if name == "bool":
        return to_mask(pc.equal(v, const(1.0))), to_mask(pc.is_in(v, const_array([0.0, 1.0], pa.float64()))), no
    if name == "decimal":
        # Decimal(repr(x)): Arrow writes the same shortest digits as repr; exponent forms
        # (tiny or huge values) are hard rows.
        text = pc.cast(pc.if_else(finite, v, const(0.0)), pa.string())
        value, ok, hard = _decimal_from_text(text, dtype)
        return value, pc.and_(ok, finite), pc.and_(hard, finite)
    if name == "string":
        return None, no, finite  # orjson's text of a float: per value
    return None, no, no


def _vector(values: Values, dtype: DType, wanted: Mask) -> Vector:
    """(typed values, readable, hard) over every row; hard rows are left to Python."""
    if isinstance(values, list):
        n = len(values)
        return None, full(n, False), full(n, True)
    t = values.type
    n = len(values)
    yes, no = full(n, True), full(n, False)
    if pa.types.is_string(t):
        return _from_text(values, dtype, wanted)
    if t == _I64:
        return _from_int(values, dtype)
    if t == pa.float64():
        return _from_float(values, dtype)
    if pa.types.is_boolean(t):
        if dtype.name == "bool":
            return values, yes, no
        if dtype.name == "string":
            return pc.if_else(values, const("true"), const("false")), yes, no
        return None, no, no  # a bool is not a number, date or timestamp
    if pa.types.is_null(t):
        return None, no, no
    if t == pa.date32() and dtype.name in ("date", "timestamp"):
        return values.cast(arrow_type(dtype)), yes, no
    if t == _UTC_US and dtype.name == "timestamp":
        return values, yes, no
    return None, no, yes  # any other pairing: per value


@dataclass
class Coerced:
    """A field read as its dtype: ``values`` (null unless ``ok``), ``ok`` (readable)."""

    values: pa.Array
    ok: Mask


def raw_value(values: Values, i: int) -> Any:
    return values[i] if isinstance(values, list) else values[i].as_py()


def coerce_column(values: Values, dtype: DType, wanted: Mask) -> Coerced:
    """Read ``values`` as ``dtype`` in the rows of ``wanted`` (the non-missing ones)."""
    typ = arrow_type(dtype)
    n = len(values)
    arr, ok, hard = _vector(values, dtype, wanted)
    hard = pc.and_(hard, wanted)
    ok = pc.and_(pc.and_(ok, wanted), pc.invert(hard))
    out = arr if arr is not None else pa.nulls(n, typ)
    if out.type != typ:
        out = out.cast(typ)
    rows = nonzero(hard)
    if rows:
        conv = coercer(dtype)
        got: list[Any] = []
        good: list[int] = []
        for i in rows:
            try:
                got.append(conv(raw_value(values, i)))
                good.append(i)
            except CoercionError:
                pass
        if good:
            mask = flags(n, good)
            out = pc.replace_with_mask(out, mask, _typed_array(got, typ))
            ok = pc.or_(ok, mask)
    # every row readable (most text columns): the values as they are, without a copy
    return Coerced(out if ok.true_count == n and not out.null_count else pc.if_else(ok, out, null_of(typ)), ok)


def _typed_array(values: list[Any], typ: pa.DataType) -> pa.Array:
    """``pa.array(values, typ)``; decimals first get the type's scale: pyarrow infers a
    precision from the first Decimal and refuses a later one with another exponent
    (``[Decimal('1E+4'), Decimal('1.0')]`` as decimal(6, 2)). The values are unchanged."""
    if pa.types.is_decimal(typ):
        q = Decimal(1).scaleb(-typ.scale)
        with localcontext() as ctx:
            ctx.prec = 100  # exact: a value has at most 38 digits
            values = [v.quantize(q) for v in values]
    return pa.array(values, typ)


def canonical(coerced: Coerced, dtype: DType, raw: Values | None) -> pa.Array:
    """Canonical text (what ``pattern`` and ``max_length`` see) of the readable rows."""
    v, name = coerced.values, dtype.name
    if name == "string":
        return v
    if name in ("int", "bigint", "date"):
        return pc.cast(v, pa.string())
    if name == "bool":
        return pc.if_else(v, const("true"), const("false"))
    # float (orjson's text), decimal (as written), timestamp (isoformat): per value, in Python.
    out: list[str | None] = [None] * len(v)
    rows = nonzero(coerced.ok)
    if name == "decimal":
        conv = coercer(dtype)
        for i in rows:
            assert raw is not None
            out[i] = canonical_text(conv(raw_value(raw, i)))
    elif name == "timestamp":
        for i in rows:
            out[i] = v[i].as_py().isoformat()
    else:
        for i in rows:
            out[i] = orjson.dumps(v[i].as_py()).decode()
    return pa.array(out, pa.string())


def json_default(value: Any) -> Any:
    """JSON form of what Parquet hands over: the file poller's conversion (both paths publish the
    same JSON); any other value (lists, structs) is left for the caller as it is."""
    try:
        return poller_json_default(value)
    except TypeError:
        return value
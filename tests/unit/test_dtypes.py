"""Missing values, coercion per dtype, bounds and canonical text."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from atlas_stream.dtypes import (
    CoercionError,
    canonical_text,
    coerce,
    is_missing,
    parse_bound,
    to_json_value,
)
from atlas_stream.model import CSV_NULL_TOKENS, DType, parse_dtype

UTC = timezone.utc
PLUS2 = timezone(timedelta(hours=2))
FAIL = object()  # expected outcome: CoercionError


@pytest.mark.parametrize("value, nulls, expected", [
    (None, frozenset(), True),
    ("", frozenset(), True),
    ("   ", frozenset(), True),
    ("\t\n", frozenset(), True),
    ("x", frozenset(), False),
    (" x ", frozenset(), False),
    ("NA", frozenset(), False),
    ("NA", CSV_NULL_TOKENS, True),
    (" N/A ", CSV_NULL_TOKENS, True),
    ("NULL", CSV_NULL_TOKENS, True),
    ("null", CSV_NULL_TOKENS, True),
    ("Null", CSV_NULL_TOKENS, False),
    ("na", CSV_NULL_TOKENS, False),
    (0, CSV_NULL_TOKENS, False),
    (False, frozenset(), False),
    ([], frozenset(), False),
    ({}, frozenset(), False),
])
def test_is_missing(value: Any, nulls: frozenset[str], expected: bool) -> None:
    assert is_missing(value, nulls) is expected


D = parse_dtype

CASES: list[tuple[str, str, Any, Any]] = [
    # id, dtype, input, expected (FAIL = CoercionError)
    ("int-int", "int", 12, 12),
    ("int-str", "int", "12", 12),
    ("int-str-padded", "int", " 12 ", 12),
    ("int-float-integral", "int", 12.0, 12),
    ("int-str-integral-decimal", "int", "12.0", 12),
    ("int-str-exponent", "int", "1e3", 1000),
    ("int-str-plus", "int", "+5", 5),
    ("int-str-neg", "int", "-5", -5),
    ("int-decimal-integral", "int", Decimal("12.00"), 12),
    ("int-float-fraction", "int", 12.5, FAIL),
    ("int-str-fraction", "int", "12.5", FAIL),
    ("int-str-tiny-exponent", "int", "1e-999999999", FAIL),
    ("int-str-huge-exponent", "int", "1e999999999", FAIL),
    ("int-bool", "int", True, FAIL),
    ("int-max", "int", 2**63 - 1, 2**63 - 1),
    ("int-min", "int", -(2**63), -(2**63)),
    ("int-over", "int", 2**63, FAIL),
    ("int-under", "int", -(2**63) - 1, FAIL),
    ("int-str-over", "int", "9223372036854775808", FAIL),
    ("int-float-2^63", "int", 2.0**63, FAIL),
    ("bigint-range", "bigint", "9223372036854775807", 2**63 - 1),
    ("bigint-over", "bigint", 2**63, FAIL),
    ("int-inf", "int", float("inf"), FAIL),
    ("int-nan", "int", float("nan"), FAIL),
    ("int-str-inf", "int", "inf", FAIL),
    ("int-str-nan", "int", "nan", FAIL),
    ("int-str-underscore", "int", "1_000", FAIL),
    ("int-str-hex", "int", "0x10", FAIL),
    ("int-str-arabic-digits", "int", "\u0661\u0662", FAIL),
    ("int-str-blank", "int", "", FAIL),
    ("int-str-words", "int", "twelve", FAIL),
    ("int-none", "int", None, FAIL),
    ("int-list", "int", [1], FAIL),
    ("int-dict", "int", {"a": 1}, FAIL),
    ("float-int", "float", 12, 12.0),
    ("float-float", "double", 12.5, 12.5),
    ("float-str", "float", "12.5", 12.5),
    ("float-str-dot", "float", ".5", 0.5),
    ("float-str-trailing-dot", "float", "5.", 5.0),
    ("float-str-exp", "double", "-1.5E2", -150.0),
    ("float-decimal", "float", Decimal("0.1"), 0.1),
    ("float-bool", "float", False, FAIL),
    ("float-inf", "float", float("inf"), FAIL),
    ("float-str-inf", "float", "Infinity", FAIL),
    ("float-str-overflow", "float", "1e999", FAIL),
    ("float-huge-int", "float", 10**400, FAIL),
    ("float-str-e-only", "float", "1e", FAIL),
    ("float-str-dot-only", "float", ".", FAIL),
    ("decimal-str", "decimal(5,2)", "123.45", Decimal("123.45")),
    ("decimal-trailing-zeros-ok", "decimal(5,2)", "1.2300", Decimal("1.2300")),
    ("decimal-int", "decimal(5,2)", 999, Decimal("999")),
    ("decimal-float", "decimal(5,2)", 0.1, Decimal("0.1")),
    ("decimal-decimal", "decimal(5,2)", Decimal("-1.5"), Decimal("-1.5")),
    ("decimal-exp-int-digits", "decimal(5,2)", "1e2", Decimal("1E+2")),
    ("decimal-zero-many-places", "decimal(5,2)", "0.00000", Decimal("0.00000")),
    ("decimal-scale-too-big", "decimal(5,2)", "1.234", FAIL),
    ("decimal-int-digits-too-many", "decimal(5,2)", "1000", FAIL),
    ("decimal-int-digits-exp", "decimal(5,2)", "1e3", FAIL),
    ("decimal-float-scale", "decimal(5,2)", 0.125, FAIL),
    ("decimal-scale0", "decimal(3,0)", "999", Decimal("999")),
    ("decimal-scale0-frac", "decimal(3,0)", "9.5", FAIL),
    ("decimal-bool", "decimal(5,2)", True, FAIL),
    ("decimal-nan", "decimal(5,2)", Decimal("NaN"), FAIL),
    ("decimal-str-nan", "decimal(5,2)", "NaN", FAIL),
    ("decimal-38", "decimal(38,0)", "9" * 38, Decimal("9" * 38)),
    ("decimal-39", "decimal(38,0)", "9" * 39, FAIL),
    ("string-str-not-stripped", "string", " a ", " a "),
    ("string-int", "string", 12, "12"),
    ("string-float", "string", 12.5, "12.5"),
    ("string-float-integral", "string", 12.0, "12.0"),
    ("string-float-exp", "string", 1e20, "1e+20"),
    ("string-bool", "string", True, "true"),
    ("string-decimal", "string", Decimal("1.50"), "1.50"),
    ("string-date", "string", date(2024, 1, 2), "2024-01-02"),
    ("string-datetime", "string", datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "2024-01-02T03:04:00+00:00"),
    ("string-empty", "string", "", ""),
    ("string-dict", "string", {"a": 1}, FAIL),
    ("string-list", "string", [1, 2], FAIL),
    ("string-tuple", "string", (1,), FAIL),
    ("string-none", "string", None, FAIL),
    ("string-nan", "string", float("nan"), FAIL),
    ("bool-true", "bool", True, True),
    ("bool-false", "bool", False, False),
    ("bool-1", "bool", 1, True),
    ("bool-0", "bool", 0, False),
    ("bool-1.0", "bool", 1.0, True),
    ("bool-0.0", "bool", 0.0, False),
    ("bool-2", "bool", 2, FAIL),
    ("bool-0.5", "bool", 0.5, FAIL),
    ("bool-TRUE", "bool", "TRUE", True),
    ("bool-True-padded", "bool", " True ", True),
    ("bool-t", "bool", "t", True),
    ("bool-yes", "bool", "Yes", True),
    ("bool-y", "bool", "y", True),
    ("bool-str-1", "bool", "1", True),
    ("bool-false-str", "bool", "false", False),
    ("bool-F", "bool", "F", False),
    ("bool-no", "bool", "NO", False),
    ("bool-n", "bool", "n", False),
    ("bool-str-0", "bool", "0", False),
    ("bool-on", "bool", "on", FAIL),
    ("bool-str-1.0", "bool", "1.0", FAIL),
    ("bool-decimal", "bool", Decimal("1"), FAIL),
    ("bool-none", "bool", None, FAIL),
    ("bool-list", "bool", [True], FAIL),
    ("date-str", "date", "2024-02-29", date(2024, 2, 29)),
    ("date-str-padded", "date", " 2024-02-29 ", date(2024, 2, 29)),
    ("date-str-basic", "date", "20240229", date(2024, 2, 29)),
    ("date-date", "date", date(2024, 1, 1), date(2024, 1, 1)),
    ("date-bad-day", "date", "2023-02-29", FAIL),
    ("date-datetime-str", "date", "2024-01-01T00:00:00", FAIL),
    ("date-datetime-obj", "date", datetime(2024, 1, 1), FAIL),
    ("date-int", "date", 20240101, FAIL),
    ("date-float", "date", 1.7e9, FAIL),
    ("date-slashes", "date", "01/02/2024", FAIL),
    ("ts-naive-str", "timestamp", "2024-01-02T03:04:05", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("ts-z", "timestamp", "2024-01-02T03:04:05Z", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("ts-offset", "timestamp", "2024-01-02T05:04:05+02:00", datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ("ts-space", "timestamp", " 2024-01-02 03:04:05.250 ", datetime(2024, 1, 2, 3, 4, 5, 250000, tzinfo=UTC)),
    ("ts-date-only-str", "timestamp", "2024-01-02", datetime(2024, 1, 2, tzinfo=UTC)),
    ("ts-naive-obj", "timestamp", datetime(2024, 1, 2, 3), datetime(2024, 1, 2, 3, tzinfo=UTC)),
    ("ts-aware-obj", "timestamp", datetime(2024, 1, 2, 5, tzinfo=PLUS2), datetime(2024, 1, 2, 3, tzinfo=UTC)),
    ("ts-date-obj", "timestamp", date(2024, 1, 2), datetime(2024, 1, 2, tzinfo=UTC)),
    ("ts-int", "timestamp", 1704164645, FAIL),
    ("ts-float", "timestamp", 1704164645.5, FAIL),
    ("ts-bad", "timestamp", "yesterday", FAIL),
    ("ts-bad-hour", "timestamp", "2024-01-02T25:00:00", FAIL),
    ("ts-1mb", "timestamp", "2024-01-02" + "x" * 1_000_000, FAIL),
]


@pytest.mark.parametrize("dtype, value, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_coerce(dtype: str, value: Any, expected: Any) -> None:
    dt = D(dtype)
    if expected is FAIL:
        with pytest.raises(CoercionError):
            coerce(value, dt)
        return
    result = coerce(value, dt)
    assert result == expected
    assert type(result) is type(expected)
    if isinstance(result, Decimal):  # no rounding, no normalisation
        assert str(result) == str(expected)
    if isinstance(result, datetime):
        assert result.tzinfo is UTC
    # idempotent: coerce accepts its own output and returns it unchanged
    again = coerce(result, dt)
    assert again == result and type(again) is type(result)


def test_coercion_error_is_a_value_error_with_a_short_message() -> None:
    with pytest.raises(ValueError) as info:
        coerce("x" * 1_000_000, DType("int"))
    assert isinstance(info.value, CoercionError)
    assert len(str(info.value)) < 200


@pytest.mark.parametrize("dtype, value, expected", [
    ("int", 0, 0),
    ("int", 0.5, 0.5),
    ("double", -1, -1),
    ("float", Decimal("2.5"), 2.5),
    ("decimal(5,2)", 1.1, Decimal("1.1")),
    ("decimal(5,2)", 10, Decimal("10")),
    ("date", "2024-01-01", date(2024, 1, 1)),
    ("timestamp", "2024-01-01T02:00:00+02:00", datetime(2024, 1, 1, tzinfo=UTC)),
    ("timestamp", "2024-01-01", datetime(2024, 1, 1, tzinfo=UTC)),
])
def test_parse_bound(dtype: str, value: Any, expected: Any) -> None:
    result = parse_bound(value, D(dtype))
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("dtype, value", [
    ("string", 1), ("string", "a"), ("bool", 0), ("int", "5"), ("int", True),
    ("float", float("inf")), ("float", float("nan")), ("decimal(5,2)", float("nan")),
    ("date", 20240101), ("date", "2024-13-01"), ("date", "2024-01-01T00:00:00"),
    ("timestamp", 0), ("timestamp", "noon"), ("int", None), ("int", [1]),
])
def test_parse_bound_rejects(dtype: str, value: Any) -> None:
    with pytest.raises(ValueError):
        parse_bound(value, D(dtype))


@pytest.mark.parametrize("value, text", [
    ("a b ", "a b "), (True, "true"), (False, "false"), (12, "12"), (-3, "-3"), (2**70, str(2**70)),
    (12.5, "12.5"), (12.0, "12.0"), (1e20, "1e+20"), (1e-7, "1e-7"), (Decimal("1.50"), "1.50"),
    (date(2024, 1, 2), "2024-01-02"),
    (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05+00:00"),
])
def test_canonical_text(value: Any, text: str) -> None:
    assert canonical_text(value) == text


@pytest.mark.parametrize("value, out", [
    (date(2024, 1, 2), "2024-01-02"),
    (datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "2024-01-02T03:04:05+00:00"),
    (Decimal("1.50"), "1.50"),
    (12, 12), (1.5, 1.5), ("x", "x"), (True, True), (None, None),
])
def test_to_json_value(value: Any, out: Any) -> None:
    result = to_json_value(value)
    assert result == out and type(result) is type(out)

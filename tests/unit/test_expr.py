"""The rule language: parsing, refusals and value semantics."""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from atlas_stream.errors import ExprError
from atlas_stream.expr import MAX_DEPTH, EvalError, compile_expr

UTC = timezone.utc
T0 = datetime(2024, 1, 1, 0, 0, tzinfo=UTC)
T1 = datetime(2024, 1, 1, 0, 1, 30, tzinfo=UTC)

VALUES: dict[str, Any] = {
    "i": 7, "j": 2, "zero": 0, "f": 2.5, "fz": 0.0, "big": 1.5e308, "dec": Decimal("1.25"),
    "s": "ab", "t": "cd", "yes": True, "no": False,
    "d1": date(2024, 1, 1), "d2": date(2024, 1, 31), "t0": T0, "t1": T1,
    "naive": datetime(2024, 1, 1), "any name": 5, "huge": 10**400, "lst": [1],
    "nan": Decimal("NaN"),
}


def run(text: str) -> Any:
    return compile_expr(text).evaluate(VALUES.__getitem__)


@pytest.mark.parametrize("text, expected", [
    # literals
    ("12", 12), ("1.5", 1.5), ("1.", 1.0), (".5", 0.5), ("1e3", 1000.0), ("2E-1", 0.2),
    ("'it\\'s'", "it's"), ('"a\\"b"', 'a"b'), ("'a\\nb\\t\\\\'", "a\nb\t\\"), ("'x\"y'", 'x"y'),
    ("true", True), ("false", False),
    # arithmetic and precedence
    ("1 + 2 * 3", 7), ("(1 + 2) * 3", 9), ("10 - 4 - 3", 3), ("2 * 3 % 4", 2),
    ("7 / 2", 3.5), ("6 / 3", 2.0), ("7 % 3", 1), ("-7 % 3", 2), ("7 % -3", -2), ("7.5 % 2", 1.5),
    ("-i * 2", -14), ("- -i", 7), ("-(1 + 2)", -3), ("i + f", 9.5), ("dec * 2", 2.5),
    ("s + t", "abcd"), ("abs(-i)", 7), ("abs(-2.5)", 2.5), ("abs(i - 10) + 1", 4),
    ("`any name` + 1", 6),
    # temporal differences
    ("t1 - t0", 90.0), ("t0 - t1", -90.0), ("d2 - d1", 30), ("d1 - d2", -30),
    # comparisons
    ("i == 7", True), ("i == 7.0", True), ("i != 7.0", False), ("f < i", True), ("i >= 7", True),
    ("s < t", True), ("s == 'ab'", True), ("d1 < d2", True), ("t0 <= t1", True), ("t1 > t0", True),
    ("yes == true", True), ("dec == 1.25", True),
    # == across kinds is False, != True (bool is not a number, date is not a timestamp)
    ("i == '7'", False), ("i != '7'", True), ("yes == 1", False), ("no == 0", False),
    ("d1 == t0", False), ("d1 != t0", True), ("s == yes", False),
    # boolean logic, precedence or < and < not < comparison
    ("yes and no", False), ("yes or no", True), ("not no", True), ("not not yes", True),
    ("not i == 7", False), ("no and no or yes", True), ("yes or no and no", True),
    ("not yes or yes", True), ("i > 1 and i < 10", True),
    # short circuit: the right side would fail
    ("no and i / zero > 1", False), ("yes or i / zero > 1", True), ("no and 1", False),
])
def test_evaluates(text: str, expected: Any) -> None:
    result = run(text)
    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize("text, message", [
    ("yes + 1", "'+' needs two numbers or two strings"),
    ("s + 1", "'+' needs two numbers or two strings"),
    ("s * 2", "'*' needs two numbers"),
    ("s - t", "'-' needs"),
    ("d1 - t0", "'-' needs"),
    ("d1 + 1", "'+' needs"),
    ("i / zero", "division by zero"),
    ("i / fz", "division by zero"),
    ("i % zero", "modulo by zero"),
    ("f % fz", "modulo by zero"),
    ("i and yes", "'and' needs bool"),
    ("yes and i", "'and' needs bool"),
    ("no or 'x'", "'or' needs bool"),
    ("not i", "'not' needs a bool"),
    ("i < s", "cannot order"),
    ("d1 < t0", "cannot order"),
    ("yes < no", "cannot order"),
    ("-s", "unary '-' needs a number"),
    ("-yes", "unary '-' needs a number"),
    ("abs(s)", "abs() needs a number"),
    ("abs(yes)", "abs() needs a number"),
    ("big * 10", "not a finite number"),
    ("big + big", "not a finite number"),
    ("huge / 1", "too large"),
    ("huge + 0.5", "too large"),
    ("naive < t0", "compare"),
    ("lst == 1", "unsupported list"),
    ("nan + 1", "not a finite number"),
    ("missing_field + 1", "has no value"),
])
def test_eval_errors(text: str, message: str) -> None:
    with pytest.raises(EvalError, match=re.escape(message)):
        run(text)


def test_eval_error_is_not_an_atlas_error_but_an_exception() -> None:
    assert issubclass(EvalError, Exception)


@pytest.mark.parametrize("text, column, message", [
    ("", 1, "empty expression"),
    ("   ", 1, "empty expression"),
    ("a +", 4, "unexpected end of expression"),
    ("a + * b", 5, "unexpected '\\*'"),
    ("a < b < c", 7, "cannot be chained"),
    ("a == b != c", 8, "cannot be chained"),
    ("(a", 3, "expected '\\)'"),
    ("a)", 2, "unexpected '\\)'"),
    ("a b", 3, "unexpected 'b'"),
    ("1 = 2", 3, "unexpected '='"),
    ("!a", 1, "unexpected '!'"),
    ("a ? b", 3, "unexpected character"),
    ("'abc", 1, "unterminated string"),
    ("'a\\qb'", 3, "unknown escape"),
    ("`abc", 1, "unterminated"),
    ("``", 1, "empty `field name`"),
    ("foo(1)", 1, "unknown function 'foo'"),
    ("x + __import__('os')", 5, "unknown function '__import__'"),
    ("abs()", 5, "exactly one argument"),
    ("abs(1, 2)", 6, "exactly one argument"),
    ("1e999", 1, "out of range"),
    ("a == not b", 6, "'not' needs parentheses"),
    ("-not a", 2, "'not' needs parentheses"),
    ("12abc", 3, "unexpected 'abc'"),
    ("1.2.3", 4, "unexpected '.3'"),
    ("1e3 1", 5, "unexpected '1'"),
    ("'a' 'b'", 5, "unexpected string literal"),
    ("x" * 2001, 2001, "limit 2000"),
    ("'" + "a" * 1_000_000 + "'", 2001, "limit 2000"),
    ("(" * (MAX_DEPTH + 1) + "1" + ")" * (MAX_DEPTH + 1), MAX_DEPTH + 1, "nested too deeply"),
    ("-" * 300 + "x", MAX_DEPTH + 1, "nested too deeply"),
    ("not " * 150 + "x", 4 * MAX_DEPTH + 1, "nested too deeply"),
], ids=lambda v: v if isinstance(v, (int,)) or len(str(v)) < 30 else f"{str(v)[:12]}...")
def test_compile_errors(text: str, column: int, message: str) -> None:
    with pytest.raises(ExprError, match=f"^column {column}: .*{message}"):
        compile_expr(text)


def test_compile_rejects_non_string() -> None:
    with pytest.raises(ExprError):
        compile_expr(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("text, fields", [
    ("a + b * a", {"a", "b"}),
    ("`order total` > 0 and `x`", {"order total", "x"}),
    ("abs(q) > 1", {"q"}),
    ("true", set()),
    ("abs", {"abs"}),
    ("TRUE or _x9", {"TRUE", "_x9"}),
])
def test_fields(text: str, fields: set[str]) -> None:
    e = compile_expr(text)
    assert e.fields == frozenset(fields)
    assert e.text == text


def test_limits_are_inclusive() -> None:
    depth_ok = "(" * (MAX_DEPTH - 1) + "i" + ")" * (MAX_DEPTH - 1)
    assert run(depth_ok) == 7
    assert run("-(" * 49 + "i" + ")" * 49) == -7  # 98 levels of nesting
    assert compile_expr("1+" * 999 + "1").evaluate(VALUES.__getitem__) == 1000  # flat chain: fine
    assert compile_expr("x" * 2000).fields == frozenset({"x" * 2000})


def test_evaluation_never_runs_text_as_python() -> None:
    e = compile_expr("__import__ == 'os'")
    assert e.fields == frozenset({"__import__"})
    assert e.evaluate({"__import__": "os"}.__getitem__) is True


def test_short_circuit_skips_resolving() -> None:
    seen: list[str] = []

    def resolve(name: str) -> Any:
        seen.append(name)
        return False

    assert compile_expr("a and b").evaluate(resolve) is False
    assert seen == ["a"]

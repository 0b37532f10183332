"""Transformations: on the feature list (schema) and on records."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from atlas_stream.model import CSV_NULL_TOKENS, Feature, Transformation, parse_dtype
from atlas_stream.transform import TransformSchemaError, Transformer, transform_schema

from .builders import feat


def rename(**mapping: str) -> Transformation:
    return Transformation("rename", tuple(mapping), {"mapping": mapping})


def cast(dtype: str, *fields: str) -> Transformation:
    return Transformation("cast", fields, {"dtype": parse_dtype(dtype)})


def op(name: str, *fields: str) -> Transformation:
    return Transformation(name, fields, {})


def fill(value: Any, *fields: str) -> Transformation:
    return Transformation("fill_null", fields, {"value": value})


def derive(name: str, expr: str, dtype: str = "double") -> Transformation:
    f = feat(name, dtype)
    return Transformation("derive", (), {"name": name, "expr": expr, "dtype": f.dtype, "feature": f})


SOURCE = (feat("id", "int", required=True), feat("Price", "string"), feat("qty", "int"),
          feat("note", "string", max_length=5))


def names(features: tuple[Feature, ...]) -> list[str]:
    return [f.name for f in features]


@pytest.mark.parametrize("steps, expected", [
    ([], ["id:int", "Price:string", "qty:int", "note:string"]),
    ([rename(Price="price")], ["id:int", "price:string", "qty:int", "note:string"]),
    ([rename(Price="price", qty="quantity")], ["id:int", "price:string", "quantity:int", "note:string"]),
    ([cast("decimal(10,2)", "Price")], ["id:int", "Price:decimal(10,2)", "qty:int", "note:string"]),
    ([rename(Price="price"), cast("double", "price")], ["id:int", "price:double", "qty:int", "note:string"]),
    ([op("drop", "note")], ["id:int", "Price:string", "qty:int"]),
    ([op("drop", "not_declared")], ["id:int", "Price:string", "qty:int", "note:string"]),
    ([op("trim", "note"), op("lower", "note"), op("upper", "Price"), fill(0, "qty")],
     ["id:int", "Price:string", "qty:int", "note:string"]),
    ([cast("double", "Price"), derive("total", "Price * qty")],
     ["id:int", "Price:double", "qty:int", "note:string", "total:double"]),
    ([derive("total", "qty * 2", "int"), op("drop", "qty")], ["id:int", "Price:string", "note:string", "total:int"]),
], ids=["none", "rename", "rename-two", "cast", "rename-then-cast", "drop", "drop-undeclared",
        "in-place-ops", "derive-appends", "derive-then-drop-input"])
def test_transform_schema(steps: list[Transformation], expected: list[str]) -> None:
    out = transform_schema(SOURCE, steps)
    assert [f"{f.name}:{f.dtype}" for f in out] == expected


def test_cast_and_rename_keep_other_attributes() -> None:
    out = transform_schema(SOURCE, [rename(note="memo"), cast("int", "id")])
    assert out[0] == feat("id", "int", required=True)
    assert out[3] == feat("memo", "string", max_length=5)


@pytest.mark.parametrize("steps, index, message", [
    ([rename(nope="x")], 0, "'nope' is not declared"),
    ([rename(Price="qty")], 0, "'qty' already exists"),
    ([rename(Price="Price")], 0, "already exists"),
    ([op("drop", "note"), op("trim", "note")], 1, "'note' is not declared"),
    ([cast("int", "nope")], 0, "not declared"),
    ([fill(0, "nope")], 0, "not declared"),
    ([op("lower", "nope")], 0, "not declared"),
    ([op("upper", "nope")], 0, "not declared"),
    ([derive("qty", "1")], 0, "'qty' already exists"),
    ([derive("total", "price * qty")], 0, "undeclared field(s) price"),
    ([rename(Price="price"), derive("total", "Price * qty")], 1, "undeclared field(s) Price"),
    ([derive("total", "qty +")], 0, "column 6"),
    ([op("explode", "qty")], 0, "unknown operation"),
    ([op("drop", "qty"), fill(1, "qty")], 1, "'qty' is not declared"),
])
def test_transform_schema_errors(steps: list[Transformation], index: int, message: str) -> None:
    with pytest.raises(TransformSchemaError) as info:
        transform_schema(SOURCE, steps)
    assert info.value.index == index
    assert message in info.value.message
    assert str(info.value).startswith(f"transformations[{index}]: ")
    with pytest.raises(TransformSchemaError):
        Transformer(SOURCE, steps)


@pytest.mark.parametrize("steps, record, expected", [
    ([], {"id": 1, "x": 2}, {"id": 1, "x": 2}),
    ([rename(Price="price")], {"Price": "1", "id": 1}, {"id": 1, "price": "1"}),
    ([rename(Price="price")], {"id": 1}, {"id": 1}),
    ([cast("int", "id")], {"id": "12"}, {"id": 12}),
    ([cast("int", "id")], {"id": "12.5"}, {"id": "12.5"}),
    ([cast("int", "id")], {"id": "  "}, {"id": "  "}),
    ([cast("decimal(10,2)", "Price")], {"Price": "9.99"}, {"Price": Decimal("9.99")}),
    ([cast("int", "id")], {}, {}),
    ([op("drop", "note", "junk")], {"note": "x", "junk": 1, "id": 1}, {"id": 1}),
    ([fill(0, "qty")], {}, {"qty": 0}),
    ([fill(0, "qty")], {"qty": None}, {"qty": 0}),
    ([fill(0, "qty")], {"qty": " "}, {"qty": 0}),
    ([fill(0, "qty")], {"qty": "NA"}, {"qty": 0}),
    ([fill(0, "qty")], {"qty": 5}, {"qty": 5}),
    ([op("trim", "note")], {"note": "  hi  "}, {"note": "hi"}),
    ([op("trim", "note")], {"note": 5}, {"note": 5}),
    ([op("lower", "note")], {"note": "HeLLo"}, {"note": "hello"}),
    ([op("upper", "note")], {"note": "HeLLo"}, {"note": "HELLO"}),
    ([op("upper", "note")], {}, {}),
    # order matters
    ([fill(1, "qty"), op("drop", "qty")], {"qty": None}, {}),
    ([op("upper", "note"), fill("n/a", "note")], {"note": " "}, {"note": "n/a"}),
    ([fill("n/a", "note"), op("upper", "note")], {"note": " "}, {"note": "N/A"}),
    ([rename(Price="price"), cast("double", "price"), derive("total", "price * qty")],
     {"Price": "2.5", "qty": "4"}, {"price": 2.5, "qty": "4", "total": 10.0}),
    # derive coerces inputs to their dtype at that step, without storing them
    ([derive("double_qty", "qty * 2", "int")], {"qty": "21"}, {"qty": "21", "double_qty": 42}),
    ([derive("double_qty", "qty * 2", "int")], {"qty": None}, {"qty": None, "double_qty": None}),
    ([derive("double_qty", "qty * 2", "int")], {}, {"double_qty": None}),
    ([derive("double_qty", "qty * 2", "int")], {"qty": "NA"}, {"qty": "NA", "double_qty": None}),
    ([derive("double_qty", "qty * 2", "int")], {"qty": "x"}, {"qty": "x", "double_qty": None}),
    ([derive("ratio", "qty / (qty - qty)")], {"qty": 3}, {"qty": 3, "ratio": None}),
    ([derive("label", "Price + '!'", "string")], {"Price": "a"}, {"Price": "a", "label": "a!"}),
    ([derive("const", "1 + 1", "int")], {}, {"const": 2}),
    ([derive("x", "qty", "int")], {"qty": 3, "x": "old"}, {"qty": 3, "x": 3}),
    ([cast("decimal(10,2)", "Price"), derive("p2", "Price * 2")], {"Price": "1.25"},
     {"Price": Decimal("1.25"), "p2": 2.5}),
], ids=["none", "rename", "rename-absent", "cast", "cast-fails-unchanged", "cast-blank-unchanged",
        "cast-decimal", "cast-absent", "drop", "fill-absent", "fill-none", "fill-blank", "fill-null-token",
        "fill-present", "trim", "trim-non-str", "lower", "upper", "upper-absent", "fill-then-drop",
        "upper-then-fill", "fill-then-upper", "pipeline", "derive-coerces-input", "derive-none-input", "derive-absent-input",
        "derive-null-token-input", "derive-uncoercible-input", "derive-eval-error", "derive-string",
        "derive-no-inputs", "derive-overwrites", "derive-decimal-input-as-float"])
def test_apply(steps: list[Transformation], record: dict[str, Any], expected: dict[str, Any]) -> None:
    source = SOURCE
    t = Transformer(source, steps, CSV_NULL_TOKENS)
    before = dict(record)
    out = t.apply(record)
    assert out == expected
    assert {k: type(v) for k, v in out.items()} == {k: type(v) for k, v in expected.items()}
    assert record == before  # input never mutated
    assert out is not record


def test_rename_chain_is_sequential() -> None:
    t = Transformer(SOURCE, [rename(Price="price"), rename(price="cost")])
    assert t.apply({"Price": 1}) == {"cost": 1}
    assert names(t.schema) == ["id", "cost", "qty", "note"]


def test_derive_uses_dtype_at_its_step() -> None:
    # qty is cast to string before derive: '+' then concatenates instead of adding
    steps = [cast("string", "qty"), derive("q2", "qty + qty", "string")]
    assert Transformer(SOURCE, steps).apply({"qty": 4}) == {"qty": "4", "q2": "44"}
    assert Transformer(SOURCE, steps[1:]).apply({"qty": 4}) == {"qty": 4, "q2": 8}

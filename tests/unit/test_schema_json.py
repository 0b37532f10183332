"""Registry versions as JSON Schema documents: what they say, that validators and the scorer agree,
and that compatibility decided on documents is the registry's decision on feature lists."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest
from jsonschema import Draft7Validator

from atlas_stream.model import Feature, QualityConfig
from atlas_stream.quality import DatasetScorer
from atlas_stream.schema_registry import MODES, check_compatibility
from atlas_stream.schema_json import document, document_text, parse_document

from .schema_changes import CHANGES, EXPECTED, OK, V1, f

NOW = datetime(2026, 3, 1, tzinfo=timezone.utc)
FEATURES = [
    f("order_id", "string", True, pattern="O-[0-9]+", max_length=12),
    f("quantity", "int", True, min=1, max=100),
    f("big", "bigint"),
    f("ratio", "float"),
    f("amount", "decimal(10,2)", False, min=0),
    f("currency", "string", False, allowed=["EUR", "USD"]),
    f("paid", "bool"),
    f("day", "date", False, min="2020-01-01"),
    f("at", "timestamp", True),
]


def test_the_document_of_a_feature_list() -> None:
    doc = document(FEATURES)
    assert doc["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert (doc["type"], doc["additionalProperties"]) == ("object", False)
    assert doc["required"] == ["order_id", "quantity", "at"]
    assert list(doc["properties"]) == [x["name"] for x in FEATURES]
    p = doc["properties"]
    assert p["order_id"] == {"type": "string", "x-atlas-dtype": "string", "pattern": "^(?:O-[0-9]+)$", "maxLength": 12}
    assert p["quantity"] == {"type": "integer", "x-atlas-dtype": "int", "minimum": 1, "maximum": 100}
    assert p["big"] == {"type": ["integer", "null"], "x-atlas-dtype": "bigint"}
    assert p["ratio"] == {"type": ["number", "null"], "x-atlas-dtype": "float"}
    assert p["amount"] == {"type": ["number", "null"], "x-atlas-dtype": "decimal(10,2)", "minimum": 0}
    assert p["currency"] == {"type": ["string", "null"], "x-atlas-dtype": "string", "enum": ["EUR", "USD", None]}
    assert p["paid"] == {"type": ["boolean", "null"], "x-atlas-dtype": "bool"}
    assert p["day"] == {"type": ["string", "null"], "format": "date", "x-atlas-dtype": "date",
                        "formatMinimum": "2020-01-01"}
    assert p["at"] == {"type": "string", "format": "date-time", "x-atlas-dtype": "timestamp"}
    Draft7Validator.check_schema(doc)


def test_the_text_is_the_same_bytes_every_time_and_keeps_field_order() -> None:
    text = document_text(FEATURES)
    assert text == document_text(json.loads(json.dumps(FEATURES)))
    assert " " not in text.replace("O-[0-9]+", "") and text.index('"order_id"') < text.index('"at"')
    assert text != document_text(list(reversed(FEATURES)))
    assert json.loads(text) == document(FEATURES)


GOOD = {"order_id": "O-17", "quantity": 3, "big": 2**40, "ratio": 0.5, "amount": 12.5, "currency": "EUR",
        "paid": True, "day": "2024-02-29", "at": "2024-02-29T10:00:00+00:00"}


@pytest.mark.parametrize("change, check", [
    ({"order_id": "X-17"}, "pattern:order_id"),
    ({"order_id": "O-1234567890123"}, "max_length:order_id"),
    ({"quantity": 0}, "min:quantity"),
    ({"quantity": 101}, "max:quantity"),
    ({"quantity": 2.5}, "type:quantity"),
    ({"amount": -1}, "min:amount"),
    ({"currency": "GBP"}, "allowed:currency"),
    ({"paid": "maybe"}, "type:paid"),
    ({"coupon": "X"}, "schema"),
    ({"at": None}, "completeness:at"),
])
def test_what_the_document_refuses_the_scorer_counts_as_a_failure(change: dict[str, Any], check: str) -> None:
    validator = Draft7Validator(document(FEATURES))
    scorer = DatasetScorer(tuple(Feature.from_dict(x) for x in FEATURES), QualityConfig())
    assert list(validator.iter_errors(GOOD)) == []
    assert scorer.score(GOOD, NOW).report.failures == ()
    record = {**GOOD, **change}
    assert list(validator.iter_errors(record)), change
    assert check in scorer.score(record, NOW).report.failures


def test_optional_fields_may_be_null_or_absent() -> None:
    validator = Draft7Validator(document(FEATURES))
    nulls = {**GOOD, "big": None, "currency": None, "day": None}
    assert list(validator.iter_errors(nulls)) == []
    required_only = {k: GOOD[k] for k in ("order_id", "quantity", "at")}
    assert list(validator.iter_errors(required_only)) == []
    assert [e.message for e in validator.iter_errors({"order_id": "O-1", "quantity": 1})] == [
        "'at' is a required property"]


def test_documents_read_back_as_features() -> None:
    back = parse_document(document_text(FEATURES))
    assert back == [{"name": x["name"], "dtype": x["dtype"], "required": x["required"]} for x in FEATURES]
    # A hand-written document without the dtype annotation: the widest dtype of each JSON type.
    plain = {"type": "object", "required": ["a"], "properties": {
        "a": {"type": "integer"}, "b": {"type": ["number", "null"]}, "c": {"type": "string", "format": "date"},
        "d": {"type": "string", "format": "date-time"}, "e": {"type": "boolean"}, "g": {"type": "string"}}}
    assert [(x["name"], x["dtype"], x["required"]) for x in parse_document(json.dumps(plain))] == [
        ("a", "bigint", True), ("b", "double", False), ("c", "date", False), ("d", "timestamp", False),
        ("e", "bool", False), ("g", "string", False)]


@pytest.mark.parametrize("text, fragment", [
    ("{nope", "not JSON"),
    ("[" * 100_000, "not JSON"),
    ("[1]", "object document"),
    ('{"type": "object", "properties": {"a": {"type": 7}}}', "not a valid JSON Schema"),
    ('{"type": "object", "properties": {}}', "non-empty"),
    ('{"type": "object", "properties": {"a": {"type": "array"}}}', "no Atlas dtype"),
    ('{"type": "object", "properties": {"a": {"type": ["string", "integer"]}}}', "one JSON type"),
    ('{"type": "object", "properties": {"a": {"type": "string", "x-atlas-dtype": "uuid"}}}', "unknown dtype"),
])
def test_documents_that_are_not_schemas_say_why(text: str, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        parse_document(text)


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("mode", MODES)
def test_compatibility_of_documents_is_the_registrys_decision(change: str, mode: str) -> None:
    candidate = parse_document(document_text(CHANGES[change]))
    previous = parse_document(document_text(V1))
    problems = check_compatibility(candidate, [previous], mode)
    assert (not problems) == (EXPECTED[change][MODES.index(mode)] == OK)
    assert problems == check_compatibility(CHANGES[change], [V1], mode)

"""Schema registry answers: Confluent-shaped versions, lookups, compatibility, config, diffs, modes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from atlas_stream.schema_json import document_text
from atlas_stream.schema_registry import CONFIG_KEY, register, schema_ids
from atlas_stream.web.schemas import (
    ApiError,
    SchemaIndex,
    compatibility_answer,
    config_answer,
    diff_versions,
    features_answer,
    lookup_answer,
    parse_candidate,
    parse_id,
    parse_mode,
    parse_version,
    read_only,
    schema_answer,
    version_answer,
)

FEATURES = [{"name": "id", "dtype": "string", "required": True}, {"name": "n", "dtype": "int"}]
V2 = [*FEATURES[:1], {"name": "n", "dtype": "bigint"}, {"name": "note", "dtype": "string"}]


def _state(mode: str | None = None) -> dict[str, Any]:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = register(None, "g.d", FEATURES, mode, now).state
    return register(first, "g.d", V2, None, now, ids=schema_ids([first])).state


def _candidate(features: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"schema": document_text(features), "schemaType": "JSON", **extra}).encode()


def _code(call: Any, *args: Any) -> tuple[int, int]:
    with pytest.raises(ApiError) as err:
        call(*args)
    assert set(err.value.body()) == {"error_code", "message"} and err.value.message
    return err.value.status, err.value.code


def test_version_answers_have_confluents_fields_and_integer_ids() -> None:
    state = _state()
    index = SchemaIndex.build([("g.d", state), (CONFIG_KEY, {"compatibility": "FULL"})])
    v = version_answer(state, "g.d", "latest", index)
    assert set(v) == {"subject", "version", "id", "schemaType", "schema", "metadata"}
    assert (v["subject"], v["version"], v["id"], v["schemaType"]) == ("g.d", 2, 2, "JSON")
    assert v["schema"] == document_text(V2)
    assert json.loads(v["metadata"]["properties"]["atlas.features"]) == state["versions"][1]["schema"]
    assert version_answer(state, "g.d", 1, index)["id"] == 1
    assert schema_answer(index, 2) == {"schemaType": "JSON", "schema": v["schema"], "metadata": v["metadata"]}
    assert schema_answer(index, 1, max_id=True)["maxId"] == 2
    assert index.uses == {1: [("g.d", 1)], 2: [("g.d", 2)]}
    feats = features_answer(state, "g.d", 1)
    assert (feats["id"], feats["features"]) == (1, state["versions"][0]["schema"])
    assert _code(version_answer, state, "g.d", 9, index) == (404, 40402)
    assert _code(version_answer, None, "nope", 1, index) == (404, 40401)
    assert _code(schema_answer, index, 3) == (404, 40403)
    assert _code(parse_id, "x") == (404, 40403)
    assert parse_version("latest") == parse_version("-1") == "latest" and parse_version("3") == 3
    for bad in ("0", "-2", "x", "9" * 12, str(2**31)):
        assert _code(parse_version, bad) == (422, 42202)


def test_lookup_finds_the_version_whose_document_is_sent() -> None:
    state = _state()
    index = SchemaIndex.build([("g.d", state)])
    spaced = json.dumps(json.loads(document_text(FEATURES)), indent=2, sort_keys=True)
    found = lookup_answer(state, "g.d", spaced, index)  # key order and whitespace do not matter
    assert (found["version"], found["id"]) == (1, 1)
    assert _code(lookup_answer, state, "g.d", document_text([{"name": "x", "dtype": "int"}]), index) == (404, 40403)
    assert _code(lookup_answer, None, "nope", spaced, index) == (404, 40401)


def test_compatibility_on_documents_against_one_version_or_all() -> None:
    state = _state()
    _, ok = parse_candidate(_candidate([*FEATURES[:1], {"name": "n", "dtype": "double"}]))
    assert compatibility_answer(state, "g.d", "latest", ok, "BACKWARD", False) == {"is_compatible": True}
    _, bad = parse_candidate(_candidate([*V2, {"name": "x", "dtype": "int", "required": True}]))
    verbose = compatibility_answer(state, "g.d", "latest", bad, "BACKWARD", True)
    assert verbose == {"is_compatible": False, "messages": [
        "field 'x': required by the new schema but missing from version 2 (BACKWARD against version 2)"]}
    # A subject without its own mode follows the global one.
    assert compatibility_answer(state, "g.d", "latest", bad, "FORWARD", False) == {"is_compatible": True}
    # int -> bigint -> int: against version 1 alone BACKWARD_TRANSITIVE passes, against every version not.
    own = {**state, "compatibility": "BACKWARD_TRANSITIVE"}
    _, back = parse_candidate(_candidate(FEATURES))
    assert compatibility_answer(own, "g.d", 1, back, "NONE", False)["is_compatible"] is True
    assert compatibility_answer(own, "g.d", None, back, "NONE", True)["messages"] == [
        "field 'n': type bigint cannot be read as int (BACKWARD_TRANSITIVE against version 2)"]
    assert _code(compatibility_answer, state, "g.d", 5, ok, "BACKWARD", False) == (404, 40402)
    assert _code(compatibility_answer, None, "nope", "latest", ok, "BACKWARD", False) == (404, 40401)


def test_config_answers_and_read_only() -> None:
    state = _state()
    assert config_answer(state, "g.d", "FULL", True) == {"compatibilityLevel": "FULL"}
    assert _code(config_answer, state, "g.d", "FULL", False) == (404, 40408)
    own = _state("NONE")
    assert config_answer(own, "g.d", "FULL", False) == {"compatibilityLevel": "NONE"}
    err = read_only("g.d")
    assert (err.status, err.code) == (422, 42205)
    assert "read-only mode" in err.message and "contract" in err.message


def test_diff_between_versions() -> None:
    state = _state()
    changes = diff_versions(state["versions"][0]["schema"], state["versions"][1]["schema"])
    assert [(c["field"], c["change"], c.get("attribute")) for c in changes] == [
        ("n", "changed", "dtype"), ("note", "added", None)]
    assert diff_versions([{"name": "a", "dtype": "int"}], []) == [
        {"field": "a", "change": "removed", "old": {"name": "a", "dtype": "int"}}]


@pytest.mark.parametrize("body, status, code, fragment", [
    (b"{nope", 400, 400, "not valid JSON"),
    (b"[" * 200_000, 400, 400, "not valid JSON"),
    (b"[]", 422, 422, "JSON object"),
    (b"{}", 422, 42201, "schema type AVRO"),
    (b'{"schemaType": "JSON"}', 422, 42201, '"schema"'),
    (b'{"schemaType": "JSON", "schema": "[oops"}', 422, 42201, "not JSON"),
    (json.dumps({"schemaType": "JSON", "schema": '{"type": 5}'}).encode(), 422, 42201, "not a valid JSON Schema"),
    (json.dumps({"schemaType": "JSON", "schema": '{"type": "array"}'}).encode(), 422, 42201, '"type": "object"'),
    (b'{"schemaType": "PROTOBUF", "schema": "syntax = 3;"}', 422, 42201, "PROTOBUF"),
    (b"x" * 300_000, 413, 413, "larger than"),
])
def test_malformed_candidates_say_why(body: bytes, status: int, code: int, fragment: str) -> None:
    with pytest.raises(ApiError) as err:
        parse_candidate(body)
    assert (err.value.status, err.value.code) == (status, code) and fragment in err.value.message


def test_mode_bodies() -> None:
    assert parse_mode(b'{"compatibility": "full"}') == "FULL"
    assert parse_mode(b'{"compatibilityLevel": "NONE"}') == "NONE"
    for bad in (b'{"compatibility": "SIDEWAYS"}', b'{"mode": "FULL"}', b'{"compatibility": 3}'):
        with pytest.raises(ApiError, match="Invalid compatibility level") as err:
            parse_mode(bad)
        assert err.value.code == 42203

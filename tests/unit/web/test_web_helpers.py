"""Pure helpers of the web endpoints: query parsing, partition merging, summaries, events, schemas."""

from __future__ import annotations

import json
from collections import namedtuple
from datetime import datetime, timezone
from typing import Any

import pytest
from multidict import MultiDict

from atlas_stream.schema_registry import CONFIG_KEY, register, schema_ids
from atlas_stream.schema_json import document_text
from atlas_stream.web.events import event_key, newest_first, page
from atlas_stream.web.merge import by_partition, merge_partitions, owned_partitions
from atlas_stream.web.params import BadRequest, Param, parse_query
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
from atlas_stream.web.summary import summarize, totals

SPEC = {"limit": Param("int", 50, 1, 500), "source": Param("str", None, high=10)}


def _q(**kv: str) -> MultiDict[str]:
    return MultiDict(kv)


def test_query_defaults_and_values() -> None:
    assert parse_query(_q(), "", SPEC) == {"limit": 50, "source": None}
    assert parse_query(_q(limit="7", source="a"), "limit=7&source=a", SPEC) == {"limit": 7, "source": "a"}


@pytest.mark.parametrize("query, fragment", [
    (MultiDict([("limit", "0")]), "from 1 to 500"),
    (MultiDict([("limit", "-1")]), "whole number"),
    (MultiDict([("limit", "99999999999999999999")]), "whole number"),
    (MultiDict([("limit", "1"), ("limit", "2")]), "given 2 times"),
    (MultiDict([("evil", "1")]), "unknown query parameter"),
    (MultiDict([("source", "x" * 11)]), "longer than 10"),
    (MultiDict([("source", "a\x00b")]), "control characters"),
])
def test_query_refusals(query: MultiDict[str], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_query(query, "x", SPEC)


def test_huge_query_string_is_refused_before_parsing() -> None:
    with pytest.raises(BadRequest, match="longer than 2048"):
        parse_query(_q(), "a" * 5000, SPEC)


TP = namedtuple("TP", "topic partition")


def test_partitions_are_claimed_once_and_missing_ones_reported() -> None:
    assert owned_partitions([TP("t", 0), TP("t", 2), TP("u", 1)], "t") == {0, 2}
    grouped = by_partition([("0|a|gold", 1), ("1|a|gold", 5), ("bad", 3)], {0, 2})
    assert grouped == {0: {"0|a|gold": 1}, 2: {}}
    claimed, missing = merge_partitions([{"partitions": {"0": "first"}}, {"partitions": {"0": "second", "1": "x"}},
                                         {"partitions": {"9": "out of range"}}], 3)
    assert claimed == {0: "first", 1: "x"} and missing == [2]


def test_summary_sums_partitions_and_fills_minutes() -> None:
    now = 1_000_000.0  # minute 999960
    tables = {
        "tier_counts": {"0|g.d|gold": 3, "1|g.d|gold": 2, "1|g.d|dlq": 1},
        "tier_counts_per_minute": {"0|g.d|gold|999960": 3, "1|g.d|gold|999900": 2, "1|g.d|dlq|999960": 1},
        "failure_counts": {"0|g.d|rule:x": 1, "1|g.d|rule:x": 2, "1|g.d|schema": 4},
        "last_seen": {"0|g.d": 999_990.0, "1|g.d": 999_995.5},
        "schema_drift": {"1|g.d|extra": 2},
    }
    (s, empty) = summarize(tables, [("g", "d"), ("g", "e")], now, 3)
    assert s["total"] == 6 and s["tiers"] == {"gold": 5, "silver": 0, "bronze": 0, "rejected": 0, "dlq": 1}
    assert [(w["start"], w["total"]) for w in s["minutes"]] == [(999840, 0), (999900, 2), (999960, 4)]
    assert s["failures"] == {"schema": 4, "rule:x": 3} and list(s["failures"]) == ["schema", "rule:x"]
    assert s["drift"] == {"extra": 2} and s["last_seen"].startswith("1970-01-12T13:46:35.5")
    assert empty["total"] == 0 and len(empty["minutes"]) == 3 and empty["last_seen"] is None
    assert totals([s, empty])["tiers"]["gold"] == 5


def _event(p: int, o: int, t: str, kind: str = "sink.commit", source: str = "g.d") -> dict[str, object]:
    return {"type": kind, "source": source, "time": t, "partition": p, "offset": o}


def test_events_are_filtered_ordered_and_paged_across_partitions() -> None:
    p0 = [_event(0, 0, "2026-01-01T00:00:01"), _event(0, 1, "2026-01-01T00:00:03", "schema.drift"),
          _event(0, 2, "2026-01-01T00:00:05")]
    p1 = [_event(1, 0, "2026-01-01T00:00:02"), _event(1, 1, "2026-01-01T00:00:04", source="other")]
    keep = 3
    a = dict(zip(("events", "matched"), newest_first(p0, ["sink.commit"], None, keep)))
    b = dict(zip(("events", "matched"), newest_first(p1, ["sink.commit"], None, keep)))
    events, total = page([a, b], 1, 2)
    assert total == 4 and [(e["partition"], e["offset"]) for e in events] == [(1, 1), (1, 0)]
    only, n = newest_first(p1, [], "other", 10)
    assert n == 1 and only[0]["offset"] == 1
    assert event_key(3, 42) == "3|000000000000042" and event_key(0, 9) < event_key(0, 10)


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

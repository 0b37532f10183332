"""Pure helpers of the web endpoints: query parsing, partition merging, summaries, events, schemas."""

from __future__ import annotations

import json
from collections import namedtuple

import pytest
from multidict import MultiDict

from atlas_stream.registry import register
from atlas_stream.web.events import event_key, newest_first, page
from atlas_stream.web.merge import by_partition, merge_partitions, owned_partitions
from atlas_stream.web.params import BadRequest, Param, parse_query
from atlas_stream.web.schemas import (
    ApiError,
    compatibility_answer,
    diff_versions,
    parse_candidate,
    parse_mode,
    parse_version,
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


def _state():  # type: ignore[no-untyped-def]
    from datetime import datetime, timezone
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    first = register(None, "g.d", FEATURES, None, now).state
    return register(first, "g.d", [*FEATURES[:1], {"name": "n", "dtype": "bigint"},
                                   {"name": "note", "dtype": "string"}], None, now).state


def test_schema_answers_have_confluents_shape() -> None:
    state = _state()
    v = version_answer(state, "g.d", "latest")
    assert (v["subject"], v["version"], v["schemaType"]) == ("g.d", 2, "ATLAS")
    assert json.loads(v["schema"])[1]["dtype"] == "bigint"
    with pytest.raises(ApiError) as err:
        version_answer(state, "g.d", 9)
    assert err.value.status == 404 and err.value.body()["error_code"] == 40402
    with pytest.raises(ApiError) as err:
        version_answer(None, "nope", 1)
    assert err.value.body()["error_code"] == 40401
    assert parse_version("latest") == "latest" and parse_version("3") == 3
    for bad in ("0", "-1", "x", "9" * 12):
        with pytest.raises(ApiError):
            parse_version(bad)


def test_compatibility_check_and_diff() -> None:
    state = _state()
    ok = compatibility_answer(state, "g.d", "latest", [*FEATURES[:1], {"name": "n", "dtype": "double"}])
    assert ok["is_compatible"] and ok["compatibility"] == "BACKWARD"
    bad = compatibility_answer(state, "g.d", "latest", [*FEATURES, {"name": "x", "dtype": "int", "required": True}])
    assert not bad["is_compatible"] and any("'x'" in m for m in bad["messages"])
    changes = diff_versions(state["versions"][0]["schema"], state["versions"][1]["schema"])
    assert [(c["field"], c["change"], c.get("attribute")) for c in changes] == [
        ("n", "changed", "dtype"), ("note", "added", None)]
    assert diff_versions([{"name": "a", "dtype": "int"}], []) == [
        {"field": "a", "change": "removed", "old": {"name": "a", "dtype": "int"}}]


@pytest.mark.parametrize("body, fragment", [
    (b"{nope", "not valid JSON"), (b"[]", "JSON object"), (b"{}", '"schema" field'),
    (b'{"schema": "[oops"}', "not JSON"), (b'{"schema": []}', "non-empty list"),
    (b'{"schema": [{"name": "a"}]}', '"dtype"'), (b"x" * 300_000, "larger than"),
])
def test_malformed_candidates_say_why(body: bytes, fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_candidate(body)


def test_mode_bodies() -> None:
    assert parse_mode(b'{"compatibility": "full"}') == "FULL"
    with pytest.raises(BadRequest, match="valid: BACKWARD"):
        parse_mode(b'{"compatibility": "SIDEWAYS"}')
    with pytest.raises(BadRequest, match="compatibility"):
        parse_mode(b'{"mode": "FULL"}')

"""Raw records in, scored tier messages out: a real broker, a real Faust worker, plain clients."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from ..harness import changelog_totals, consume, parse, produce
from ..itest_orders import CASES, DLQ, EVENTS, RAW, TOPICS, order_record

def _positions(messages: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, int, int]]:
    return [(m["source"]["topic"], m["source"]["partition"], m["source"]["offset"]) for _, m in messages]


def test_every_raw_record_lands_once_in_the_right_tier(kafka, metadata_dir: Path, start_worker) -> None:
    start_worker(kafka, metadata_dir, app_id="atlas-core")
    positions = []
    for _, value, _, _ in CASES:
        key = b"tombstone" if value is None else None  # Kafka needs a key or a value
        positions += asyncio.run(produce(kafka.bootstrap, RAW, [value], key=key))
    expected_positions = {(RAW, p, o) for p, o in positions}

    out_topics = [*TOPICS.values(), DLQ]
    got = parse(asyncio.run(consume(kafka.bootstrap, out_topics, lambda ms: len(ms) >= len(CASES), timeout=90)))

    # Nothing lost, nothing duplicated: every raw offset in exactly one output.
    seen = _positions(got)
    assert Counter(seen).most_common(1)[0][1] == 1, "a raw record was emitted twice"
    assert set(seen) == expected_positions

    by_pos = {pos: (topic, msg) for pos, (topic, msg) in zip(seen, got)}
    for (name, _, tier, expectation), (p, o) in zip(CASES, positions):
        topic, msg = by_pos[(RAW, p, o)]
        if tier == "dlq":
            assert topic == DLQ, name
            assert expectation in msg["error"], (name, msg["error"])
            assert msg["dataset"] == "orders"
            continue
        assert topic == TOPICS[tier], (name, topic, msg["quality"])
        assert msg["quality"]["tier"] == tier, name
        assert msg["quality"]["failures"] == expectation, name
        q = msg["quality"]
        assert q["score"] == pytest.approx(q["passed"] / q["counted"]), name

    gold = by_pos[(RAW, *positions[0])][1]
    assert gold["quality"]["score"] == 1.0
    assert gold["record"]["currency"] == "USD"  # trim + upper applied before scoring
    assert gold["schema"] == {"subject": "itest.orders", "version": 1}
    bronze = by_pos[(RAW, *positions[3])][1]
    assert bronze["quality"]["score"] == pytest.approx(14 / 19)
    assert bronze["invalid"] == {"quantity": "x"} and bronze["extra"] == {"coupon": "SPRING"}
    assert bronze["record"]["quantity"] is None

    # The unknown field was counted as drift and announced on the event log.
    drift = [e for e in _events(kafka.bootstrap, "schema.drift", "itest.orders") if e["type"] == "schema.drift"]
    assert [(e["field"], e["partition"], e["offset"]) for e in drift] == [("coupon", *positions[3])]


def test_a_bad_record_in_a_micro_batch_leaves_its_neighbours_alone(kafka, metadata_dir: Path, start_worker) -> None:
    """Every case above between two good records, all in one raw partition before the worker
    starts, so that they reach it in the same fetch and micro-batch: each bad one alone goes to
    the DLQ with its reason, each neighbour is scored gold."""
    from atlas_stream.kafka_admin import ensure_topics

    asyncio.run(ensure_topics([kafka.bootstrap], [RAW], partitions=2, replication=1))
    values: list[bytes | None] = []
    for i, (_, value, _, _) in enumerate(CASES):
        values += [orjson.dumps(order_record(order_id=f"O-{100 + 2 * i}")), value, orjson.dumps(order_record(order_id=f"O-{101 + 2 * i}"))]
    positions = asyncio.run(produce(kafka.bootstrap, RAW, values, key=b"one-partition"))
    start_worker(kafka, metadata_dir, app_id="atlas-micro-batch")

    got = parse(asyncio.run(consume(kafka.bootstrap, [*TOPICS.values(), DLQ], lambda ms: len(ms) >= len(values),
                                    timeout=90)))
    seen = _positions(got)
    assert sorted(seen) == sorted((RAW, p, o) for p, o in positions), "lost or duplicated records"
    by_pos = {pos: (topic, msg) for pos, (topic, msg) in zip(seen, got)}
    for i, (name, _, tier, expectation) in enumerate(CASES):
        before, bad, after = (by_pos[(RAW, *positions[3 * i + k])] for k in range(3))
        for topic, msg in (before, after):
            assert topic == TOPICS["gold"] and msg["quality"]["failures"] == [], (name, msg["quality"])
        topic, msg = bad
        if tier == "dlq":
            assert topic == DLQ and expectation in msg["error"], (name, topic, msg.get("error"))
        else:
            assert topic == TOPICS[tier] and msg["quality"]["failures"] == expectation, (name, topic)


def test_tier_messages_keyed_dlq_keeps_bytes_and_stats_add_up(kafka, metadata_dir: Path, start_worker) -> None:
    start_worker(kafka, metadata_dir, app_id="atlas-stats")
    good = [orjson.dumps(order_record(order_id=f"O-{i}")) for i in range(30)]
    bad = [b"\x00\x01 not json %d" % i for i in range(5)]
    asyncio.run(produce(kafka.bootstrap, RAW, good + bad))

    msgs = asyncio.run(consume(kafka.bootstrap, [TOPICS["gold"], DLQ], lambda ms: len(ms) >= 35, timeout=90))
    gold = [m for m in msgs if m.topic == TOPICS["gold"]]
    dead = [m for m in msgs if m.topic == DLQ]
    assert len(gold) == 30 and len(dead) == 5
    assert sorted(m.key for m in gold) == sorted(f"O-{i}".encode() for i in range(30))
    import base64
    kept = sorted(base64.b64decode(orjson.loads(m.value)["value_b64"]) for m in dead)
    assert kept == sorted(bad)

    # The stats tables' changelogs hold exactly these counts.
    def done(ms: list[Any]) -> bool:
        totals = changelog_totals(ms)
        return totals["itest.orders|gold"] == 30 and totals["itest.orders|dlq"] == 5

    changelog = asyncio.run(consume(kafka.bootstrap, ["atlas-stats-tier_counts-changelog"], done, timeout=60))
    totals = changelog_totals(changelog)
    assert totals == Counter({"itest.orders|gold": 30, "itest.orders|dlq": 5})


def _events(bootstrap: str, kind: str, subject: str, version: int | None = None,
            timeout: float = 60) -> list[dict[str, Any]]:
    """The event log, read until an event of ``kind`` for ``subject`` (and ``version``) is in it."""
    def found(ms: list[Any]) -> bool:
        return any(e["type"] == kind and e["source"] == subject
                   and (version is None or e.get("version") == version) for _, e in parse(ms))

    return [e for _, e in parse(asyncio.run(consume(bootstrap, [EVENTS], found, timeout=timeout)))]


def test_schema_registry_refuses_incompatible_change_and_keeps_previous(kafka, metadata_dir: Path, start_worker) -> None:
    contract_file = metadata_dir / "itest.json"
    worker = start_worker(kafka, metadata_dir, app_id="atlas-registry")
    events = _events(kafka.bootstrap, "schema.registered", "itest.orders", 1)
    assert [e["version"] for e in events if e["type"] == "schema.registered"] == [1]
    worker.stop()

    # A new REQUIRED field cannot be read from old data: BACKWARD refuses it.
    contract = json.loads(contract_file.read_text())
    contract["dataset_config"][0]["source"]["features"].append(
        {"name": "customer_id", "dtype": "string", "required": True})
    contract_file.write_text(json.dumps(contract))
    worker = start_worker(kafka, metadata_dir, app_id="atlas-registry")
    events = _events(kafka.bootstrap, "schema.refused", "itest.orders")
    refused = [e for e in events if e["type"] == "schema.refused"]
    assert refused and refused[0]["version_in_force"] == 1
    assert any("customer_id" in p for p in refused[0]["problems"])

    # Records are still scored against version 1: customer_id is an unknown field there.
    asyncio.run(produce(kafka.bootstrap, RAW, [orjson.dumps(order_record(order_id="O-77", customer_id="C-1"))]))
    msgs = parse(asyncio.run(consume(kafka.bootstrap, [TOPICS["silver"]], lambda ms: len(ms) >= 1)))
    assert msgs[0][1]["schema"]["version"] == 1
    assert msgs[0][1]["quality"]["failures"] == ["schema"]
    worker.stop()

    # An optional field is a compatible change: version 2 is registered and used.
    contract["dataset_config"][0]["source"]["features"][-1]["required"] = False
    contract_file.write_text(json.dumps(contract))
    start_worker(kafka, metadata_dir, app_id="atlas-registry")
    events = _events(kafka.bootstrap, "schema.registered", "itest.orders", 2)
    assert [e["version"] for e in events if e["type"] == "schema.registered"] == [1, 2]
    asyncio.run(produce(kafka.bootstrap, RAW, [orjson.dumps(order_record(order_id="O-78", customer_id="C-2"))]))
    msgs = parse(asyncio.run(consume(kafka.bootstrap, [TOPICS["gold"]], lambda ms: len(ms) >= 1)))
    assert msgs[0][1]["schema"]["version"] == 2
    assert msgs[0][1]["record"]["customer_id"] == "C-2"

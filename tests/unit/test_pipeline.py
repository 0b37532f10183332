"""One raw message -> one outcome: tier topic with the quality report, or the DLQ with the reason."""

from __future__ import annotations

import base64
from decimal import Decimal
import hashlib
from pathlib import Path

import orjson
import pytest

from atlas_stream.messages import decode_raw, record_key
from atlas_stream.errors import RecordError
from atlas_stream.pipeline import load_catalog

CONTRACTS = Path(__file__).resolve().parents[1] / "integration" / "contracts"
SOURCE = {"topic": "atlas.itest.orders.raw", "partition": 1, "offset": 42, "timestamp": 1_790_000_000.0}
FRESH = "2026-09-21T14:00:00+00:00"  # 13 minutes before SOURCE's timestamp


@pytest.fixture(scope="module")
def orders():  # type: ignore[no-untyped-def]
    return load_catalog(CONTRACTS).by_raw_topic["atlas.itest.orders.raw"]


@pytest.mark.parametrize(("value", "error"), [
    (b"nope", "not valid JSON"),
    (b"[1, 2]", "JSON array"),
    (b'"text"', "JSON str"),
    (b"null", "JSON NoneType"),
    (None, "tombstone"),
    (b"[" * 2000 + b"]" * 2000, "nested"),
    (b'{"a": NaN}', "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
])
def test_values_that_are_not_json_objects_are_refused_with_the_reason(value: bytes | None, error: str) -> None:
    with pytest.raises(RecordError) as err:
        decode_raw(value)
    assert error in str(err.value)


def test_big_integers_and_escaped_surrogates_still_decode() -> None:
    assert decode_raw(b'{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}
    assert decode_raw(b'{"s": "\\ud800"}') == {"s": "\ud800"}
    assert decode_raw(b'{"d": 0.12345678901234567890}') == {"d": Decimal("0.12345678901234567890")}


@pytest.mark.parametrize(("record", "fields", "key"), [
    ({"id": "O-1"}, ("id",), b"O-1"),
    ({"id": 7}, ("id",), b"7"),
    ({"a": "x", "b": 2}, ("a", "b"), b'["x",2]'),
    ({"a": "x", "b": None}, ("a", "b"), None),
    ({"a": "x"}, (), None),
    ({"id": 12345678901234567890123}, ("id",), b"12345678901234567890123"),
    ({"a": 2**70, "b": "y"}, ("a", "b"), b"[1180591620717411303424,\"y\"]"),
])
def test_record_keys(record: dict[str, object], fields: tuple[str, ...], key: bytes | None) -> None:
    assert record_key(record, fields) == key


def test_a_scored_record_goes_to_its_tier_topic_keyed_with_its_report(orders) -> None:  # type: ignore[no-untyped-def]
    raw = orjson.dumps({"order_id": "O-1", "amount": 3, "quantity": 1, "currency": "eur", "note": "hi",
                        "created_at": FRESH, "coupon": "X"})
    out = orders.process(raw, b"ignored", SOURCE, {"version": 3, "schema": orders.contract_schema}, 1_000_000)
    assert out.topic == "atlas.itest.orders.silver" and out.key == b"O-1"
    assert out.failures == ("schema",) and out.drift == ("coupon",)
    msg = orjson.loads(out.value)
    assert msg["record"]["currency"] == "EUR" and msg["extra"] == {"coupon": "X"}
    assert msg["schema"] == {"subject": "itest.orders", "version": 3}
    assert msg["source"] == SOURCE and msg["quality"]["score"] == pytest.approx(20 / 21)


def test_an_oversized_result_is_dead_lettered_with_a_digest_of_the_whole_value(orders) -> None:  # type: ignore[no-untyped-def]
    raw = orjson.dumps({"order_id": "O-1", "amount": 3, "note": "x" * 200_000})
    out = orders.process(raw, None, SOURCE, None, 50_000)
    assert out.topic == "atlas.itest.dlq" and out.tier is None
    dead = orjson.loads(out.value)
    assert "exceeds ATLAS_MAX_MESSAGE_BYTES=50000" in dead["error"] and dead["truncated"] is True
    assert dead["value_bytes"] == len(raw) and dead["value_sha256"] == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(base64.b64decode(dead["value_b64"])) and len(out.value) <= 50_000


def test_an_older_registered_version_is_what_records_are_scored_against(orders) -> None:  # type: ignore[no-untyped-def]
    v1 = [f for f in orders.contract_schema if f["name"] != "note"]
    raw = orjson.dumps({"order_id": "O-1", "amount": 3, "quantity": 1, "currency": "USD", "note": "hi",
                        "created_at": FRESH})
    msg = orjson.loads(orders.process(raw, None, SOURCE, {"version": 1, "schema": v1}, 1_000_000).value)
    assert "note" not in msg["record"] and msg["quality"]["failures"] == ["schema"]


def test_a_micro_batch_gives_each_message_the_outcome_it_gets_alone(orders) -> None:  # type: ignore[no-untyped-def]
    good = orjson.dumps({"order_id": "O-1", "amount": 10.5, "quantity": 1, "currency": "USD", "note": "ok",
                         "created_at": FRESH})
    bad = [b"nope", b"[1, 2]", None, b"[" * 5000 + b"]" * 5000, b'{"d": 1' + b"0" * 40 + b"}",
           orjson.dumps({"order_id": "O-2", "note": "x" * 1_000_000}), b'{"order_id": {"a": [[[{"b": 1}]]]}}']
    values = [v for b in bad for v in (good, b)] + [good]
    sources = [{**SOURCE, "offset": i} for i in range(len(values))]
    batch = orders.process_many(zip(values, [None] * len(values), sources), None, 1_000_000)

    def comparable(outcome):  # type: ignore[no-untyped-def]
        value = orjson.loads(outcome.value)
        value.pop("failed_at", None)  # a dead letter's own time
        return outcome.topic, outcome.key, value, outcome.tier, outcome.failures, outcome.error

    assert [comparable(o) for o in batch] == [
        comparable(orders.process(v, None, s, None, 1_000_000)) for v, s in zip(values, sources)]
    assert [o.tier for o in batch[::2]] == ["gold"] * (len(bad) + 1)
    assert [o.topic for o in batch[1:8:2]] == ["atlas.itest.dlq"] * 4  # not JSON, array, tombstone, deep

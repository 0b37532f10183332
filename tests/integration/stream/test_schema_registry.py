"""The schema registry as Confluent's own Python client sees it: confluent-kafka's
SchemaRegistryClient, JSONSerializer and JSONDeserializer against running workers on real Kafka."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    SchemaRegistryClient,
    SchemaRegistryError,
)
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import (
    MessageField,
    SerializationContext,
    SerializationError,
)

from ..web_client import base_url, call

TOKEN = "s3cret-admin-token"
ORDERS, RETURNS = "itest.orders", "itest.returns"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
CTX = SerializationContext("atlas.itest.orders.raw", MessageField.VALUE)
GOOD = {"order_id": "O-1", "amount": 10.5, "quantity": 2, "currency": "USD", "note": "ok",
        "created_at": "2026-01-01T00:00:00+00:00"}


def _add_returns(metadata_dir: Path) -> None:
    """A second dataset, so that there are two subjects with different schemas."""
    path = metadata_dir / "itest.json"
    contract = json.loads(path.read_text())
    returns = json.loads(json.dumps(contract["dataset_config"][0]))
    returns["source"]["name"] = "returns"
    returns["source"]["features"] = [
        {"name": "order_id", "dtype": "string", "required": True},
        {"name": "reason", "dtype": "string", "allowed": ["damaged", "late"]},
        {"name": "refund", "dtype": "decimal(8,2)", "min": 0},
    ]
    returns["quality"] = {}
    returns["transformations"] = []
    returns["destination"] = {"path": "itest/returns"}
    contract["dataset_config"].append(returns)
    path.write_text(json.dumps(contract))


def _client(url: str, **conf: Any) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": f"{url}/schemas", "max.retries": 0, **conf})


def _admin(url: str) -> SchemaRegistryClient:
    # Confluent's client sends a static bearer token this way (the logical cluster is required).
    return _client(url, **{"bearer.auth.credentials.source": "STATIC_TOKEN", "bearer.auth.token": TOKEN,
                           "bearer.auth.logical.cluster": "atlas"})


def _eventually(check: Callable[[], Any], timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except (SchemaRegistryError, AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _both_registered(client: SchemaRegistryClient) -> None:
    assert client.get_subjects() == [ORDERS, RETURNS]


def _content_type(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.headers["Content-Type"])
    except urllib.error.HTTPError as exc:
        return str(exc.headers["Content-Type"])


def _refused(call_: Callable[[], Any], status: int, code: int) -> str:
    with pytest.raises(SchemaRegistryError) as err:
        call_()
    assert (err.value.http_status_code, err.value.error_code) == (status, code), err.value
    return str(err.value.error_message)


def _serializer(client: SchemaRegistryClient, subject: str = ORDERS, schema: str | None = None,
                **conf: Any) -> JSONSerializer:
    base = {"auto.register.schemas": False, "subject.name.strategy": lambda ctx, name: subject}
    return JSONSerializer(schema, client, conf={**base, **conf})


def test_confluent_client_reads_checks_and_validates_records(kafka, metadata_dir: Path, start_worker) -> None:
    _add_returns(metadata_dir)
    url = base_url(start_worker(kafka, metadata_dir, app_id="atlas-sr", ATLAS_ADMIN_TOKEN=TOKEN))
    client = _client(url)
    _eventually(lambda: _both_registered(client))

    # Subjects, with the query parameters the client sends.
    assert client.get_subjects(subject_prefix="itest.r") == [RETURNS]
    assert client.get_subjects(deleted=True, offset=1, limit=1) == [RETURNS]
    assert client.get_subjects(deleted_only=True) == []
    assert client.get_versions(ORDERS) == [1]
    assert client.get_schema_types() == ["JSON"]

    # A version: an integer id and a JSON Schema document made from the contract's features.
    latest = client.get_latest_version(ORDERS)
    assert (latest.subject, latest.version, latest.schema.schema_type) == (ORDERS, 1, "JSON")
    assert isinstance(latest.schema_id, int) and latest.schema_id >= 1
    doc = json.loads(latest.schema.schema_str)
    assert list(doc["properties"]) == ["order_id", "amount", "quantity", "currency", "note", "created_at"]
    assert doc["required"] == ["order_id", "amount"] and doc["additionalProperties"] is False
    assert doc["properties"]["amount"] == {"type": "number", "x-atlas-dtype": "double", "minimum": 0, "maximum": 10000}
    features = json.loads(latest.schema.metadata.properties.properties["atlas.features"])
    assert [f["name"] for f in features] == list(doc["properties"])
    assert client.get_version(ORDERS, 1).schema_id == latest.schema_id
    returns_id = client.get_latest_version(RETURNS).schema_id
    assert returns_id != latest.schema_id

    # By id, as a deserializer asks; the raw document is the same bytes.
    fresh = _client(url)
    assert fresh.get_schema(latest.schema_id).schema_str == latest.schema.schema_str
    status, raw = call(f"{url}/schemas/schemas/ids/{latest.schema_id}/schema")
    assert status == 200 and json.dumps(raw, separators=(",", ":")) == latest.schema.schema_str
    for path in (f"/subjects/{ORDERS}/versions/latest/schema", f"/subjects/{ORDERS}/versions/1/schema"):
        assert call(f"{url}/schemas{path}") == (200, doc)
    assert call(f"{url}/schemas/subjects/{ORDERS}/versions/1/referencedby") == (200, [])
    assert [(v.subject, v.version) for v in fresh.get_schema_versions(latest.schema_id)] == [(ORDERS, 1)]
    assert fresh.get_subjects_by_schema_id(returns_id) == [RETURNS]

    # Lookup: is this schema registered under the subject?
    found = fresh.lookup_schema(ORDERS, Schema(json.dumps(doc, indent=2), "JSON"))
    assert (found.version, found.schema_id) == (1, latest.schema_id)
    other = Schema(client.get_latest_version(RETURNS).schema.schema_str, "JSON")
    _refused(lambda: fresh.lookup_schema(ORDERS, other), 404, 40403)

    # Compatibility checks of candidate documents, under the global mode (BACKWARD).
    def with_note2(required: bool) -> Schema:
        d = json.loads(latest.schema.schema_str)
        d["properties"]["note2"] = {"type": "string"}
        d["required"] += ["note2"] if required else []
        return Schema(json.dumps(d), "JSON")

    assert client.get_compatibility() == "BACKWARD"
    assert client.test_compatibility(ORDERS, with_note2(False)) is True
    assert client.test_compatibility(ORDERS, with_note2(True)) is False
    assert client.test_compatibility_all_versions(ORDERS, with_note2(True)) is False
    status, body = call(f"{url}/schemas/compatibility/subjects/{ORDERS}/versions/latest?verbose=true", "POST",
                        json.dumps(with_note2(True).to_dict()).encode())
    assert status == 200 and body["is_compatible"] is False and "note2" in body["messages"][0]
    # No subject-level mode: Confluent's 40408, or the global one with defaultToGlobal.
    _refused(lambda: client.get_compatibility(ORDERS), 404, 40408)
    assert call(f"{url}/schemas/config/{ORDERS}?defaultToGlobal=true")[1] == {"compatibilityLevel": "BACKWARD"}

    # Changing modes needs the admin token; the global mode applies to subjects without their own.
    assert "token" in _refused(lambda: client.set_compatibility(level="FORWARD"), 401, 40101)
    admin = _admin(url)
    assert admin.set_compatibility(level="FORWARD")["compatibility"] == "FORWARD"
    assert client.get_compatibility() == "FORWARD"
    assert client.test_compatibility(ORDERS, with_note2(True)) is True
    assert admin.set_compatibility(ORDERS, "backward")["compatibility"] == "BACKWARD"
    assert client.get_compatibility(ORDERS) == "BACKWARD"
    assert client.test_compatibility(ORDERS, with_note2(True)) is False
    _refused(lambda: admin.set_compatibility(ORDERS, "SIDEWAYS"), 422, 42203)

    # Registration is contract-driven: Confluent's read-only answer, saying what to do instead.
    message = _refused(lambda: client.register_schema(ORDERS, with_note2(False)), 422, 42205)
    assert "read-only mode" in message and "contract" in message
    assert client.get_versions(ORDERS) == [1]
    assert call(f"{url}/schemas/mode")[1] == call(f"{url}/schemas/mode/{ORDERS}")[1] == {"mode": "READONLY"}

    # A producer validates records before sending: the latest version, or a lookup of its own copy.
    ser = _serializer(client, **{"use.latest.version": True})
    framed = ser(GOOD, CTX)
    assert framed[:1] == b"\x00" and int.from_bytes(framed[1:5], "big") == latest.schema_id
    assert json.loads(framed[5:]) == GOOD
    for bad in ({**GOOD, "amount": -1}, {**GOOD, "coupon": "X"}, {**GOOD, "currency": "JPY"},
                {k: v for k, v in GOOD.items() if k != "order_id"}, {**GOOD, "quantity": "two"}):
        with pytest.raises(SerializationError):
            ser(bad, CTX)
    by_lookup = _serializer(_client(url), schema=latest.schema.schema_str)
    assert by_lookup(GOOD, CTX) == framed

    # A consumer reads the id from the frame and fetches the schema from the registry.
    assert JSONDeserializer(None, schema_registry_client=_client(url))(framed, CTX) == GOOD
    returns = _serializer(client, RETURNS, **{"use.latest.version": True})(
        {"order_id": "O-1", "reason": "late", "refund": 3.5}, CTX)
    assert JSONDeserializer(None, schema_registry_client=_client(url))(returns, CTX)["reason"] == "late"


def test_bad_requests_get_confluent_errors_never_a_crash(kafka, metadata_dir: Path, start_worker) -> None:
    worker = start_worker(kafka, metadata_dir, app_id="atlas-sr-bad", ATLAS_ADMIN_TOKEN=TOKEN)
    url = f"{base_url(worker)}/schemas"
    client = _client(base_url(worker))
    _eventually(lambda: client.get_latest_version(ORDERS))
    good = client.get_latest_version(ORDERS).schema.schema_str
    candidate = json.dumps({"schema": good, "schemaType": "JSON"}).encode()
    compat = f"/compatibility/subjects/{ORDERS}/versions/latest"
    admin = {"Authorization": f"Bearer {TOKEN}"}

    cases: list[tuple[str, str, bytes | None, dict[str, str], int, int]] = [
        ("/subjects/nope/versions", "GET", None, {}, 404, 40401),
        ("/subjects/" + "x" * 300 + "/versions/1", "GET", None, {}, 404, 40401),
        (f"/subjects/{ORDERS}/versions/7", "GET", None, {}, 404, 40402),
        (f"/subjects/{ORDERS}/versions/abc", "GET", None, {}, 422, 42202),
        (f"/subjects/{ORDERS}/versions/99999999999", "GET", None, {}, 422, 42202),
        ("/schemas/ids/424242", "GET", None, {}, 404, 40403),
        ("/schemas/ids/-1", "GET", None, {}, 404, 40403),
        ("/schemas/ids/424242/versions", "GET", None, {}, 404, 40403),
        ("/config/nope", "GET", None, {}, 404, 40401),
        ("/subjects?limit=abc", "GET", None, {}, 400, 400),
        (compat, "POST", b"{nope", {}, 400, 400),
        (compat, "POST", b"[" * 100_000, {}, 400, 400),
        (compat, "POST", b"x" * 300_000, {}, 413, 413),
        (compat, "POST", b'{"schema": "not json at all", "schemaType": "JSON"}', {}, 422, 42201),
        (compat, "POST", json.dumps({"schema": good}).encode(), {}, 422, 42201),  # Avro by default
        (compat, "POST", json.dumps({"schema": '{"type": "object", "properties": {"a": {}}}',
                                     "schemaType": "JSON"}).encode(), {}, 422, 42201),
        (f"/subjects/{ORDERS}", "POST", b'{"schema": 5, "schemaType": "JSON"}', {}, 422, 42201),
        (f"/subjects/{ORDERS}/versions", "POST", candidate, {}, 422, 42205),
        (f"/subjects/{ORDERS}", "DELETE", None, {}, 422, 42205),
        (f"/config/{ORDERS}", "PUT", b'{"compatibility": "NONE"}', {}, 401, 40101),
        (f"/config/{ORDERS}", "PUT", b'{"compatibility": "NONE"}', {"Authorization": "Bearer wrong"}, 401, 40101),
        ("/config", "PUT", b'{"compatibility": "NONE"}', {"Authorization": "Basic Zm9vOmJhcg=="}, 401, 40101),
        ("/config", "PUT", b'{"compatibility": "SIDEWAYS"}', admin, 422, 42203),
        ("/config", "PUT", b"{nope", admin, 400, 400),
        ("/no/such/thing", "GET", None, {}, 404, 404),
        ("/config", "DELETE", None, {}, 405, 405),
    ]
    # Setting the global mode to the default it already has is applied (and stored) too.
    assert call(url + "/config", "PUT", b'{"compatibility": "BACKWARD"}', admin) == (
        200, {"compatibility": "BACKWARD", "applied": True})
    for path, method, body, headers, status, code in cases:
        got, answer = call(url + path, method, body, headers)
        assert (got, answer.get("error_code") if isinstance(answer, dict) else answer) == (status, code), \
            (method, path, answer)
        assert set(answer) == {"error_code", "message"} and answer["message"], (path, answer)
        assert "Traceback" not in answer["message"]
    # A large but valid candidate (several network chunks) is read whole.
    many = {"type": "object", "properties": {f"f{i}": {"type": "string", "pattern": "x" * 60} for i in range(1500)}}
    status, body = call(url + compat, "POST", json.dumps({"schema": json.dumps(many), "schemaType": "JSON"}).encode())
    assert status == 200 and body == {"is_compatible": True}, body
    # Every answer, errors included, has Confluent's content type.
    for path in ("/subjects", "/subjects/nope/versions", "/config", "/no/such/thing"):
        assert _content_type(url + path).startswith(CONTENT_TYPE), path
    assert "Traceback" not in worker.log()


def test_two_workers_answer_the_same_ids_and_keep_them_across_restarts(kafka, metadata_dir: Path,
                                                                       start_worker) -> None:
    _add_returns(metadata_dir)
    a = start_worker(kafka, metadata_dir, app_id="atlas-sr-pair")
    b = start_worker(kafka, metadata_dir, app_id="atlas-sr-pair")
    clients = [_client(base_url(w)) for w in (a, b)]
    for c in clients:
        _eventually(lambda c=c: _both_registered(c))

    def picture(client: SchemaRegistryClient) -> dict[str, tuple[int, str]]:
        return {s: (v.schema_id, v.schema.schema_str) for s in (ORDERS, RETURNS)
                for v in (client.get_latest_version(s),)}

    first = picture(clients[0])
    assert picture(clients[1]) == first
    assert sorted(i for i, _ in first.values()) == [1, 2]
    # A record framed through one worker's registry is read through the other's.
    framed = _serializer(clients[0], **{"use.latest.version": True})(GOOD, CTX)
    assert JSONDeserializer(None, schema_registry_client=clients[1])(framed, CTX) == GOOD

    a.stop()
    b.stop()
    again = start_worker(kafka, metadata_dir, app_id="atlas-sr-pair")
    client = _client(base_url(again))
    _eventually(lambda: _both_registered(client))
    assert picture(client) == first
    assert JSONDeserializer(None, schema_registry_client=client)(framed, CTX) == GOOD

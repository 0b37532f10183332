"""The web endpoints of a real worker on the development broker, with known records."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import orjson

from ..harness import produce
from ..itest_orders import CASES, RAW
from ..web_client import base_url, call, get, wait_for

TOKEN = "s3cret-admin-token"
STATUS_TOPIC = "atlas.sources.status"

# Where the 14 records of itest_orders.CASES go (stream/test_core_stream.py checks each one).
EXPECTED_TIERS = {"gold": 2, "silver": 3, "bronze": 1, "rejected": 2, "dlq": 6}


def _stats_done(body: dict[str, Any]) -> bool:
    return body["complete"] and body["totals"]["total"] == len(CASES)


def test_endpoints_answer_with_exact_numbers(kafka, metadata_dir: Path, start_worker) -> None:
    worker = start_worker(kafka, metadata_dir, app_id="atlas-web", ATLAS_ADMIN_TOKEN=TOKEN)
    url = base_url(worker)
    for _, value, _, _ in CASES:
        asyncio.run(produce(kafka.bootstrap, RAW, [value], key=b"tombstone" if value is None else None))
    status_doc = {"source": "file:itest.orders", "kind": "file", "state": "idle", "last_poll": "2026-01-01T00:00:00+00:00",
                  "rows": 42, "lag": 3, "last_error": None, "time": "2026-01-01T00:00:01+00:00"}
    asyncio.run(produce(kafka.bootstrap, STATUS_TOPIC, [orjson.dumps(status_doc)], key=b"file:itest.orders"))

    # /stats/: totals, tiers, failures, recent minutes, drift
    stats = wait_for(f"{url}/stats/", _stats_done)
    assert stats["totals"]["tiers"] == EXPECTED_TIERS
    assert stats["missing_partitions"] == [] and stats["partitions"] == 2
    (ds,) = stats["datasets"]
    assert (ds["group"], ds["dataset"], ds["total"]) == ("itest", "orders", len(CASES))
    assert ds["tiers"] == EXPECTED_TIERS
    assert ds["failures"] == {"max_length:note": 2, "type:quantity": 1, "allowed:currency": 1, "schema": 1,
                              "freshness": 1, "rule:big_orders_have_quantity": 1, "completeness:order_id": 1,
                              "type:amount": 1, "type:note": 1}
    assert ds["drift"] == {"coupon": 1}
    assert len(ds["minutes"]) == 15 and sum(w["total"] for w in ds["minutes"]) == len(CASES)
    one = get(f"{url}/stats/itest/orders/?minutes=3")
    assert one["tiers"] == EXPECTED_TIERS and len(one["minutes"]) == 3 and one["complete"]

    # /events/: registration and drift, filters and pages
    events = wait_for(f"{url}/events/?type=schema.drift", lambda b: b["total"] == 1)["events"]
    assert events[0]["source"] == "itest.orders" and events[0]["field"] == "coupon"
    reg = get(f"{url}/events/?type=schema.registered&source=itest.orders")
    assert [e["version"] for e in reg["events"]] == [1]
    every = get(f"{url}/events/?limit=500")
    assert every["total"] == len(every["events"]) >= 2
    times = [e["time"] for e in every["events"]]
    assert times == sorted(times, reverse=True), "newest first"
    page2 = get(f"{url}/events/?limit=1&offset=1")
    assert page2["events"] == every["events"][1:2] and page2["total"] == every["total"]
    assert get(f"{url}/events/?source=nobody")["total"] == 0

    # /sources/
    sources = wait_for(f"{url}/sources/", lambda b: len(b["sources"]) == 1)["sources"]
    assert {k: sources[0][k] for k in status_doc} == status_doc

    # /schemas/ (Confluent's API: tests/integration/stream/test_schema_registry.py drives it with Confluent's client)
    assert get(f"{url}/schemas/subjects") == ["itest.orders"]
    assert get(f"{url}/schemas/subjects/itest.orders/versions") == [1]
    v1 = get(f"{url}/schemas/subjects/itest.orders/versions/1")
    assert v1 == get(f"{url}/schemas/subjects/itest.orders/versions/latest")
    assert (v1["subject"], v1["version"], v1["id"], v1["schemaType"]) == ("itest.orders", 1, 1, "JSON")
    assert list(json.loads(v1["schema"])["properties"])[:2] == ["order_id", "amount"]
    # What the dashboard reads: the overview, the feature list and the diff.
    overview = get(f"{url}/schemas/")
    assert overview["compatibility"] == "BACKWARD"
    assert [(s["subject"], s["compatibility"], s["versions"]) for s in overview["subjects"]] == [
        ("itest.orders", "BACKWARD", [1])]
    feats = get(f"{url}/schemas/subjects/itest.orders/versions/1/features")
    assert feats["id"] == 1 and len(feats["fingerprint"]) == 64 and feats["registered_at"]
    assert [f["name"] for f in feats["features"]][:2] == ["order_id", "amount"]
    assert get(f"{url}/schemas/subjects/itest.orders/diff?from=1&to=1")["changes"] == []

    # Writes need the token; a good one changes the mode through the registry agent.
    cfg = f"{url}/schemas/config/itest.orders"
    full = json.dumps({"compatibility": "FULL"}).encode()
    assert call(cfg, "PUT", full)[0] == 401
    assert call(cfg, "PUT", full, {"Authorization": "Bearer wrong"})[0] == 401
    status, body = call(cfg, "PUT", full, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and body == {"compatibility": "FULL", "applied": True}
    assert get(cfg) == {"compatibilityLevel": "FULL"}
    assert get(f"{url}/schemas/")["subjects"][0]["compatibility"] == "FULL"
    wait_for(f"{url}/events/?type=schema.config", lambda b: b["total"] == 1)

    # /metrics
    status, text = call(f"{url}/metrics")
    assert status == 200
    for tier, n in EXPECTED_TIERS.items():
        assert f'atlas_records_total{{dataset="itest.orders",tier="{tier}"}} {float(n)}' in text
    assert 'atlas_check_failures_total{check="max_length:note",dataset="itest.orders"} 2.0' in text
    assert 'atlas_source_rows{kind="file",source="file:itest.orders"} 42.0' in text
    assert "atlas_consumer_lag{" in text and "atlas_sink_commit_latency_seconds" in text


def test_bad_requests_get_clean_json_errors(kafka, metadata_dir: Path, start_worker) -> None:
    worker = start_worker(kafka, metadata_dir, app_id="atlas-web-bad")
    url = base_url(worker)
    wait_for(f"{url}/schemas/subjects", lambda b: b == ["itest.orders"])

    def error(path: str, status: int, method: str = "GET", body: bytes | None = None,
              headers: dict[str, str] | None = None) -> str:
        got, answer = call(url + path, method, body, headers)
        assert got == status, (path, got, answer)
        assert isinstance(answer, dict) and answer.get("error"), (path, answer)
        return str(answer["error"])

    error("/stats/itest/nope/", 404)
    error("/stats/nope/orders/", 404)
    error("/no/such/page", 404)
    assert "limit" in error("/events/?limit=100000", 400)
    assert "unknown query parameter" in error("/stats/?evil=1", 400)
    assert "given 2 times" in error("/events/?type=a&type=b", 400)
    assert "whole number" in error("/events/?offset=1e9", 400)
    error("/events/?source=" + "x" * 3000, 400)
    status, _ = call(f"{url}/events/?source=" + "x" * 20_000)
    assert status in (400, 414, 431)  # refused by the HTTP parser, before any view
    # Unknown methods are JSON too.
    error("/stats/", 405, "DELETE")

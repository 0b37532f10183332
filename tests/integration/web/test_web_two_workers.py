"""Two workers (Tansu): each answers with the whole picture, gathering the other's partitions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson

from ..harness import produce
from ..itest_orders import RAW, order_record
from ..web_client import base_url, get, wait_for

STATUS_TOPIC = "atlas.sources.status"


def _status(source: str, rows: int) -> bytes:
    return orjson.dumps({"source": source, "kind": "file", "state": "running", "last_poll": None, "rows": rows,
                         "lag": 0, "last_error": None, "time": "2026-01-01T00:00:00+00:00"})


def test_every_worker_answers_for_all_partitions(kafka, metadata_dir: Path, start_worker) -> None:
    a = start_worker(kafka, metadata_dir, app_id="atlas-web-pair")
    b = start_worker(kafka, metadata_dir, app_id="atlas-web-pair")
    time.sleep(8)  # let the group settle (Tansu joins take about half the 6 s session timeout)
    urls = [base_url(a), base_url(b)]

    values = [orjson.dumps(order_record(order_id=f"O-{i}", note="x" * (i % 15))) for i in range(200)]
    values += [b"not json"] * 10
    asyncio.run(produce(kafka.bootstrap, RAW, values))
    sources = [f"file:itest.s{i}" for i in range(8)]
    for i, source in enumerate(sources):
        asyncio.run(produce(kafka.bootstrap, STATUS_TOPIC, [_status(source, i)], key=source.encode()))

    gold = sum(1 <= i % 15 <= 10 for i in range(200))
    expected = {"gold": gold, "silver": 200 - gold, "bronze": 0, "rejected": 0, "dlq": 10}

    def exact(body: dict[str, Any]) -> bool:
        return body["complete"] and body["totals"]["tiers"] == expected

    answers = [wait_for(f"{u}/stats/", exact, timeout=120) for u in urls]
    for body in answers:
        assert len(body["workers"]) == 2 and body["unreachable"] == []
        (ds,) = body["datasets"]
        assert ds["tiers"] == expected
        assert ds["failures"] == {"max_length:note": 200 - gold - sum(i % 15 == 0 for i in range(200)),
                                  "completeness:note": sum(i % 15 == 0 for i in range(200))}
    assert answers[0]["datasets"][0]["failures"] == answers[1]["datasets"][0]["failures"]

    # Each worker owns one raw partition and counts only that one itself.
    owned = [set(get(f"{u}/_atlas/local/stats/")["partitions"]) for u in urls]
    assert owned[0] | owned[1] == {"0", "1"} and not owned[0] & owned[1]
    for u in urls:
        one = get(f"{u}/stats/itest/orders/")
        assert one["tiers"] == expected and one["complete"]

    # Source statuses and events live in partitioned tables too: both workers see all of them.
    for u in urls:
        got = wait_for(f"{u}/sources/", lambda body: len(body["sources"]) == len(sources) and body["complete"])
        assert [(s["source"], s["rows"]) for s in got["sources"]] == [(s, i) for i, s in enumerate(sources)]
    totals = [wait_for(f"{u}/events/?type=schema.registered", lambda body: body["total"] >= 1 and body["complete"])
              for u in urls]
    assert totals[0]["events"] == totals[1]["events"]

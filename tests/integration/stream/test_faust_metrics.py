"""``/metrics`` serves Faust's own sensor families (commit and send latency, rebalances,
committed offsets) next to Atlas Stream's, from a worker that scored a few records."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import orjson

from ..harness import produce
from ..itest_orders import RAW
from ..web_client import base_url, wait_for



def _value(text: str, pattern: str) -> float:
    found = re.search(r"^" + pattern + r"(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_faust_sensor_families_are_exported_next_to_atlas_metrics(kafka, metadata_dir: Path, start_worker) -> None:
    worker = start_worker(kafka, metadata_dir, app_id="atlas-faust-metrics")
    asyncio.run(produce(kafka.bootstrap, RAW, [orjson.dumps({"order_id": f"M-{i}", "amount": 2.5, "quantity": 1,
                                                             "currency": "USD"}) for i in range(5)]))
    text = wait_for(base_url(worker) + "/metrics",
                    lambda t: _value(t, "faust_consumer_commit_latency_count") > 0
                    and re.search(r'faust_topic_partition_offset_commited\{partition="\d",topic="atlas.itest.orders.raw"\} [1-9]', t)
                    is not None and _value(t, "atlas_records_total") > 0, timeout=90)
    assert _value(text, "faust_rebalance_done_latency_count") >= 1  # rebalances completed (with latency)
    assert "faust_total_rebalances " in text  # rebalances in progress now
    assert _value(text, "faust_producer_send_latency_count") > 0
    assert _value(text, "faust_messages_received_total") >= 5

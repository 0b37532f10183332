"""Two workers in one consumer group (Tansu: the development broker whose group failover works)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from ..harness import changelog_totals, consume, parse, produce
from ..itest_orders import DLQ, RAW, TOPICS, order_record


def test_stats_are_exact_when_two_workers_share_the_partitions(kafka, metadata_dir: Path, start_worker) -> None:
    a = start_worker(kafka, metadata_dir, app_id="atlas-pair")
    b = start_worker(kafka, metadata_dir, app_id="atlas-pair")
    time.sleep(8)  # let the group settle: Tansu joins take about half the 6 s session timeout

    values = [orjson.dumps(order_record(order_id=f"O-{i}", note="x" * (i % 15))) for i in range(200)]
    values += [b"not json"] * 10
    asyncio.run(produce(kafka.bootstrap, RAW, values[:105]))
    asyncio.run(produce(kafka.bootstrap, RAW, values[105:]))

    got = parse(asyncio.run(consume(kafka.bootstrap, [*TOPICS.values(), DLQ], lambda ms: len(ms) >= 210, timeout=120)))
    positions = [(m["source"]["partition"], m["source"]["offset"]) for _, m in got]
    assert len(positions) == len(set(positions)) == 210
    partitions = {p for p, _ in positions}
    assert partitions == {0, 1}, "records should spread over both raw partitions"

    # Both workers took part: each was assigned a raw partition.
    for w in (a, b):
        assert "atlas.itest.orders.raw" in w.log().split("Executing _on_partitions_assigned")[-2]

    by_tier = Counter(m.get("quality", {}).get("tier", "dlq") for _, m in got)
    expected = Counter({f"itest.orders|{tier}": n for tier, n in by_tier.items()})

    def exact(ms: list[Any]) -> bool:
        return changelog_totals(ms) == expected

    changelog = asyncio.run(consume(kafka.bootstrap, ["atlas-pair-tier_counts-changelog"], exact, timeout=60))
    assert changelog_totals(changelog) == expected
    # note "x" * (i % 15): 1..10 characters is gold, blank or over 10 characters is silver.
    gold = sum(1 <= i % 15 <= 10 for i in range(200))
    assert expected == Counter({"itest.orders|gold": gold, "itest.orders|silver": 200 - gold, "itest.orders|dlq": 10})

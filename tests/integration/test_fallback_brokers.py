"""The PyPI fallback brokers (noida-db, Tansu) still run the core stream, for machines without
Java (docs/brokers.md says what each lacks); the worker applies their workarounds itself."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path

import orjson
import pytest

from .harness import consume, produce
from .itest_orders import DLQ, RAW, TOPICS
from .sinkcheck import KIND_TIER, mixed



@pytest.mark.parametrize("kind", ["noida", "tansu"])
def test_the_core_stream_runs_on_a_fallback_broker(kind: str, request: pytest.FixtureRequest, metadata_dir: Path,
                                                    start_worker) -> None:  # type: ignore[no-untyped-def]
    broker = request.getfixturevalue(kind)
    worker = start_worker(broker, metadata_dir, app_id=f"atlas-{kind}")  # ATLAS_DEV_BROKER=<kind>: its workarounds
    positions = asyncio.run(produce(broker.bootstrap, RAW, [mixed(i) for i in range(50)]))
    want = {(RAW, p, o): KIND_TIER.get(i % 10, "gold") for i, (p, o) in enumerate(positions)}
    tiers = {topic: tier for tier, topic in TOPICS.items()}
    got = asyncio.run(consume(broker.bootstrap, [*TOPICS.values(), DLQ], lambda ms: len(ms) >= len(want), timeout=90))
    seen = Counter((s["topic"], s["partition"], s["offset"]) for m in got if (s := orjson.loads(m.value)["source"]))
    assert max(seen.values()) == 1 and set(seen) == set(want)
    assert {(s["topic"], s["partition"], s["offset"]): tiers[m.topic]
            for m in got if (s := orjson.loads(m.value)["source"])} == want
    worker.stop(signal.SIGKILL)  # a graceful stop on these brokers takes half a minute; not what is tested here

"""ATLAS_PROCESSING_GUARANTEE=exactly_once with micro-batches: a worker killed with SIGKILL while
it scores, restarted, and a read_committed consumer of the tier topics and the DLQ then sees every
raw record exactly once."""

from __future__ import annotations

import asyncio
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from atlas_stream.kafka_admin import ensure_topics

from ..harness import produce_fast, read_to_end
from ..itest_orders import RAW
from ..sinkcheck import mixed, wait_for

OUTPUTS = [f"atlas.itest.orders.{t}" for t in ("gold", "silver", "bronze", "rejected")] + ["atlas.itest.dlq"]


async def committed_outputs(bootstrap: str) -> list[tuple[int, int]]:
    """Raw positions (partition, offset) of every committed output, read to the last stable offset."""
    messages = await read_to_end(bootstrap, OUTPUTS, isolation_level="read_committed")
    return [(src["partition"], src["offset"]) for m in messages if (src := orjson.loads(m.value)["source"])]


@pytest.mark.timeout(900)
def test_exactly_once_survives_sigkill(kafka, metadata_dir: Path, start_worker) -> None:
    n = 20_000
    env = {"ATLAS_PROCESSING_GUARANTEE": "exactly_once", "ATLAS_SINK_ENABLED": "0", "ATLAS_APP_ID": "atlas-eos",
           "ATLAS_BROKER_SESSION_TIMEOUT": "8"}  # the restarted worker need not wait 45 s for the dead one
    asyncio.run(ensure_topics([kafka.bootstrap], [RAW], partitions=2, replication=1))
    asyncio.run(produce_fast(kafka.bootstrap, RAW, [mixed(i) for i in range(n)]))

    def progress() -> Any:
        count = len(asyncio.run(committed_outputs(kafka.bootstrap)))
        return count if 0 < count else None

    for _ in range(2):
        worker = start_worker(kafka, metadata_dir, **env)
        done = wait_for("committed outputs", progress, 120, every=0.5, log=worker.log)
        assert done < n, "the run ended before the kill: make it longer"
        worker.stop(signal.SIGKILL)
    worker = start_worker(kafka, metadata_dir, **env)
    wait_for("every record", lambda: len(asyncio.run(committed_outputs(kafka.bootstrap))) >= n or None, 300,
             every=2, log=worker.log)

    seen = Counter(asyncio.run(committed_outputs(kafka.bootstrap)))
    assert len(seen) == n, f"{n - len(seen)} raw records missing"
    assert seen.most_common(1)[0][1] == 1, f"duplicates: {[p for p, c in seen.items() if c > 1][:5]}"

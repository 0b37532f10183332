"""Keep the event log and the sources' latest status in tables, for the web endpoints."""

from __future__ import annotations

import logging
from typing import Any, cast

import orjson

from atlas_stream import taskdump
from atlas_stream.app import app
from atlas_stream.channels import events, source_statuses
from atlas_stream.stats import stat_key
from atlas_stream.transport import FetchConsumer
from atlas_stream.web.events import event_key
from tables.event_log import event_log
from tables.source_status import source_status

log = logging.getLogger(__name__)

#: Events kept per partition of atlas.events (older ones are deleted from the table).
EVENTS_KEPT = 1000
#: Deleting old events scans the table: do it once per this many events of a partition.
PRUNE_EVERY = 100


def _object(value: Any) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def _prune(partition: int, newest: int) -> None:
    cutoff = newest - EVENTS_KEPT
    prefix = f"{partition}|"
    stale = [k for k in list(event_log.keys()) if k.startswith(prefix) and int(k.split("|", 1)[1]) <= cutoff]
    for key in stale:
        del event_log[key]


@app.task
async def log_tasks_on_sigusr2() -> None:
    """``kill -USR2 <worker pid>`` logs where every asyncio task waits and the consumer's view of
    its partitions (atlas_stream/taskdump.py, FetchConsumer.describe)."""
    taskdump.install(cast(FetchConsumer, app.consumer).describe)


@app.agent(events)
async def record_events(stream: Any) -> None:
    since_prune: dict[int, int] = {}
    async for event in stream.events():
        msg = event.message
        doc = _object(event.value)
        if doc is None:
            log.warning("ignored an event that is not a JSON object at %s[%d]@%d", msg.topic, msg.partition,
                        msg.offset)
            continue
        doc["partition"], doc["offset"] = msg.partition, msg.offset
        event_log[event_key(msg.partition, msg.offset)] = doc
        since_prune[msg.partition] = since_prune.get(msg.partition, 0) + 1
        if since_prune[msg.partition] >= PRUNE_EVERY:
            since_prune[msg.partition] = 0
            _prune(msg.partition, msg.offset)


@app.agent(source_statuses)
async def track_source_status(stream: Any) -> None:
    async for event in stream.events():
        msg = event.message
        doc = _object(event.value)
        if doc is None or not isinstance(doc.get("source"), str):
            log.warning("ignored a source status without a source id at %s[%d]@%d", msg.topic, msg.partition,
                        msg.offset)
            continue
        key = stat_key(msg.partition, doc["source"])
        source_status[key] = doc

"""Sink agents: tier topics -> Parquet files in the lake and documents in Elasticsearch.

The tier topics are consumed with acks disabled: Faust never commits their offsets on its own.
The router commits them once the files (or bulk requests) covering them are committed, and
recovers where to go on from the committed file names (atlas_stream/sinks, docs/lake.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.types import TP

from atlas_stream.app import app, catalog, settings
from atlas_stream.channels import events, output_topics
from atlas_stream.messages import event_message
from atlas_stream.model import Dataset, Feature
from atlas_stream.sinks.base import TierSink
from atlas_stream.sinks.lakefs import Lake, LakeConfig
from atlas_stream.sinks.parquet import Limits, ParquetSink
from atlas_stream.sinks.probe import Probe
from atlas_stream.sinks.router import SinkRouter, routes_for
from tables.schemas import schema_registry

log = logging.getLogger(__name__)


def _features_for(dataset: Dataset, version: int | None) -> tuple[Feature, ...]:
    """The schema a tier message was scored against: its registry version, else the contract's."""
    state = schema_registry.get(dataset.subject)
    for entry in (state or {}).get("versions", ()):
        if entry.get("version") == version:
            return tuple(Feature.from_dict(f) for f in entry["schema"])
    return dataset.schema


async def _commit(offsets: dict[tuple[str, int], int]) -> None:
    # Faust has no public call to commit chosen offsets; its driver's _commit is what Faust's own
    # commit uses once it has worked the offsets out from acks (faust/transport/consumer.py).
    await app.consumer._commit({TP(t, p): off for (t, p), off in offsets.items()})  # type: ignore[attr-defined]


async def _send(topic: str, key: bytes | None, value: bytes) -> None:
    await output_topics[topic].send(key=key, value=value)


async def _event(kind: str, source: str, detail: dict[str, Any]) -> None:
    await events.send(key=source.encode(), value=event_message(kind, source, **detail))


def _make_sinks() -> tuple[Lake, list[TierSink]]:
    """The lake, and the tier sinks in flush order (the router puts the lake's last anyway)."""
    lake = LakeConfig.from_settings(settings).open()
    sinks: list[TierSink] = []
    if settings.es_url or settings.es_cloud_id:
        from atlas_stream.sinks.elasticsearch import ElasticsearchSink, ElasticsearchTierSink, connection_options

        options = connection_options(api_key=settings.es_api_key, username=settings.es_username,
                                     password=settings.es_password, ca_certs=settings.es_ca_certs,
                                     cloud_id=settings.es_cloud_id)
        es = ElasticsearchSink(settings.es_url, max_docs=settings.es_bulk_docs, max_bytes=settings.es_bulk_bytes,
                               linger_seconds=settings.es_linger_seconds, client_options=options)
        sinks.append(ElasticsearchTierSink(es, [rt.dataset for rt in catalog.datasets]))
    limits = Limits(flush_seconds=settings.sink_flush_seconds, flush_rows=settings.sink_flush_rows,
                    flush_bytes=settings.sink_flush_bytes, rotate_seconds=settings.sink_rotate_seconds,
                    rotate_rows=settings.sink_rotate_rows, rotate_bytes=settings.sink_rotate_bytes)
    sinks.append(ParquetSink(lake, limits, settings.data_dir / "sink-staging", _features_for))
    return lake, sinks


_routes = routes_for(catalog, parquet=True, elasticsearch=bool(settings.es_url or settings.es_cloud_id)) if settings.sink_enabled else {}
_router: SinkRouter | None = None
_lake: Lake | None = None
_router_lock = asyncio.Lock()


async def _get_router() -> SinkRouter:
    """The router, made on first use (opening the lake may talk to it: not at import time)."""
    global _router, _lake
    async with _router_lock:
        if _router is None:
            lake, sinks = await asyncio.to_thread(_make_sinks)
            router = SinkRouter(catalog, sinks=sinks, probe=Probe(settings.bootstrap_servers), commit=_commit,
                                send=_send, event=_event, max_message_bytes=settings.max_message_bytes)
            await router.setup()
            _router, _lake = router, lake
    return _router


if _routes:
    tier_records = app.topic(
        *sorted(_routes), key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        acks=False, internal=True, partitions=settings.topic_partitions,
    )

    @app.task
    async def check_sink_destinations() -> None:
        """Say clearly at startup when the lake cannot be reached (the writers keep retrying)."""
        await _get_router()
        if _lake is None:
            return
        try:
            await asyncio.to_thread(_lake.check)
        except Exception as exc:  # noqa: BLE001 - reported; records wait in Kafka meanwhile
            log.error("the lake %s is not reachable (%s): records wait in Kafka until it is", settings.lake_uri, exc)

    @app.agent(tier_records)
    async def sink_tier_records(stream: Any) -> None:
        router = await _get_router()
        async for event in stream.events():
            msg = event.message
            await router.handle(msg.topic, msg.partition, msg.offset, event.value)

    @app.timer(interval=1.0)
    async def close_sink_windows() -> None:
        if _router is not None:
            await _router.tick()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]  # Faust's stub types sync receivers only
    async def seek_sink_partitions_to_lake(app: Any, **kwargs: Any) -> None:
        """Recover newly assigned tier partitions from the lake and start them where it ends.

        Faust sends this signal, and awaits it, right before it resumes the assigned partitions
        and seeks each to its committed offset, so committing the recovered offset here is how the
        consumer seeks there. A seek of our own would be overwritten by Faust's, and one from the
        agent races Faust's fetcher thread (faust-streaming 0.15.3 calls aiokafka's ``seek`` from
        the event loop's thread; aiokafka's fetcher crashed with a KeyError). ``on_partitions_assigned``
        is too early: table recovery runs alongside it and may seek first.
        """
        mine = [(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in _routes]
        if not mine:
            return
        router = await _get_router()
        positions = await router.recover_assigned(mine)
        if positions:
            await _commit(positions)
            log.info("sink: seeking %s to where the lake ends", ", ".join(
                f"{t}[{p}] -> {off}" for (t, p), off in sorted(positions.items())))

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust's stub types sync receivers only
    async def forget_revoked_sink_partitions(app: Any, revoked: set[TP], **kwargs: Any) -> None:
        if _router is not None:
            await _router.revoke([(tp.topic, tp.partition) for tp in revoked if tp.topic in _routes])

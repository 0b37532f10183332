"""Routes tier-topic records to the Parquet and Elasticsearch sinks and decides which offsets
are safe to commit to Kafka. No Faust here: the agent passes in how to commit and send.

Per tier-topic partition the router keeps the next offset it expects. A record below it is a
replay (the consumer started from an older committed offset, or Faust delivered twice) unless
the topic's offsets started again; a record above it is a gap (compaction, retention) unless
records were skipped. ``Probe`` reads the topic to tell them apart (see docs/lake.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterable

import orjson
from aiokafka.errors import KafkaError

from ..lake import dataset_features
from ..messages import dlq_message
from ..model import Dataset
from ..pipeline import Catalog
from .lakefs import Lake
from .parquet import Committed, FeaturesFor, Limits, PartitionWriter, recover
from .probe import Probe
from .tier_arrow import tier_message

__all__ = ["Route", "SinkRouter", "routes_for"]

log = logging.getLogger(__name__)

TP = tuple[str, int]


@dataclass(frozen=True)
class Route:
    """Where one tier topic goes."""

    dataset: Dataset
    tier: str
    dlq_topic: str
    parquet: bool
    elasticsearch: bool


def routes_for(catalog: Catalog, *, parquet: bool, elasticsearch: bool) -> dict[str, Route]:
    """Tier topic -> Route, from each dataset's ``destination`` (only topics that go somewhere)."""
    routes: dict[str, Route] = {}
    for rt in catalog.datasets:
        dest = rt.dataset.destination
        for tier, topic in rt.tier_topics.items():
            route = Route(rt.dataset, tier, rt.dlq_topic, parquet and tier in dest.parquet_tiers,
                          elasticsearch and tier in dest.elasticsearch_tiers)
            if route.parquet or route.elasticsearch:
                routes[topic] = route
    return routes


class _State:
    def __init__(self, tp: TP, route: Route, writer: PartitionWriter | None, expected: int | None) -> None:
        self.tp, self.route, self.writer, self.expected = tp, route, writer, expected
        self.replays_below: int | None = None  # verified: records below this are replays
        self.es_end: int | None = None  # last offset handed to Elasticsearch
        self.es_next: int | None = None  # offsets below this are indexed
        self.committed: int | None = None
        #: The message last handed to the sinks (this process), else the newest file's last record.
        self.last_value: tuple[int, bytes | None] | None = None
        self.recovered_last: dict[str, Any] | None = writer.last if writer else None


class SinkRouter:
    def __init__(self, catalog: Catalog, *, lake: Lake | None, es: Any, limits: Limits, staging: Path,
                 features_for: FeaturesFor, probe: Probe,
                 commit: Callable[[dict[TP, int]], Awaitable[Any]],
                 send: Callable[[str, bytes | None, bytes], Awaitable[Any]],
                 event: Callable[[str, str, dict[str, Any]], Awaitable[Any]] | None = None,
                 max_message_bytes: int = 1_000_000) -> None:
        self.lake, self.es, self.limits, self.staging = lake, es, limits, staging
        self.features_for, self.probe, self.commit, self.send = features_for, probe, commit, send
        self.event, self.max_message_bytes = event, max_message_bytes
        self.routes = routes_for(catalog, parquet=lake is not None, elasticsearch=es is not None)
        self.states: dict[TP, _State] = {}
        self._es_lock = asyncio.Lock()

    @property
    def topics(self) -> list[str]:
        return sorted(self.routes)

    # -- records -----------------------------------------------------------------------------
    async def handle(self, topic: str, partition: int, offset: int, value: bytes | None) -> None:
        tp = (topic, partition)
        st = self.states.get(tp) or await self._assign(tp)
        if st.expected is not None and offset != st.expected:  # the usual record needs no verdict
            verdict = await self._admit(st, offset)
            if verdict == "skip":
                return
            if verdict == "fill":
                await self._fill(st, offset)
        await self._write(st, offset, value)

    async def _fill(self, st: _State, until: int) -> None:
        """Read the records the stream skipped (offsets expected..until-1) straight from Kafka."""
        assert st.expected is not None
        topic, partition = st.tp
        log.warning("%s[%d]: the stream went from %d to %d; reading the %d records between from the topic",
                    topic, partition, st.expected - 1, until, until - st.expected)
        delay = 0.5
        while True:
            try:
                async for chunk in self.probe.read_range(topic, partition, st.expected, until):
                    for rec in chunk:
                        if rec.offset >= st.expected:
                            await self._write(st, rec.offset, rec.value)
                return
            except (OSError, TimeoutError, KafkaError) as exc:
                log.error("%s[%d]: reading offsets %d..%d failed (%s); retrying in %.1fs", topic, partition,
                          st.expected, until - 1, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)

    async def _write(self, st: _State, offset: int, value: bytes | None) -> None:
        st.expected = offset + 1
        st.last_value = (offset, value)
        if st.route.elasticsearch:
            # Into the index buffer before the file: a file is committed only after a flush of
            # this buffer, so the index always holds every record of every committed file.
            message = tier_message(value)
            if message is not None:
                self.es.add_message(message, (st.tp[0], st.tp[1], offset), features=self._es_features(st.route.dataset))
            elif st.writer is None:  # (the Parquet writer reports it otherwise)
                log.error("%s[%d]@%d is not a tier message; skipped", st.tp[0], st.tp[1], offset)
            st.es_end = offset
        w = st.writer
        if w is not None:
            # No lock: the buffer is only touched on this loop; a flush takes it whole first.
            w.consume(offset, value)  # decoded with its window, on Arrow
            if w.due(time.monotonic()):
                async with w.lock:
                    await self._flush_file(st)
        if st.route.elasticsearch and self.es.due():
            await self._flush_es()

    async def recover_assigned(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Recover newly assigned partitions from the lake's committed file names; returns the
        offset the consumer must go on from, per partition that has files (Kafka Connect's HDFS
        sink, ``TopicPartitionWriter.recover``). Partitions already known are left as they are."""
        positions: dict[TP, int] = {}
        for tp in tps:
            if tp in self.states or tp[0] not in self.routes:
                continue
            try:
                st = await self._assign(tp)
            except Exception as exc:  # noqa: BLE001 - recovered again on the partition's first record
                log.error("parquet %s[%d]: the lake could not be read to recover the partition (%s); it is "
                          "recovered on its first record, and records its files hold are skipped", tp[0], tp[1], exc)
                continue
            if st.expected is not None:
                positions[tp] = st.expected
        return positions

    def _es_features(self, dataset: Dataset) -> set[str] | None:
        if dataset.destination.features is None:
            return None
        return {f.name for f in dataset_features(dataset)}

    async def _assign(self, tp: TP) -> _State:
        route = self.routes[tp[0]]
        writer = None
        expected = None
        if route.parquet:
            assert self.lake is not None
            rec = await asyncio.to_thread(recover, self.lake, route.dataset.destination.path, route.tier, tp[0], tp[1], self.staging)
            writer = PartitionWriter(self.lake, route.dataset, route.tier, tp[0], tp[1], rec, self.limits,
                                     self.staging, self.features_for)
            expected = rec.next_offset
            log.info("parquet %s[%d]: recovered from %d committed file(s): series %d, next offset %s%s", tp[0], tp[1],
                     rec.files, rec.series, expected, f", {rec.removed_tmp} temporary file(s) deleted" if rec.removed_tmp else "")
        st = _State(tp, route, writer, expected)
        st.committed = expected
        self.states[tp] = st
        return st

    async def _admit(self, st: _State, offset: int) -> str:
        """``write`` the record at ``offset``, ``skip`` it (a replay), or ``fill`` the records
        the stream skipped before it first."""
        if st.expected is None or offset == st.expected:
            return "write"
        topic, partition = st.tp
        if offset < st.expected:
            if st.replays_below is not None and st.replays_below >= st.expected:
                return "skip"
            if await self._same_topic(st):
                # Parquet commits a file only after Elasticsearch indexed what it covers, so
                # every sink of this partition has what lies below ``expected``. The consumer was
                # positioned at the recovered offset on assignment (``recover_assigned``); records
                # below it still arrive when Faust re-reads from the committed offset after a
                # rebalance that kept the partition, or when the lake could not be read then. They
                # are skipped, not sought past: a seek from the agent races Faust's fetcher thread.
                st.replays_below = st.expected
                log.info("%s[%d]: records %d..%d are already written; skipping them", topic, partition,
                         offset, st.expected - 1)
                return "skip"
            await self._restart_series(st, offset)
            return "write"
        res = await self.probe.read_at(topic, partition, st.expected)
        if res.status in ("found", "unknown"):
            return "fill"
        log.warning("%s[%d]: offsets %d..%d are not in the topic (compaction, transaction markers or retention)",
                    topic, partition, st.expected, offset - 1)
        return "write"

    async def _same_topic(self, st: _State) -> bool:
        """Is the record we last wrote still at its offset (the topic was not recreated)?"""
        if st.last_value is not None:
            offset, value = st.last_value
            res = await self.probe.read_at(st.tp[0], st.tp[1], offset)
            if res.status == "found":
                return res.raw == value
        elif st.recovered_last:
            last = st.recovered_last
            offset = int(last["offset"])
            res = await self.probe.read_at(st.tp[0], st.tp[1], offset)
            if res.status == "found" and isinstance(res.value, dict):
                src = res.value.get("source") or {}
                now = [src.get("topic"), src.get("partition"), src.get("offset")]
                return now == last["source"] and res.value.get("ingested_at") == last["ingested_at"]
        else:
            return True
        if res.status == "unknown":
            return True  # cannot tell: replays are the safe reading (nothing is overwritten)
        if res.status == "out_of_range" and res.end is not None and res.end > offset:
            return True  # deleted by retention, the topic goes on
        return False

    async def _restart_series(self, st: _State, offset: int) -> None:
        topic, partition = st.tp
        w = st.writer
        if w is not None:
            async with w.lock:
                await self._commit_file(st)
                w.restart_series(offset)
            log.warning("parquet %s[%d]: the topic's offsets started again (at %d, after %s): it was recreated. "
                        "Earlier files are kept; new files form series %d (named ...+<end>.s%d.parquet)",
                        topic, partition, offset, st.expected, w.series, w.series)
        else:
            log.warning("%s[%d]: the topic's offsets started again at %d (after %s): it was recreated",
                        topic, partition, offset, st.expected)
        st.expected = st.committed = offset
        st.replays_below = None
        st.es_next = None
        st.last_value = st.recovered_last = None

    # -- flushing and committing --------------------------------------------------------------------
    async def tick(self) -> None:
        """Close due windows, rotate old files, send due bulks, commit offsets (timer)."""
        now = time.monotonic()
        for st in list(self.states.values()):
            w = st.writer
            if w is not None and w.due(now) and not w.lock.locked():
                async with w.lock:
                    await self._flush_file(st)
        if self.es is not None and self.es.due():
            await self._flush_es()
        await self._commit_offsets()

    async def _flush_file(self, st: _State) -> None:
        assert st.writer is not None
        if st.route.elasticsearch:
            await self._flush_es()  # the index never lags behind a committed file
        await self._announce(st, await st.writer.flush())

    async def _commit_file(self, st: _State) -> None:
        assert st.writer is not None
        if st.route.elasticsearch:
            await self._flush_es()
        await self._announce(st, await st.writer.commit())

    async def _announce(self, st: _State, files: list[Committed]) -> None:
        if self.event is None:
            return
        for c in files:
            await self.event("sink.commit", st.route.dataset.subject, {
                "sink": "parquet", "tier": st.route.tier, "topic": st.tp[0], "partition": st.tp[1],
                "end": c.file.end, "rows": c.rows, "file": c.path})

    async def _flush_es(self) -> None:
        async with self._es_lock:
            ends = {tp: st.es_end for tp, st in self.states.items() if st.route.elasticsearch and st.es_end is not None}
            result = await self.es.flush()
            for refused in getattr(result, "refused", ()) or ():
                await self._dead_letter(refused)
            for tp, end in ends.items():
                st = self.states.get(tp)
                if st is not None and end is not None:
                    st.es_next = max(st.es_next or 0, end + 1)

    async def _dead_letter(self, refused: Any) -> None:
        topic, partition, offset = refused.position
        route = self.routes.get(topic)
        if route is None:
            return
        reason = f"elasticsearch refused document {refused.id} in {refused.index}: {refused.status} {refused.error}"
        log.error("%s", reason)
        source = {"topic": topic, "partition": partition, "offset": offset, "timestamp": time.time()}
        value = orjson.dumps(refused.doc) if refused.doc is not None else None
        await self.send(route.dlq_topic, None, dlq_message(reason, "sink.elasticsearch", source, None, value,
                                                           self.max_message_bytes, route.dataset.name))

    def safe_offsets(self) -> dict[TP, int]:
        """Per partition, the offset below which every sink has written everything."""
        out: dict[TP, int] = {}
        for tp, st in self.states.items():
            marks: list[int | None] = []
            if st.writer is not None:
                marks.append(st.writer.safe_next())
            if st.route.elasticsearch:
                marks.append(st.es_next)
            if marks and all(m is not None for m in marks):
                out[tp] = min(m for m in marks if m is not None)
        return out

    async def _commit_offsets(self) -> None:
        todo = {tp: off for tp, off in self.safe_offsets().items()
                if self.states[tp].committed is None or off > (self.states[tp].committed or 0)}
        if todo:
            await self.commit(todo)
            for tp, off in todo.items():
                self.states[tp].committed = off

    # -- partitions ---------------------------------------------------------------------------------
    async def revoke(self, tps: Iterable[TP]) -> None:
        """Forget revoked partitions; their open files are deleted (the new owner reads again)."""
        for tp in tps:
            st = self.states.pop(tp, None)
            if st is not None and st.writer is not None:
                async with st.writer.lock:
                    await asyncio.to_thread(st.writer.discard)

    async def close(self) -> None:
        await self.revoke(list(self.states))
        if self.es is not None:
            await self.es.close()


"""Routes tier-topic records to the tier sinks (``base.TierSink``: Parquet, Elasticsearch, ...)
and decides which offsets are safe to commit to Kafka. No Faust here: the agent passes in how to
commit and send.

Per tier-topic partition the router keeps the next offset it expects. A record below it is a
replay (the consumer started from an older committed offset, or Faust delivered twice) unless
the topic's offsets started again; a record above it is a gap (compaction, retention) unless
records were skipped. ``Probe`` reads the topic to tell them apart (see docs/lake.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka.errors import KafkaError

from ..messages import dlq_message
from ..model import Dataset
from ..pipeline import Catalog
from ..retry import RetryPolicy, retry_async
from .base import TP, RefusedRecord, TierSink
from .probe import Probe

__all__ = ["Route", "SinkRouter", "Verdict", "routes_for"]

log = logging.getLogger(__name__)

#: What to do with a record that is not the next expected offset of its partition: write it,
#: skip it (a replay), or first fill in the records the stream skipped before it.
Verdict = Literal["write", "skip", "fill"]

#: Reading a skipped range from Kafka: 0.5 s doubling to 30 s, jittered, until it succeeds.
FILL_RETRY = RetryPolicy(first=0.5, cap=30.0)


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
    def __init__(self, tp: TP, route: Route, sinks: list[TierSink]) -> None:
        self.tp, self.route, self.sinks = tp, route, sinks
        self.expected: int | None = None
        self.replays_below: int | None = None  # verified: records below this are replays
        self.committed: int | None = None
        #: Per sink, the offset below which it holds everything durably (None: not known yet).
        self.safe: dict[TierSink, int | None] = {}
        #: The message last handed to the sinks (this process), else the newest file's last record.
        self.last_value: tuple[int, bytes | None] | None = None
        self.recovered_last: dict[str, Any] | None = None
        #: The flush locks of this partition's sinks (filled on the first record).
        self.locks: list[asyncio.Lock] = []


class SinkRouter:
    """Hands every record of a tier-topic partition to the partition's sinks, in offset order,
    once; flushes them as ``TierSink`` says (every sink listed before a sink is flushed before
    it: those whose files say where the consumer resumes come last); commits to Kafka, per
    partition, the minimum over its sinks of the offset each reports safe."""

    def __init__(self, catalog: Catalog, *, sinks: Sequence[TierSink], probe: Probe,
                 commit: Callable[[dict[TP, int]], Awaitable[Any]],
                 send: Callable[[str, bytes | None, bytes], Awaitable[Any]],
                 event: Callable[[str, str, dict[str, Any]], Awaitable[Any]] | None = None,
                 max_message_bytes: int = 1_000_000) -> None:
        self.sinks = sorted(sinks, key=lambda s: s.recovers)  # stable: the recovering ones last
        self.probe, self.commit, self.send = probe, commit, send
        self.event, self.max_message_bytes = event, max_message_bytes
        self.routes: dict[str, Route] = {}
        self._sinks_of: dict[str, list[TierSink]] = {}
        for topic, route in routes_for(catalog, parquet=True, elasticsearch=True).items():
            taking = [s for s in self.sinks if s.takes(route)]
            if taking:
                self.routes[topic], self._sinks_of[topic] = route, taking
        self.states: dict[TP, _State] = {}
        self._locks: dict[tuple[int, TP | None], asyncio.Lock] = {}

    @property
    def topics(self) -> list[str]:
        return sorted(self.routes)

    async def setup(self) -> None:
        for sink in self.sinks:
            await sink.setup()

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

        async def read() -> None:
            start = st.expected
            assert start is not None
            async for chunk in self.probe.read_range(topic, partition, start, until):
                for rec in chunk:
                    if rec.offset >= (st.expected or 0):
                        await self._write(st, rec.offset, rec.value)

        def failed(exc: BaseException, attempt: int, delay: float) -> None:
            log.error("%s[%d]: reading offsets %d..%d failed (%s); retrying in %.1fs", topic, partition,
                      st.expected, until - 1, exc, delay)

        await retry_async(read, retry_on=(OSError, TimeoutError, KafkaError), policy=FILL_RETRY, on_retry=failed)

    async def _write(self, st: _State, offset: int, value: bytes | None) -> None:
        # A flush of this partition in progress (the timer's) flushes the earlier sinks, then the
        # later ones: a record added in between would reach a later sink's commit without the
        # earlier sinks (a Parquet file committed with a document the index does not hold yet).
        # Wait for it, then hand the record to every sink with no await in between.
        locks = st.locks or self._locks_of(st)
        while True:
            for lock in locks:
                if lock.locked():
                    async with lock:
                        pass
                    break
            else:
                break
        st.expected = offset + 1
        st.last_value = (offset, value)
        due = -1
        for i, sink in enumerate(st.sinks):
            if sink.add(st.tp, offset, value):
                due = i
        if due >= 0:  # the last sink that is due, and the ones before it
            await self._flush(st.sinks[due], [st.tp])

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

    async def _assign(self, tp: TP) -> _State:
        route = self.routes[tp[0]]
        st = _State(tp, route, self._sinks_of[tp[0]])
        for sink in st.sinks:
            rec = await sink.assign(tp, route)
            st.safe[sink] = rec.next_offset
            if rec.next_offset is not None:
                st.expected = rec.next_offset if st.expected is None else min(st.expected, rec.next_offset)
            st.recovered_last = st.recovered_last or rec.last
        st.committed = st.expected
        self.states[tp] = st
        return st

    async def _admit(self, st: _State, offset: int) -> Verdict:
        """``write`` the record at ``offset``, ``skip`` it (a replay), or ``fill`` the records
        the stream skipped before it first."""
        if st.expected is None or offset == st.expected:
            return "write"
        topic, partition = st.tp
        if offset < st.expected:
            if st.replays_below is not None and st.replays_below >= st.expected:
                return "skip"
            if await self._same_topic(st):
                # The sinks that say where the consumer resumes commit only after every other sink
                # flushed what they cover, so every sink of this partition has what lies below
                # ``expected``. The consumer was positioned at the recovered offset on assignment
                # (``recover_assigned``); records below it still arrive when Faust re-reads from
                # the committed offset after a rebalance that kept the partition, or when the lake
                # could not be read then. They are skipped, not sought past: a seek from the agent
                # races Faust's fetcher thread.
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
        """The topic was recreated: commit what every sink holds, then start a new series."""
        topic, partition = st.tp
        await self.flush_partition(st.tp, commit=True)
        if not any(s.recovers for s in st.sinks):  # (a recovering sink says more itself)
            log.warning("%s[%d]: the topic's offsets started again at %d (after %s): it was recreated",
                        topic, partition, offset, st.expected)
        for sink in st.sinks:
            st.safe[sink] = await sink.restart(st.tp, offset, st.expected)
        st.expected = st.committed = offset
        st.replays_below = None
        st.last_value = st.recovered_last = None

    # -- flushing and committing --------------------------------------------------------------------
    async def tick(self) -> None:
        """Close due windows, rotate old files, send due bulks, commit offsets (timer)."""
        now = time.monotonic()
        for sink in self.sinks:
            due = [tp for tp in sink.due(now) if tp in self.states]
            if due and sink.shared_buffer:
                await self._flush(sink, due)
            for tp in due if not sink.shared_buffer else ():
                if not self._lock(sink, tp).locked():  # being flushed already: not worth waiting
                    await self._flush(sink, [tp])
        await self._commit_offsets()

    async def flush_partition(self, tp: TP, *, commit: bool = False) -> None:
        """Flush every sink of ``tp``; ``commit``: close their open files too."""
        st = self.states.get(tp)
        if st is not None and st.sinks:
            await self._flush(st.sinks[-1], [tp], commit=commit)

    def _locks_of(self, st: _State) -> list[asyncio.Lock]:
        st.locks = [self._lock(sink, st.tp) for sink in st.sinks]
        return st.locks

    def _lock(self, sink: TierSink, tp: TP) -> asyncio.Lock:
        key = (id(sink), None if sink.shared_buffer else tp)
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    async def _flush(self, sink: TierSink, tps: Collection[TP], *, commit: bool = False) -> None:
        """Flush ``sink`` for ``tps`` after every sink listed before it that holds any of them.

        Its lock is held throughout (as the Parquet writer's lock was held around the
        Elasticsearch flush and the file's before this contract)."""
        groups = [list(tps)] if sink.shared_buffer else [[tp] for tp in tps]
        for group in groups:
            async with self._lock(sink, group[0]):
                for earlier in self.sinks[:self.sinks.index(sink)]:
                    held = [tp for tp in group if tp in self.states and earlier in self.states[tp].safe]
                    for part in [held] if earlier.shared_buffer else [[tp] for tp in held]:
                        if part:
                            async with self._lock(earlier, part[0]):
                                await self._flush_now(earlier, part, commit)
                await self._flush_now(sink, group, commit)

    async def _flush_now(self, sink: TierSink, tps: list[TP], commit: bool) -> None:
        """One flush (its lock held): dead-letter what was refused, announce what was committed,
        then take the offsets it made safe."""
        result = await sink.flush(tps, commit=commit)
        for refused in result.refused:
            await self._dead_letter(refused)
        if self.event is not None:
            for tp, detail in result.committed:
                await self.event("sink.commit", self.routes[tp[0]].dataset.subject, detail)
        for tp, safe in result.safe.items():
            st = self.states.get(tp)
            if st is not None and sink in st.safe:
                st.safe[sink] = safe

    async def _dead_letter(self, refused: RefusedRecord) -> None:
        topic, partition = refused.tp
        route = self.routes.get(topic)
        if route is None:
            return
        log.error("%s", refused.reason)
        source = {"topic": topic, "partition": partition, "offset": refused.offset, "timestamp": time.time()}
        await self.send(route.dlq_topic, None, dlq_message(refused.reason, refused.stage, source, None, refused.value,
                                                           self.max_message_bytes, route.dataset.name))

    def safe_offsets(self) -> dict[TP, int]:
        """Per partition, the offset below which every sink has written everything."""
        out: dict[TP, int] = {}
        for tp, st in self.states.items():
            marks = list(st.safe.values())
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
            if st is None:
                continue
            for sink in st.sinks:
                if sink.shared_buffer:  # not worth waiting for a bulk of every partition
                    await sink.revoke([tp])
                else:
                    async with self._lock(sink, tp):
                        await sink.revoke([tp])

    async def close(self) -> None:
        await self.revoke(list(self.states))
        for sink in self.sinks:
            await sink.close()

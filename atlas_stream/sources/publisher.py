"""Publisher: acknowledged batch writes to Kafka, and the read-back that makes restarts exact."""

from __future__ import annotations

import asyncio
import itertools
import logging
import struct
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from ..errors import BrokerUnavailable
from ..kafka_admin import ensure_topics
from ..kafka_security import check_kafka, client_kwargs
from ..settings import Settings

__all__ = ["HEADER_POSITION", "HEADER_SOURCE", "OutRecord", "Publisher", "kafka_partition", "murmur2"]

log = logging.getLogger(__name__)

#: Header naming the source that published a record (``file:<group>.<dataset>``, ...).
HEADER_SOURCE = "atlas-source"
#: Header holding the record's source position (``<file id>:<row>``, a DB cursor, ...).
HEADER_POSITION = "atlas-pos"
#: Produce batches stay under real Kafka's default message.max.bytes (1 MiB); a single larger
#: record still goes alone in its own batch, up to ATLAS_MAX_MESSAGE_BYTES.
BATCH_BYTES = 512 * 1024
_BROKER_ERRORS = (KafkaError, OSError, asyncio.TimeoutError)

Offsets = dict[str, dict[int, int]]


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One message a source publishes: a raw record, or a dead letter (``dead``)."""

    topic: str
    key: bytes | None
    value: bytes
    position: str
    dead: bool = False


_M, _MASK = 0x5BD1E995, 0xFFFFFFFF
_WORDS = [struct.Struct(f"<{n}I") for n in range(65)]


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (``Utils.murmur2``), unsigned: the hash the Java client, librdkafka's
    ``murmur2_random`` and aiokafka partition keys by. Twice as fast as aiokafka's, which
    dominated publishing time."""
    length = len(data)
    h = 0x9747B28C ^ length
    n = length >> 2
    for k in _WORDS[n].unpack_from(data) if n <= 64 else struct.unpack_from(f"<{n}I", data):
        k = (k * _M) & _MASK
        h = ((h * _M) & _MASK) ^ (((k ^ (k >> 24)) * _M) & _MASK)
    extra = length & 3
    if extra:
        i = n << 2
        if extra == 3:
            h ^= data[i + 2] << 16
        if extra >= 2:
            h ^= data[i + 1] << 8
        h = ((h ^ data[i]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


def kafka_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def merge_offsets(*maps: Offsets) -> Offsets:
    """Partition-wise maximum of several offset maps."""
    out: Offsets = {}
    for m in maps:
        for topic, parts in m.items():
            mine = out.setdefault(topic, {})
            for p, o in parts.items():
                if o > mine.get(p, -1):
                    mine[p] = o
    return out


class Publisher:
    """An acks=all producer shared by the sources of one poller process, plus plain consumers
    (no group) for end offsets and recovery reads.

    ``publish_batch`` returns only when the broker acknowledged every record of the batch. When
    any send fails it waits until every send of the batch has settled, then raises
    BrokerUnavailable, so no record of a failed batch can land after the caller began recovery.
    The producer is idempotent (no duplicates from its own retries) unless the broker lacks
    idempotent producers (Tansu: ``ATLAS_DEV_BROKER=tansu``).
    """

    def __init__(self, settings: Settings, client_id: str = "atlas-poller") -> None:
        self.bootstrap = settings.bootstrap_servers
        self.security = settings.kafka_security
        self.partitions_wanted = settings.topic_partitions
        self.replication = settings.topic_replication
        self.max_request = settings.max_message_bytes + 64 * 1024
        self.idempotent = settings.dev_broker != "tansu"
        self.client_id = client_id
        self._producer: AIOKafkaProducer | None = None
        self._offsets: AIOKafkaConsumer | None = None
        self._partitions: dict[str, list[int]] = {}
        self._round_robin = itertools.count()
        self._broken = False
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ lifecycle

    async def start(self, topics: Iterable[str]) -> None:
        """Create missing topics (ATLAS_TOPIC_PARTITIONS partitions), start the clients."""
        topics = list(dict.fromkeys(topics))
        try:
            await check_kafka(self.bootstrap, self.security)
            await ensure_topics(self.bootstrap, topics, self.partitions_wanted, self.replication, self.security)
            await self._start_clients()
            for topic in topics:
                await self.partitions(topic)
        except _BROKER_ERRORS as exc:
            await self.stop()
            raise BrokerUnavailable(self._describe(exc)) from None

    async def _start_clients(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap, client_id=self.client_id, acks="all",
            enable_idempotence=self.idempotent, max_request_size=self.max_request,
            max_batch_size=BATCH_BYTES, request_timeout_ms=30_000, **client_kwargs(self.security),
        )
        await self._producer.start()
        if self._offsets is None:
            self._offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, client_id=self.client_id,
                                             group_id=None, enable_auto_commit=False,
                                             **client_kwargs(self.security))
            await self._offsets.start()

    async def stop(self) -> None:
        producer, consumer, self._producer, self._offsets = self._producer, self._offsets, None, None
        for client in (producer, consumer):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), 30)
                except Exception as exc:  # stopping must not hide the error that led here
                    log.debug("closing a Kafka client failed: %r", exc)

    async def _restart_producer(self) -> None:
        async with self._lock:
            if not self._broken and self._producer is not None:
                return
            old, self._producer = self._producer, None
            if old is not None:
                try:
                    await asyncio.wait_for(old.stop(), 30)
                except Exception as exc:
                    log.debug("stopping the failed producer: %r", exc)
            try:
                await self._start_clients()
            except _BROKER_ERRORS as exc:
                self._producer = None
                raise BrokerUnavailable(self._describe(exc)) from None
            self._broken = False

    def _describe(self, exc: BaseException) -> str:
        detail = str(exc) if str(exc).startswith(type(exc).__name__) else f"{type(exc).__name__}: {exc}"
        text = f"Kafka broker at {','.join(self.bootstrap)} unavailable: {detail}"
        if self.idempotent and ("InitProducerId" in repr(exc) or type(exc).__name__ == "UnknownError"):
            text += " (a broker without idempotent producers, like Tansu, needs ATLAS_DEV_BROKER=tansu)"
        return text

    async def partitions(self, topic: str) -> list[int]:
        known = self._partitions.get(topic)
        if known is None:
            if self._producer is None:
                raise BrokerUnavailable("publisher is not started")
            known = self._partitions[topic] = sorted(await self._producer.partitions_for(topic))
        return known

    # ------------------------------------------------------------------ writing

    async def publish_batch(self, records: Sequence[OutRecord], source_id: str) -> Offsets:
        """Send ``records`` with the source headers and wait for every acknowledgement. Returns,
        per topic and partition written, the offset after the last record acknowledged there."""
        if self._broken or self._producer is None:
            await self._restart_producer()
        producer = self._producer
        assert producer is not None
        parts = {topic: await self.partitions(topic) for topic in {r.topic for r in records}}
        source = source_id.encode()
        open_batches: dict[tuple[str, int], tuple[Any, int]] = {}
        sent: list[tuple[str, int, int, asyncio.Future[Any]]] = []

        async def flush(tp: tuple[str, int], builder: Any, count: int) -> None:
            sent.append((tp[0], tp[1], count, await producer.send_batch(builder, tp[0], partition=tp[1])))

        try:
            for rec in records:
                all_parts = parts[rec.topic]
                if rec.key is None:
                    partition = all_parts[next(self._round_robin) % len(all_parts)]
                else:
                    partition = all_parts[kafka_partition(rec.key, len(all_parts))]
                tp = (rec.topic, partition)
                headers = [(HEADER_SOURCE, source), (HEADER_POSITION, rec.position.encode())]
                builder, count = open_batches.get(tp) or (producer.create_batch(), 0)
                if builder.append(key=rec.key, value=rec.value, timestamp=None, headers=headers) is None:
                    await flush(tp, builder, count)
                    builder, count = producer.create_batch(), 0
                    builder.append(key=rec.key, value=rec.value, timestamp=None, headers=headers)
                open_batches[tp] = (builder, count + 1)
            for tp, (builder, count) in open_batches.items():
                await flush(tp, builder, count)
            results = await asyncio.gather(*(f for *_, f in sent), return_exceptions=True)
        except BaseException as exc:
            await asyncio.gather(*(f for *_, f in sent), return_exceptions=True)
            self._broken = True
            if isinstance(exc, _BROKER_ERRORS):
                raise BrokerUnavailable(self._describe(exc)) from None
            raise
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            self._broken = True
            raise BrokerUnavailable(f"{len(failed)} of {len(sent)} produce batches were not acknowledged: "
                                    f"{self._describe(failed[0])}")
        acked: Offsets = {}
        for (topic, partition, count, _), meta in zip(sent, results):
            assert not isinstance(meta, BaseException)
            end = meta.offset + count
            mine = acked.setdefault(topic, {})
            mine[partition] = max(mine.get(partition, 0), end)
        return acked

    async def send_status(self, topic: str, key: bytes, value: bytes, timeout: float = 10.0) -> None:
        """Best effort: one status message, acknowledged or BrokerUnavailable."""
        producer = self._producer
        if producer is None or self._broken:
            raise BrokerUnavailable("producer not available")
        try:
            await asyncio.wait_for(producer.send_and_wait(topic, value, key=key), timeout)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailable(self._describe(exc)) from None

    # ------------------------------------------------------------------ reading back

    async def _tps(self, topics: Iterable[str]) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t in topics for p in await self.partitions(t)]

    async def end_offsets(self, topics: Iterable[str]) -> Offsets:
        """The current end offset of every partition of ``topics``."""
        if self._offsets is None:
            raise BrokerUnavailable("publisher is not started")
        try:
            ends = await asyncio.wait_for(self._offsets.end_offsets(await self._tps(topics)), 60)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailable(self._describe(exc)) from None
        out: Offsets = {}
        for tp, offset in ends.items():
            out.setdefault(tp.topic, {})[tp.partition] = offset
        return out

    async def published_positions(self, source_id: str, topics: Iterable[str], since: Offsets,
                                  timeout: float = 120.0) -> set[str]:
        """Positions (``atlas-pos``) of every record with ``atlas-source == source_id`` in
        ``topics`` from the offsets ``since`` (a partition missing there: from its beginning) to
        the current end."""
        try:
            return await self._scan(source_id, await self._tps(topics), since, timeout)
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailable(self._describe(exc)) from None

    async def _scan(self, source_id: str, tps: list[TopicPartition], since: Offsets, timeout: float) -> set[str]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, client_id=f"{self.client_id}-recovery", group_id=None,
            enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=2 * self.max_request, fetch_max_bytes=8 * self.max_request,
            **client_kwargs(self.security),
        )
        await consumer.start()
        found: set[str] = set()
        try:
            ends = await consumer.end_offsets(tps)
            begins = await consumer.beginning_offsets(tps)
            todo: dict[TopicPartition, int] = {}
            for tp in tps:
                start = since.get(tp.topic, {}).get(tp.partition, 0)
                if start > ends[tp]:
                    log.warning("%s: %s[%d] ends at %d, before the checkpointed offset %d: the broker lost "
                                "acknowledged data, the topic was recreated, or the broker under-reports end "
                                "offsets (Tansu); reading the partition from its start", source_id, tp.topic,
                                tp.partition, ends[tp], start)
                    start = 0
                start = max(start, begins[tp])
                if start < ends[tp]:
                    todo[tp] = start
            if not todo:
                return found
            consumer.assign(list(todo))
            for tp, offset in todo.items():
                consumer.seek(tp, offset)
            wanted = source_id.encode()
            deadline = time.monotonic() + timeout
            while True:
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(f"recovery read of {source_id} did not finish within {timeout:.0f}s")
                batch = await consumer.getmany(timeout_ms=300)
                for messages in batch.values():
                    for m in messages:
                        headers = dict(m.headers or ())
                        if headers.get(HEADER_SOURCE) == wanted and HEADER_POSITION in headers:
                            found.add(headers[HEADER_POSITION].decode())
                # Stop at the listed end, but only after a fetch came back empty: a broker whose
                # ListOffsets under-reports (Tansu) must not make us miss the tail.
                if not any(batch.values()) and all([await consumer.position(tp) >= ends[tp] for tp in todo]):
                    return found
        finally:
            await consumer.stop()

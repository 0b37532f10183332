"""Read one record of a topic partition by offset: how a sink tells a replay from a topic whose
offsets started again, and a real gap from records it has not read yet."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, AsyncIterator, Literal, Sequence

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError

from ..kafka_security import KafkaSecurity, client_kwargs

__all__ = ["Probe", "ProbeResult", "ProbeStatus"]

log = logging.getLogger(__name__)

#: What a probe found at an offset (see ProbeResult).
ProbeStatus = Literal["found", "later", "out_of_range", "unknown"]


@dataclass(frozen=True)
class ProbeResult:
    """``found``: the record at the offset (``value`` decoded); ``later``: the first record after
    it (``offset`` says where: the asked offset is a gap); ``out_of_range``: below the log start
    or at/after the end; ``unknown``: the broker did not answer in time."""

    status: ProbeStatus
    offset: int | None = None
    value: Any = None
    end: int | None = None
    raw: bytes | None = None  # the value's bytes


class Probe:
    """Short-lived plain consumer (no group) over the same bootstrap servers and credentials as
    the worker (``security`` None: the process's ATLAS_KAFKA_* settings)."""

    def __init__(self, bootstrap: Sequence[str], timeout: float = 10.0, security: KafkaSecurity | None = None) -> None:
        self.bootstrap, self.timeout = list(bootstrap), timeout
        if security is None:
            from ..settings import get_settings

            security = get_settings().kafka_security
        self._client = client_kwargs(security)

    def _consumer(self, **kwargs: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False,
                                request_timeout_ms=int(self.timeout * 1000), **kwargs, **self._client)

    async def read_at(self, topic: str, partition: int, offset: int) -> ProbeResult:
        tp = TopicPartition(topic, partition)
        consumer = self._consumer(auto_offset_reset="none")
        try:
            async with asyncio.timeout(self.timeout):
                await consumer.start()
                consumer.assign([tp])
                start = (await consumer.beginning_offsets([tp]))[tp]
                end = (await consumer.end_offsets([tp]))[tp]
            if offset < start or offset >= end:
                return ProbeResult("out_of_range", end=end)
            consumer.seek(tp, offset)
            deadline = asyncio.get_running_loop().time() + self.timeout
            while asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(tp, timeout_ms=500, max_records=1)
                for msg in batch.get(tp, []):
                    value = _decode(msg.value)
                    status: ProbeStatus = "found" if msg.offset == offset else "later"
                    return ProbeResult(status, msg.offset, value, end, msg.value)
            return ProbeResult("unknown", end=end)
        except OffsetOutOfRangeError:
            return ProbeResult("out_of_range")
        except (KafkaError, OSError, asyncio.TimeoutError):
            return ProbeResult("unknown")
        finally:
            await _stop(consumer, self.timeout)

    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        """The consumer group's committed offset (read without joining the group); None when
        there is none or the broker did not answer within the timeout.

        Bounded as a whole: aiokafka retries a coordinator lookup and an offset fetch without
        limit while the broker answers with a retriable error, which must not hold up a caller
        (the scoring agent asks this on a partition's first record after an assignment)."""
        consumer = self._consumer(group_id=group)
        try:
            async with asyncio.timeout(self.timeout):
                await consumer.start()
                offset = await consumer.committed(TopicPartition(topic, partition))
            return int(offset) if offset is not None and offset >= 0 else None
        except (KafkaError, OSError, asyncio.TimeoutError) as exc:
            log.warning("%s[%d]: the committed offset of group %s could not be read (%s)", topic, partition,
                        group, type(exc).__name__)
            return None
        finally:
            await _stop(consumer, self.timeout)

    async def read_range(self, topic: str, partition: int, start: int, end: int,
                         batch: int = 5000) -> AsyncIterator[list[Any]]:
        """The records (aiokafka ConsumerRecords) at offsets ``start <= offset < end``, in
        batches of at most ``batch``."""
        tp = TopicPartition(topic, partition)
        consumer = self._consumer(auto_offset_reset="earliest", max_partition_fetch_bytes=8 * 1024 * 1024)
        try:
            async with asyncio.timeout(self.timeout):
                await consumer.start()
            consumer.assign([tp])
            consumer.seek(tp, start)
            out: list[Any] = []
            idle_until = asyncio.get_running_loop().time() + self.timeout
            while True:
                got = (await consumer.getmany(tp, timeout_ms=500, max_records=batch)).get(tp, [])
                if not got:
                    if asyncio.get_running_loop().time() > idle_until:
                        raise TimeoutError(f"{topic}[{partition}]: offsets {start}..{end - 1} could not be read")
                    continue
                idle_until = asyncio.get_running_loop().time() + self.timeout
                for msg in got:
                    if msg.offset >= end:
                        if out:
                            yield out
                        return
                    out.append(msg)
                if len(out) >= batch:
                    yield out
                    out = []
                if got[-1].offset >= end - 1:
                    if out:
                        yield out
                    return
        finally:
            await _stop(consumer, self.timeout)


async def _stop(consumer: AIOKafkaConsumer, timeout: float) -> None:
    """Stop a probe's consumer, giving up after ``timeout`` (its connections are closed with it
    when the loop collects it; a probe never waits on a broker without limit)."""
    try:
        async with asyncio.timeout(timeout):
            await consumer.stop()
    except (KafkaError, OSError, asyncio.TimeoutError) as exc:
        log.warning("a probe consumer did not stop cleanly (%s)", type(exc).__name__)


def _decode(value: bytes | None) -> Any:
    try:
        return orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None

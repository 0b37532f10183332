"""FetchConsumer's stream gate (atlas_stream/transport.py): after a rebalance, stream messages are
held until Faust has resumed the streams (its final ``flow_control.resume()`` clears every agent's
buffer), changelog messages pass at once, and nothing held is dropped or reordered."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

from atlas_stream.app import AtlasApp
from atlas_stream.transport import FetchConsumer

RAW = TP("atlas.unit.orders.raw", 0)
OTHER = TP("atlas.unit.orders.raw", 1)


def _pairs(tp: TP, *offsets: int) -> list[tuple[TP, object]]:
    return [(tp, f"{tp.topic}[{tp.partition}]@{o}") for o in offsets]


def test_stream_messages_wait_for_the_streams_and_changelog_messages_do_not() -> None:
    async def main() -> None:
        app = AtlasApp("unit-transport", broker="kafka://127.0.0.1:1", store="memory://")
        table = app.Table("counts", default=int)
        consumer = app.consumer
        assert isinstance(consumer, FetchConsumer)
        changelog = TP(table.changelog_topic.get_topic_name(), 0)
        assert consumer._is_changelog_tp(changelog) and not consumer._is_changelog_tp(RAW)

        # A rebalance starts: stream messages are held, changelog messages go on (recovery).
        await consumer.on_partitions_revoked(set())
        assert consumer._hold(_pairs(RAW, 5, 6) + _pairs(changelog, 1) + _pairs(OTHER, 9)) == _pairs(changelog, 1)
        # Flow resumed for the recovery: not yet the streams.
        app.flow_control.resume()
        assert consumer._hold(_pairs(RAW, 7)) == []
        # Faust resumes the streams: on_rebalance_complete, seek, then flow_control.resume().
        await app.on_rebalance_complete.send()
        assert not consumer.streams_open.is_set()
        app.flow_control.resume()
        assert consumer.streams_open.is_set()
        # Everything held comes first, in the order it was fetched, then the new fetch.
        assert consumer._hold(_pairs(RAW, 8)) == _pairs(RAW, 5, 6) + _pairs(OTHER, 9) + _pairs(RAW, 7, 8)
        assert consumer._hold(_pairs(RAW, 9)) == _pairs(RAW, 9)

        # A new rebalance before the streams opened forgets what was held (fetched again from
        # the committed offsets after it).
        await consumer.on_partitions_revoked({RAW})
        assert consumer._hold(_pairs(RAW, 10)) == []
        await consumer.on_partitions_revoked(set())
        await app.on_rebalance_complete.send()
        app.flow_control.resume()
        assert consumer._hold(_pairs(RAW, 3)) == _pairs(RAW, 3)

    asyncio.run(main())


def _message(tp: TP, offset: int, generation: int) -> Message:
    return Message(tp.topic, tp.partition, offset, 1.0, 0, None, b"k", b"{}", None, tp=tp, generation_id=generation)


def test_the_lane_hands_over_micro_batches_in_order_and_acks_through_faust() -> None:
    """The raw topics' lane (FetchConsumer.take / ack_all): micro-batches in fetch order, tracked
    until acked; records of an older generation and records taken while a rebalance suspends the
    flow are left out unacked (fetched again from the committed offset), and a rebalance empties
    the lane."""
    async def main() -> None:
        app = AtlasApp("unit-lane", broker="kafka://127.0.0.1:1", store="memory://")
        app.lane.maxsize = 3
        app.lane.topics = frozenset({RAW.topic})
        topic = app.topic(RAW.topic)
        app.topics.add(topic)
        await app.topics._update_indices()
        app.flow_control.resume()  # a worker starts suspended
        consumer = app.consumer
        assert isinstance(consumer, FetchConsumer) and consumer.lane is app.lane
        app.consumer_generation_id = 2

        for offset in range(4):
            app.lane.append(_message(RAW, offset, 2))
        room = asyncio.ensure_future(app.lane.wait_room())
        await asyncio.sleep(0.01)
        assert not room.done()  # four held, at most three: the fetch waits
        first = await consumer.take(2)
        await asyncio.wait_for(room, 1)
        assert [m.offset for m in first] == [0, 1]
        assert set(first) <= set(consumer.unacked) and all(m.tracked for m in first)
        rest = await consumer.take(10)
        assert [m.offset for m in rest] == [2, 3]

        consumer.ack_all(first)
        assert list(consumer._acked[RAW]) == [0, 1] and not set(first) & set(consumer.unacked)
        assert set(rest) <= set(consumer.unacked)  # not acked: not committable

        # A record of the generation before the rebalance is left out, and not acked.
        app.lane.append(_message(RAW, 4, 1))
        app.lane.append(_message(RAW, 5, 2))
        assert [m.offset for m in await consumer.take(10)] == [5]
        assert 4 not in consumer._acked[RAW]
        # While the flow is suspended nothing is handed over.
        app.flow_control.suspend()
        app.lane.append(_message(RAW, 6, 2))
        waiting = asyncio.ensure_future(consumer.take(10))
        await asyncio.sleep(0.01)
        assert not waiting.done() and len(app.lane) == 0
        app.flow_control.resume()
        app.lane.append(_message(RAW, 7, 2))
        assert [m.offset for m in await asyncio.wait_for(waiting, 1)] == [7]
        # A rebalance drops what the agent has not taken yet.
        app.lane.append(_message(RAW, 8, 2))
        await consumer.on_partitions_revoked(set())
        assert len(app.lane) == 0

    asyncio.run(main())


def test_a_full_stream_buffer_delays_the_next_fetch_only_until_it_drains(monkeypatch: Any) -> None:
    """With a partition out of the fetch because its stream buffer is full, faust-streaming
    fetched the other partitions for a whole second while the buffer drained in a fraction of it;
    the next fetch now starts as soon as a buffer drains (and at the latest after the timeout)."""
    fetched_at: list[float] = []

    async def faust_wait_next_records(self: Any, timeout: float) -> Any:
        fetched_at.append(time.monotonic())
        return {}, set()

    monkeypatch.setattr(driver.Consumer, "_wait_next_records", faust_wait_next_records)

    async def main() -> None:
        app = AtlasApp("unit-buffer-drop", broker="kafka://127.0.0.1:1", store="memory://")
        app.flow_control.resume()
        consumer = app.consumer
        consumer._active_partitions = {RAW, OTHER}
        consumer.on_buffer_full(RAW)
        start = time.monotonic()
        asyncio.get_running_loop().call_later(0.2, consumer.on_buffer_drop, RAW)
        await consumer._wait_next_records(5.0)
        assert 0.15 <= fetched_at[0] - start < 2.0  # after the drain, long before the timeout
        # Nothing buffered: straight to the fetch.
        start = time.monotonic()
        await consumer._wait_next_records(5.0)
        assert fetched_at[1] - start < 0.1
        # A buffer that stays full: the fetch goes ahead after the timeout, as before.
        consumer.on_buffer_full(RAW)
        start = time.monotonic()
        await consumer._wait_next_records(0.3)
        assert fetched_at[2] - start >= 0.25

    asyncio.run(main())

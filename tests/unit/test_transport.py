"""FetchConsumer's stream gate (atlas_stream/transport.py): after a rebalance, stream messages are
held until Faust has resumed the streams (its final ``flow_control.resume()`` clears every agent's
buffer), changelog messages pass at once, and nothing held is dropped or reordered."""

from __future__ import annotations

import asyncio

from faust.types import TP

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

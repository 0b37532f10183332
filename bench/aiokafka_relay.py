"""Baseline (a) of bench/stream_throughput.py: the speed limit of the client library itself.

    python bench/aiokafka_relay.py BOOTSTRAP GROUP SOURCE TARGET

A plain aiokafka loop, no Faust: consume a batch, decode and re-encode every JSON value with
orjson, produce each with acks=all, wait for the acknowledgements, commit the batch's offsets.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer


async def relay(bootstrap: str, group: str, source: str, target: str) -> None:
    consumer = AIOKafkaConsumer(source, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await consumer.start()
    await producer.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            futures = [await producer.send(target, orjson.dumps(orjson.loads(m.value)), key=m.key)
                       for msgs in batch.values() for m in msgs]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await producer.stop()
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(relay(*sys.argv[1:5]))

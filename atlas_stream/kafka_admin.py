"""Small Kafka admin helpers for producers outside the Faust worker (sources, samples)."""

from __future__ import annotations

from typing import Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

__all__ = ["ensure_topics"]


async def ensure_topics(bootstrap: list[str], names: Iterable[str], partitions: int, replication: int) -> list[str]:
    """Create the topics that do not exist yet, with Atlas Stream's partition count.

    A producer that writes first would otherwise let the broker auto-create a raw topic with its
    default partition count, which the worker's co-partitioned tables refuse. Returns the names
    created.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [n for n in dict.fromkeys(names) if n not in existing]
        if wanted:
            try:
                await admin.create_topics([NewTopic(n, partitions, replication) for n in wanted])
            except TopicAlreadyExistsError:
                pass  # created meanwhile by the worker or another producer
        return wanted
    finally:
        await admin.close()

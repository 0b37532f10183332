"""Small Kafka admin helpers for producers outside the Faust worker (sources, samples)."""

from __future__ import annotations

from typing import Any, Iterable

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from .kafka_security import KafkaSecurity, client_kwargs

__all__ = ["ensure_topics", "partitions_of"]


async def ensure_topics(bootstrap: list[str], names: Iterable[str], partitions: int, replication: int,
                        security: KafkaSecurity | None = None) -> list[str]:
    """Create the topics that do not exist yet, with Atlas Stream's partition count.

    A producer that writes first would otherwise let the broker auto-create a raw topic with its
    default partition count, which the worker's co-partitioned tables refuse. Returns the names
    created.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **client_kwargs(security))
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


async def partitions_of(consumer: Any, topic: str) -> set[int]:
    """The partition ids of ``topic`` (empty when it does not exist), asked of the cluster now.

    ``AIOKafkaConsumer.partitions_for_topic`` answers from the client's cached metadata, which on
    a consumer that only ``assign()``s holds no topics at all: aiokafka bootstraps with a
    metadata request listing no topics, which Apache Kafka answers with none (the PyPI imitation
    brokers answered with every topic, which hid this). aiokafka has no public call that fetches
    one topic's partitions without subscribing, so this asks for all topics' metadata.
    """
    cluster = await consumer._client.fetch_all_metadata()
    return set(cluster.partitions_for_topic(topic) or ())

"""The development Apache Kafka broker: ``python -m atlas_stream broker --kind kafka``.

``jars`` checks Java and resolves the pinned ``pom.xml`` from Maven Central once into
``~/.cache/atlas-stream/``; ``cluster`` formats KRaft log directories once and runs one or more
combined broker+controller nodes. ``python -m atlas_stream.devkafka resolve`` fetches the jars
ahead of time (``.ci/setup`` does).
"""

from __future__ import annotations

from .cluster import KafkaCluster
from .jars import KAFKA_VERSION, cache_dir, java_problem, kafka_available, resolve_jars

__all__ = ["KAFKA_VERSION", "KafkaCluster", "cache_dir", "java_problem", "kafka_available", "resolve_jars"]

"""The Kafka poller (``source_type: kafka``): an existing topic -> the dataset's raw topic, exactly once."""

from __future__ import annotations

from ...model import Contract
from ...settings import Settings
from ..interface import PolledSource
from .source import KafkaConfig, KafkaSource, build_kafka_sources

__all__ = ["KafkaConfig", "KafkaSource", "build_kafka_sources", "sources_for"]


def sources_for(contract: Contract, settings: Settings, dataset: str | None,
                once: bool) -> list[tuple[PolledSource, float]]:
    """The registry's entry (:mod:`..kinds`). Datasets consumed directly from their topic are
    checked and explained, and have no poller: the list may be empty."""
    return build_kafka_sources(contract, settings, dataset)

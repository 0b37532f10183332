"""Every Kafka topic name in one place (these names are part of the public interface)."""

from __future__ import annotations

from typing import Iterable

from .model import TIERS, Contract

__all__ = [
    "EVENTS_TOPIC",
    "SCHEMA_REQUESTS_TOPIC",
    "SOURCE_STATUS_TOPIC",
    "dataset_from_raw_topic",
    "dlq_topic",
    "raw_topic",
    "raw_topics",
    "tier_topic",
]

#: Events (schema registered or refused, drift seen, ...), JSON objects with a ``type``.
EVENTS_TOPIC = "atlas.events"
#: Schema registration requests, keyed by subject; the registry agent answers with events.
SCHEMA_REQUESTS_TOPIC = "atlas.schemas.requests"
#: Status reports of sources (issue: sources).
SOURCE_STATUS_TOPIC = "atlas.sources.status"


def raw_topic(group: str, dataset: str) -> str:
    """Raw input of a dataset: plain JSON objects that any Kafka producer can write."""
    return f"atlas.{group}.{dataset}.raw"


def tier_topic(group: str, dataset: str, tier: str) -> str:
    """Scored output of a dataset for one tier (gold, silver, bronze, rejected)."""
    if tier not in TIERS:
        raise ValueError(f"unknown tier {tier!r}")
    return f"atlas.{group}.{dataset}.{tier}"


def dlq_topic(group: str) -> str:
    """Dead letters of a group: values that are not JSON objects, or cannot be published."""
    return f"atlas.{group}.dlq"


def raw_topics(contracts: Iterable[Contract]) -> list[str]:
    return [raw_topic(c.group, ds.name) for c in contracts for ds in c.datasets]


def dataset_from_raw_topic(topic: str) -> tuple[str, str] | None:
    """``atlas.<group>.<dataset>.raw`` -> (group, dataset); None for other names.

    Group and dataset names cannot contain dots (the contract schema forbids it), so the split
    is unambiguous.
    """
    parts = topic.split(".")
    if len(parts) != 4 or parts[0] != "atlas" or parts[3] != "raw":
        return None
    return parts[1], parts[2]

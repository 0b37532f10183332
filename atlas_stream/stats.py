"""Statistics keys and the table type that stores them next to the raw partition they count."""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

import faust

__all__ = ["MINUTE", "PartitionKeyedTable", "StatsBatch", "stat_key", "split_key"]

MINUTE = 60


def stat_key(partition: int, subject: str, *rest: object) -> str:
    """``<raw partition>|<subject>|...``: the partition comes first so that the table can put the
    key in the same changelog partition, whichever event is current."""
    return "|".join((str(partition), subject, *map(str, rest)))


def split_key(key: str, parts: int) -> list[str]:
    """Inverse of stat_key for a key of ``parts`` fields (the last field may contain ``|``)."""
    return key.split("|", parts - 1)


class PartitionKeyedTable(faust.Table):  # type: ignore[misc]
    """A table whose keys start with the raw partition they describe.

    Faust normally writes a key to the changelog partition of the event being processed; here
    the partition is read from the key, so counts aggregated over a batch of events from several
    partitions still land next to the raw partition they count, and a worker that takes over that
    partition recovers exactly its keys.
    """

    def partition_for_key(self, key: Any) -> int:
        return int(str(key).split("|", 1)[0])

    def _new_store_by_url(self, url: Any) -> Any:
        # rocksdb://: the same store, with each key in the database of its own partition (see
        # atlas_stream/table_store.py); every other store (memory://) as Faust builds it.
        if str(url).startswith("rocksdb:"):
            from .table_store import PartitionKeyedRocksDBStore

            return PartitionKeyedRocksDBStore(
                url, self.app, self, table_name=self.name, key_type=self.key_type,
                key_serializer=self.key_serializer, value_serializer=self.value_serializer,
                value_type=self.value_type, loop=self.loop, options=self.options)
        return super()._new_store_by_url(url)


class StatsBatch:
    """Counter deltas gathered over a batch of events, written once per key."""

    def __init__(self) -> None:
        self.tiers: Counter[str] = Counter()
        self.minutes: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.drift: Counter[str] = Counter()
        self.last_seen: dict[str, float] = {}

    def add(self, partition: int, subject: str, tier: str, failures: Iterable[str],
            drift: Iterable[str], timestamp: float) -> None:
        self.tiers[stat_key(partition, subject, tier)] += 1
        minute = int(timestamp // MINUTE * MINUTE)
        self.minutes[stat_key(partition, subject, tier, minute)] += 1
        for failure in failures:
            self.failures[stat_key(partition, subject, failure)] += 1
        for name in drift:
            self.drift[stat_key(partition, subject, name)] += 1
        seen = stat_key(partition, subject)
        self.last_seen[seen] = max(timestamp, self.last_seen.get(seen, 0.0))

"""Stream statistics. Every key starts with the raw partition it counts (atlas_stream.stats), so
each worker writes only its own keys and totals are sums over partitions, exact with any number
of workers."""

from __future__ import annotations

from atlas_stream.app import app, settings
from atlas_stream.stats import PartitionKeyedTable


def _table(name: str, default: type, help: str) -> PartitionKeyedTable:
    table = PartitionKeyedTable(app, name=name, default=default, partitions=settings.topic_partitions,
                                key_type=str, beacon=app.tables.beacon, help=help)
    app.tables.add(table)
    return table


#: "<partition>|<subject>|<tier>" -> records (tier: gold, silver, bronze, rejected or dlq).
tier_counts = _table("tier_counts", int, "records per dataset and tier")

#: "<partition>|<subject>|<tier>|<minute start, epoch s>" -> records in that tumbling minute of
#: broker time; minutes older than two hours are deleted by the scoring agent.
tier_counts_per_minute = _table("tier_counts_per_minute", int, "records per dataset, tier and minute")

#: "<partition>|<subject>|<failure>" -> records that failed that check.
failure_counts = _table("failure_counts", int, "failures per dataset and check")

#: "<partition>|<subject>" -> broker timestamp (epoch seconds) of the newest record scored.
last_seen = _table("last_seen", float, "newest record per dataset")

#: "<partition>|<subject>|<field>" -> records carrying that field outside the schema.
schema_drift = _table("schema_drift", int, "unknown fields per dataset")

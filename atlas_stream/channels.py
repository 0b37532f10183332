"""Faust topic objects for every topic the app reads or writes (names from atlas_stream.topics)."""

from __future__ import annotations

from faust.types import TopicT

from .app import app, catalog
from .topics import EVENTS_TOPIC, SCHEMA_REQUESTS_TOPIC, SOURCE_STATUS_TOPIC

__all__ = ["events", "output_topics", "raw_records", "schema_requests", "source_statuses"]


def _bytes_topic(*names: str, partitions: int | None = None, declare: bool = False) -> TopicT:
    # Values stay bytes end to end: we parse raw JSON ourselves (bad input goes to the DLQ
    # instead of tripping Faust's decoder) and encode outputs with orjson.
    # internal=True makes Faust create the topic (if missing) before it subscribes, with our
    # partition count: the stats tables are co-partitioned with the raw topics.
    return app.topic(
        *names, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
        partitions=partitions, internal=declare,
    )


#: Every dataset's raw topic, consumed by one agent.
raw_records = _bytes_topic(*(rt.raw_topic for rt in catalog.datasets), declare=True)
#: Registration requests; one partition, like the GlobalTable it feeds.
schema_requests = _bytes_topic(SCHEMA_REQUESTS_TOPIC, partitions=1, declare=True)
#: The event log; the event_log table is co-partitioned with it.
events = _bytes_topic(EVENTS_TOPIC, declare=True)
#: Source status reports, keyed by source id; the source_status table is co-partitioned with it.
source_statuses = _bytes_topic(SOURCE_STATUS_TOPIC, declare=True)
#: Tier and DLQ topics by name.
output_topics: dict[str, TopicT] = {name: _bytes_topic(name) for name in catalog.output_topics()}

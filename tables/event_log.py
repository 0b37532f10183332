"""The newest events of the event log (``atlas.events``), for ``/events/``."""

from __future__ import annotations

from atlas_stream.app import app, settings
from atlas_stream.stats import PartitionKeyedTable

#: "<partition>|<offset, 15 digits>" -> the event object with its "partition" and "offset".
#: Co-partitioned with atlas.events; the recording agent keeps the newest EVENTS_KEPT per partition.
event_log = PartitionKeyedTable(app, name="event_log", default=None, partitions=settings.topic_partitions,
                                key_type=str, beacon=app.tables.beacon, help="newest events per partition")
app.tables.add(event_log)

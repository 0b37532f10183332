"""The latest status each source reported (``atlas.sources.status``), for ``/sources/``."""

from __future__ import annotations

from atlas_stream.app import app, settings
from atlas_stream.stats import PartitionKeyedTable

#: "<partition>|<source id>" -> the source's latest status object.
source_status = PartitionKeyedTable(app, name="source_status", default=None, partitions=settings.topic_partitions,
                                    key_type=str, beacon=app.tables.beacon, help="latest status per source")
app.tables.add(source_status)

"""The schema registry: one entry per subject ``<group>.<dataset>``, backed by a changelog."""

from __future__ import annotations

from atlas_stream.app import app

# Every worker needs every subject to score records, so this is a GlobalTable. One partition
# and recovery_buffer_size=1 are Faust's documented settings for GlobalTables with several
# workers (faust/tables/globaltable.py); the schema-requests topic has one partition to match.
schema_registry = app.GlobalTable(
    "schema_registry",
    default=None,
    partitions=1,
    recovery_buffer_size=1,
    key_type=str,
    help="subject -> {subject, compatibility, versions: [{version, id, schema, registered_at}]}",
)

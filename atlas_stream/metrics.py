"""Prometheus metrics of this worker process (exposed at ``/metrics`` by the web endpoints).

Counters count what this process did since it started (Prometheus sums them over workers and
handles restarts); the source and consumer-lag gauges are collected at scrape time
(atlas_stream.web.prom).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

__all__ = [
    "CHECK_FAILURES",
    "RECORDS",
    "SCHEMA_DRIFT",
    "SINK_COMMITS",
    "SINK_COMMIT_SECONDS",
    "SINK_ERRORS",
    "SINK_ROWS",
]

#: Files (Parquet) or bulk requests (Elasticsearch) committed.
SINK_COMMITS = Counter("atlas_sink_commits_total", "Sink commits", ["sink", "dataset", "tier"])
#: Rows written by committed files or successful bulk requests.
SINK_ROWS = Counter("atlas_sink_rows_total", "Rows committed by the sinks", ["sink", "dataset", "tier"])
#: Time from a window's first record reaching the sink to its data being committed.
SINK_COMMIT_SECONDS = Histogram(
    "atlas_sink_commit_latency_seconds", "Sink commit latency", ["sink"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
)
#: Failed attempts to write (each retried until it succeeds).
SINK_ERRORS = Counter("atlas_sink_errors_total", "Sink write attempts that failed", ["sink"])

#: Records scored by this worker, per dataset (subject) and outcome (a tier, or dlq).
RECORDS = Counter("atlas_records_total", "Records scored, per dataset and tier", ["dataset", "tier"])
#: Failed checks, per dataset and check (``completeness:<field>``, ``rule:<name>``, ...).
CHECK_FAILURES = Counter("atlas_check_failures_total", "Failed quality checks, per dataset and check",
                         ["dataset", "check"])
#: Records carrying a field outside the schema, per dataset and field.
SCHEMA_DRIFT = Counter("atlas_schema_drift_total", "Records with a field outside the schema",
                       ["dataset", "field"])

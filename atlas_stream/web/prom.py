"""Scrape-time Prometheus gauges: source status and consumer lag (values come from callables)."""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["WorkerCollector"]

#: Source states that count as up.
UP_STATES = ("running", "idle")


class WorkerCollector(Collector):
    """Gauges read when Prometheus scrapes: the latest status of the sources whose status
    partitions this worker owns (so the sum over workers counts each source once), and this
    worker's consumer lag per topic-partition."""

    def __init__(self, sources: Callable[[], Iterable[Mapping[str, Any]]],
                 lag: Callable[[], Mapping[str, Mapping[int, int]]]) -> None:
        self.sources = sources
        self.lag = lag

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = GaugeMetricFamily("atlas_source_rows", "Records a source reported publishing (latest status)",
                                 labels=["source", "kind"])
        lag = GaugeMetricFamily("atlas_source_lag", "Lag a source reported, in its own unit",
                                labels=["source", "kind"])
        up = GaugeMetricFamily("atlas_source_up", "1 when the source's latest state is running or idle",
                               labels=["source", "kind"])
        for doc in self.sources():
            labels = [str(doc.get("source")), str(doc.get("kind") or "")]
            if isinstance(doc.get("rows"), (int, float)):
                rows.add_metric(labels, float(doc["rows"]))
            if isinstance(doc.get("lag"), (int, float)):
                lag.add_metric(labels, float(doc["lag"]))
            up.add_metric(labels, 1.0 if doc.get("state") in UP_STATES else 0.0)
        consumer = GaugeMetricFamily("atlas_consumer_lag", "Messages between this worker's read position and "
                                     "the end of the partition", labels=["topic", "partition"])
        for topic, partitions in sorted(self.lag().items()):
            for partition, behind in sorted(partitions.items()):
                consumer.add_metric([topic, str(partition)], float(behind))
        yield from (rows, lag, up, consumer)

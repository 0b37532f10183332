"""Faust's Prometheus sensor, with each label set's metric looked up once.

faust-streaming's ``PrometheusMonitor`` calls ``labels(...)`` on every message fetched and
received and every stream event, and rebuilds the stream's label with a regular expression each time: about a tenth of the
worker's CPU per record (docs/stream-speed.md). This subclass keeps the same families, labels and
values (the ``faust_*`` metrics at ``/metrics``, docs/web.md) and caches the labelled children.
"""

from __future__ import annotations

from typing import Any, Optional

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP

__all__ = ["CachedPrometheusMonitor", "faust_monitor"]


class CachedPrometheusMonitor(PrometheusMonitor):  # type: ignore[misc]
    """``PrometheusMonitor`` whose per-message and per-event hooks reuse labelled children."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._by_topic: dict[str, Any] = {}
        self._by_tp: dict[TP, Any] = {}
        self._end_by_tp: dict[TP, Any] = {}
        self._by_stream: dict[Any, Any] = {}

    def on_message_in(self, tp: TP, offset: int, message: Any) -> None:
        Monitor.on_message_in(self, tp, offset, message)
        metrics = self._metrics
        metrics.messages_received.inc()
        metrics.active_messages.inc()
        per_topic = self._by_topic.get(tp.topic)
        if per_topic is None:
            per_topic = self._by_topic[tp.topic] = metrics.messages_received_per_topics.labels(topic=tp.topic)
        per_topic.inc()
        offset_gauge = self._by_tp.get(tp)
        if offset_gauge is None:
            offset_gauge = self._by_tp[tp] = metrics.messages_received_per_topics_partition.labels(
                topic=tp.topic, partition=tp.partition)
        offset_gauge.set(offset)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        # Faust calls this for every fetched record (its getmany), not once per fetch.
        Monitor.track_tp_end_offset(self, tp, offset)
        end_gauge = self._end_by_tp.get(tp)
        if end_gauge is None:
            end_gauge = self._end_by_tp[tp] = self._metrics.topic_partition_end_offset.labels(
                topic=tp.topic, partition=tp.partition)
        end_gauge.set(offset)

    def on_stream_event_in(self, tp: TP, offset: int, stream: Any, event: Any) -> Optional[dict[str, Any]]:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        metrics = self._metrics
        metrics.total_events.inc()
        metrics.total_active_events.inc()
        per_stream = self._by_stream.get(stream)
        if per_stream is None:
            per_stream = self._by_stream[stream] = metrics.total_events_per_stream.labels(
                stream=f"stream.{self._stream_label(stream)}.events")
        per_stream.inc()
        return state  # type: ignore[no-any-return]


def faust_monitor() -> CachedPrometheusMonitor:
    """Faust's Prometheus sensor: commit, send, rebalance and event latencies, offsets and
    table operations as ``faust_*`` families in the default registry, so ``/metrics`` serves
    them next to Atlas Stream's own (atlas_stream/metrics.py)."""
    from prometheus_client import REGISTRY

    return CachedPrometheusMonitor(metrics=FaustMetrics.create(REGISTRY, "faust"))

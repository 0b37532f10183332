"""The worker's Prometheus sensor (atlas_stream/faust_monitor.py) caches its labelled children;
what it exports must be exactly what faust-streaming's own PrometheusMonitor exports for the same
calls (the ``faust_*`` families at ``/metrics``)."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest

from atlas_stream.faust_monitor import CachedPrometheusMonitor


class _Message:
    time_in: Any = None


class _Owner:
    pass


class _Stream:
    task_owner = _Owner()
    shortlabel = "Stream: score_raw_records"

    def __str__(self) -> str:
        return "stream-1"


def _exported(monitor_type: type[Any]) -> list[str]:
    registry = CollectorRegistry()
    monitor = monitor_type(metrics=FaustMetrics.create(registry, "faust"))
    stream = _Stream()
    for i in range(50):
        tp = TP(f"atlas.unit.t{i % 3}.raw", i % 4)
        monitor.track_tp_end_offset(tp, 1000 + i)
        monitor.on_message_in(tp, i, _Message())
        monitor.on_stream_event_in(tp, i, stream, None)
    monitor.track_tp_end_offset(TP("atlas.unit.t0.raw", 0), 5)  # a gauge goes down too
    lines = generate_latest(registry).decode().splitlines()
    return sorted(line for line in lines if not line.startswith("#") and "_created" not in line)


def test_the_cached_sensor_exports_what_faust_s_exports() -> None:
    ours, faust_own = _exported(CachedPrometheusMonitor), _exported(PrometheusMonitor)
    assert ours == faust_own
    assert any(line.startswith("faust_topic_partition_end_offset{") for line in ours)
    assert any(line.startswith("faust_messages_received_per_topics_partition{") for line in ours)

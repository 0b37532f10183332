"""The Faust application, its settings, and the contract catalog it serves."""

from __future__ import annotations

import logging
from typing import Any

import faust

from .faust_monitor import faust_monitor
from .kafka_security import faust_credentials
from .pipeline import Catalog, load_catalog
from .settings import Settings, get_settings

__all__ = ["AtlasApp", "app", "catalog", "dev_profile", "faust_monitor", "faust_settings", "settings"]

log = logging.getLogger(__name__)


def dev_profile(s: Settings) -> dict[str, Any]:
    """Workarounds for the development brokers (docs/brokers.md). Empty for a real cluster.

    Applied only with ATLAS_EMBEDDED_BROKER=1 and a PyPI imitation (noida or tansu): with real
    Kafka, development or not, the worker runs the production settings.
    """
    if not s.embedded_broker or s.dev_broker in (None, "kafka"):
        return {}
    if s.dev_broker == "tansu":
        return {
            # Tansu's ListOffsets(latest) is wrong for multi-record batches, and Faust uses it as
            # the changelog high-water mark: one record per batch keeps table recovery exact.
            "producer_max_batch_size": 1,
            # Group joins wait about half the session timeout; failover in ~9 s.
            "broker_session_timeout": 6.0,
            "broker_heartbeat_interval": 1.0,
            "broker_rebalance_timeout": 6.0,
            # No idempotent/transactional producer (InitProducerId v0 only).
            "processing_guarantee": "at_least_once",
            # Tansu keeps everything in memory: local table state would outlive the broker's and
            # crash recovery with ConsistencyError, so tables live in memory too.
            "store": "memory://",
        }
    return {}  # noida-db works with Faust's defaults


def faust_settings(s: Settings) -> dict[str, Any]:
    """Faust configuration derived from Atlas Stream settings."""
    conf: dict[str, Any] = {
        "broker": s.broker,
        # The web views sit in the package but declare pages, so they are discovered too.
        "autodiscover": ["agents", "tables", "atlas_stream.web.views", "atlas_stream.web.schema_views",
                         "atlas_stream.web.schema_config_views", "atlas_stream.web.site"],
        "origin": "atlas_stream",
        "store": s.store,
        "datadir": str(s.data_dir / "faust"),
        "web_enabled": True,
        "web_port": s.web_port,
        "web_host": s.web_host,
        "web_bind": s.web_host,
        "topic_partitions": s.topic_partitions,
        "topic_replication_factor": s.topic_replication,
        "processing_guarantee": s.processing_guarantee,
        "producer_acks": -1,  # acks=all: a tier message is durable before its raw offset commits
        # Room for the largest message we produce plus protocol overhead.
        "producer_max_request_size": s.max_message_bytes + 64 * 1024,
        "consumer_auto_offset_reset": "earliest",
        # Kafka's own default (45 s) rather than Faust's 60 s; heartbeats at a tenth of it, so a
        # crashed worker's partitions move on after the timeout and a live one is never dropped.
        "broker_session_timeout": s.broker_session_timeout,
        "broker_heartbeat_interval": min(3.0, s.broker_session_timeout / 10),
        "table_cleanup_interval": 30.0,
        "cython_optimizations": True,
        # TLS/SASL for Faust's consumer, producer and admin client (ATLAS_KAFKA_*); None: plaintext.
        "broker_credentials": faust_credentials(s.kafka_security),
    }
    conf.update(dev_profile(s))
    return conf


class AtlasApp(faust.App):  # type: ignore[misc]
    """faust.App on :class:`~atlas_stream.transport.FetchTransport` (no per-message task switches),
    with a :class:`~atlas_stream.transport.Lane` for the topics of an agent that takes micro-batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from .transport import Lane

        super().__init__(*args, **kwargs)
        self.lane = Lane(self.conf.stream_buffer_maxsize)

    def _new_transport(self) -> Any:
        from .transport import FetchTransport

        return FetchTransport(self.conf.broker_consumer, self)


settings = get_settings()
catalog: Catalog = load_catalog(settings.metadata_dir)
app = AtlasApp(settings.app_id, monitor=faust_monitor(), **faust_settings(settings))


@app.task
async def log_at_the_chosen_level() -> None:
    """Put the root logger back at the worker's ``-l`` level once the worker runs.

    At ``-l warn`` and above, faust-streaming 0.15.3's worker sets the root logger to DEBUG to
    turn its start-up spinner and never restores it, so every ``log.debug`` in Faust and aiokafka
    (several per message sent) builds a record that no handler prints: 7 to 10 % of a busy
    worker's time (docs/stream-speed.md).
    """
    root = logging.getLogger()
    levels = [h.level for h in root.handlers if type(h).__name__ != "SpinnerHandler"]
    if levels and root.level < min(levels):
        root.setLevel(min(levels))

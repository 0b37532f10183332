"""The only module that reads os.environ: every ATLAS_* setting, typed and documented."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Mapping

from .errors import SettingsError
from .kafka_security import KafkaSecurity
from .redact import redact_url

__all__ = ["DEV_BROKERS", "Settings", "default_store", "get_settings"]

DEV_BROKERS = ("kafka", "noida", "tansu")


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")


def _int(name: str, raw: str, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a whole number") from None
    if value < minimum:
        raise SettingsError(f"{name}={raw!r}: must be at least {minimum}")
    return value


def _float(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r}: expected a number of seconds") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r}: must be positive")
    return value


def _log_level(raw: str) -> str:
    # Faust's -l takes crit/error/warn/info/debug; accept the logging module's spellings too.
    value = {"warning": "warn", "critical": "crit"}.get(raw.strip().lower(), raw.strip().lower())
    if value not in ("crit", "error", "warn", "info", "debug"):
        raise SettingsError(f"ATLAS_LOG_LEVEL={raw!r}: expected debug, info, warn, error or crit")
    return value


def _lake_uri(raw: str) -> str:
    # A bare path means a local folder; keep URIs (file://, s3://, hdfs://, webhdfs://) as given.
    if "://" in raw:
        return raw
    return Path(raw).expanduser().resolve().as_uri()


@dataclass(frozen=True)
class Settings:
    """Atlas Stream configuration. Defaults work on a fresh machine with the development broker.

    Fixed names (public interface): ATLAS_BROKER, ATLAS_METADATA_DIR, ATLAS_DATA_DIR,
    ATLAS_LAKE_URI, ATLAS_ES_URL, ATLAS_WEB_PORT, ATLAS_EMBEDDED_BROKER, ATLAS_KAFKA_SECURITY_PROTOCOL,
    ATLAS_KAFKA_SASL_MECHANISM, ATLAS_KAFKA_SASL_USERNAME, ATLAS_KAFKA_SASL_PASSWORD,
    ATLAS_KAFKA_SSL_CAFILE, ATLAS_KAFKA_SSL_CERTFILE, ATLAS_KAFKA_SSL_KEYFILE, ATLAS_ES_API_KEY,
    ATLAS_ES_USERNAME, ATLAS_ES_PASSWORD, ATLAS_ES_CA_CERTS, ATLAS_ES_CLOUD_ID.
    """

    #: ATLAS_BROKER: Kafka bootstrap servers as Faust URLs, ``;``-separated for several.
    broker: str = "kafka://127.0.0.1:9092"
    #: ATLAS_METADATA_DIR: folder of contracts (``*.json``).
    metadata_dir: Path = Path("metadata")
    #: ATLAS_DATA_DIR: local state (Faust tables, development broker data, checkpoints).
    data_dir: Path = Path(".atlas")
    #: ATLAS_LAKE_URI: root of the data lake (file://, s3://, hdfs://, webhdfs://).
    lake_uri: str = ""
    #: ATLAS_ES_URL: Elasticsearch URL; unset means no Elasticsearch sink.
    es_url: str | None = field(default=None, repr=False)  # may hold a password: see describe()
    #: ATLAS_WEB_PORT: Faust web server port (stats, registry, dashboard).
    web_port: int = 6066
    #: ATLAS_WEB_HOST: address the web server binds.
    web_host: str = "127.0.0.1"
    #: ATLAS_EMBEDDED_BROKER=1: talk to the development broker and apply its workarounds.
    embedded_broker: bool = False
    #: ATLAS_DEV_BROKER: which development broker ``up``, ``broker`` and the tests start:
    #: ``kafka`` (real Apache Kafka; needs Java 17+), or the PyPI fallbacks ``noida`` (persistent,
    #: transactions; group changes break) and ``tansu`` (in memory; failover works). Unset:
    #: ``kafka`` when Java is there, else ``noida`` with a note saying why.
    dev_broker: str | None = None
    #: ATLAS_APP_ID: Faust application id (consumer group, changelog topic prefix).
    app_id: str = "atlas-stream"
    #: ATLAS_TOPIC_PARTITIONS: partitions of the topics Atlas Stream creates.
    topic_partitions: int = 4
    #: ATLAS_TOPIC_REPLICATION: replication factor of the topics Atlas Stream creates.
    topic_replication: int = 1
    #: ATLAS_PROCESSING_GUARANTEE: ``at_least_once`` or ``exactly_once`` (needs a broker with
    #: transactions; sinks deduplicate by raw position either way).
    processing_guarantee: str = "at_least_once"
    #: ATLAS_BROKER_SESSION_TIMEOUT: seconds without a heartbeat before the group coordinator
    #: gives a worker's partitions to the others (Kafka's session.timeout.ms; the broker's
    #: group.min/max.session.timeout.ms bound it). Lower means faster failover after a crash.
    broker_session_timeout: float = 45.0
    #: ATLAS_MAX_MESSAGE_BYTES: largest message Atlas Stream produces; bigger outputs go to the DLQ.
    max_message_bytes: int = 1_000_000
    #: ATLAS_STORE: Faust table store URL, ``rocksdb://`` (tables on disk in ATLAS_DATA_DIR: a
    #: restart replays only the changelog the disk lacks) or ``memory://`` (every start replays the
    #: whole changelog). Unset: ``rocksdb://`` with at_least_once, ``memory://`` with exactly_once
    #: (Faust's RocksDB store writes a transaction's updates before it commits: after a crash the
    #: disk would keep aborted updates) and when rocksdict is not installed.
    store: str = "memory://"
    #: ATLAS_LOG_LEVEL: worker log level.
    log_level: str = "info"
    #: ATLAS_GATEWAY_PORT: WebSocket gateway port.
    gateway_port: int = 8765
    #: ATLAS_GATEWAY_HOST: address the WebSocket gateway binds.
    gateway_host: str = "127.0.0.1"
    #: ATLAS_GATEWAY_MAX_FRAME_BYTES: largest WebSocket frame the gateway accepts (1 MiB).
    gateway_max_frame_bytes: int = 1_048_576
    #: ATLAS_GATEWAY_MAX_FRAME_RECORDS: most JSON objects in one gateway frame.
    gateway_max_frame_records: int = 10_000
    #: ATLAS_GATEWAY_MAX_IN_FLIGHT: records the gateway holds unacknowledged, all clients together.
    gateway_max_in_flight: int = 100_000
    #: ATLAS_GATEWAY_SEND_TIMEOUT: seconds a frame may wait for the broker before an error reply.
    gateway_send_timeout: float = 30.0
    #: ATLAS_GATEWAY_DRAIN_SECONDS: on SIGTERM, how long connections keep being served.
    gateway_drain_seconds: float = 5.0
    #: ATLAS_SINK_FLUSH_SECONDS: sink window length.
    sink_flush_seconds: float = 10.0
    #: ATLAS_SINK_ROTATE_SECONDS: the longest a lake file stays open.
    sink_rotate_seconds: float = 300.0
    #: ATLAS_ADMIN_TOKEN: bearer token for web writes (``PUT /schemas/config/<subject>``); unset
    #: or empty refuses every write with 401. Never logged (excluded from :meth:`describe`).
    admin_token: str | None = field(default=None, repr=False)
    #: ATLAS_SINK_FLUSH_ROWS: a window also closes when it holds this many rows.
    sink_flush_rows: int = 50_000
    #: ATLAS_SINK_FLUSH_BYTES: ... or this many bytes of tier messages.
    sink_flush_bytes: int = 32 * 1024 * 1024
    #: ATLAS_SINK_ROTATE_ROWS: a lake file is committed once it holds this many rows.
    sink_rotate_rows: int = 1_000_000
    #: ATLAS_SINK_ROTATE_BYTES: ... or once it is about this large.
    sink_rotate_bytes: int = 256 * 1024 * 1024
    #: ATLAS_SINK_ENABLED=0: this worker runs no sink agents (scoring only).
    sink_enabled: bool = True
    #: ATLAS_S3_ENDPOINT: S3 endpoint override (MinIO, moto, ...) for an s3:// lake. Credentials
    #: and region come from the standard AWS environment (AWS_ACCESS_KEY_ID, ...).
    s3_endpoint: str | None = None
    #: ATLAS_ES_BULK_DOCS / ATLAS_ES_BULK_BYTES / ATLAS_ES_LINGER_SECONDS: Elasticsearch batches.
    es_bulk_docs: int = 500
    es_bulk_bytes: int = 5 * 1024 * 1024
    es_linger_seconds: float = 1.0
    #: ATLAS_SPARK_MASTER: the Spark master of ``batch --engine spark``: ``local[*]`` (this
    #: machine, pyspark from PyPI and Java 17+), ``local[N]``, or a cluster URL
    #: (``spark://host:7077``, ``yarn``, ``k8s://...``).
    spark_master: str = "local[*]"
    #: TLS/SASL of every Kafka client (worker, gateway, pollers, probes, admin), from
    #: ATLAS_KAFKA_SECURITY_PROTOCOL (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL),
    #: ATLAS_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), ATLAS_KAFKA_SASL_USERNAME,
    #: ATLAS_KAFKA_SASL_PASSWORD (never logged), ATLAS_KAFKA_SSL_CAFILE (the brokers' CA; unset: the
    #: system's), ATLAS_KAFKA_SSL_CERTFILE and ATLAS_KAFKA_SSL_KEYFILE (mutual TLS).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    #: ATLAS_ES_API_KEY: Elasticsearch API key (the base64 ``id:key`` form); never logged.
    es_api_key: str | None = field(default=None, repr=False)
    #: ATLAS_ES_USERNAME / ATLAS_ES_PASSWORD: Elasticsearch basic authentication (password never logged).
    es_username: str | None = None
    es_password: str | None = field(default=None, repr=False)
    #: ATLAS_ES_CA_CERTS: PEM file of the CA that signed Elasticsearch's certificate.
    es_ca_certs: str | None = None
    #: ATLAS_ES_CLOUD_ID: Elastic Cloud deployment id (instead of, or besides, ATLAS_ES_URL).
    es_cloud_id: str | None = None
    #: ATLAS_S3_REGION: region of an s3:// lake (unset: AWS_REGION / the AWS configuration).
    s3_region: str | None = None
    #: ATLAS_S3_CA_FILE: PEM CA bundle that verifies the S3 endpoint's TLS certificate.
    s3_ca_file: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        get = env.get
        dev_broker = get("ATLAS_DEV_BROKER", "").strip().lower() or None
        if dev_broker is not None and dev_broker not in DEV_BROKERS:
            raise SettingsError(f"ATLAS_DEV_BROKER={dev_broker!r}: expected one of {', '.join(DEV_BROKERS)}")
        guarantee = get("ATLAS_PROCESSING_GUARANTEE", "at_least_once").strip().lower()
        if guarantee not in ("at_least_once", "exactly_once"):
            raise SettingsError(f"ATLAS_PROCESSING_GUARANTEE={guarantee!r}: expected at_least_once or exactly_once")
        broker = get("ATLAS_BROKER", cls.broker).strip()
        if not broker:
            raise SettingsError("ATLAS_BROKER is empty: set it to e.g. kafka://127.0.0.1:9092")
        es_url = get("ATLAS_ES_URL", "").strip() or None
        kafka = KafkaSecurity.build({key: get(env_name) for key, env_name in _KAFKA_ENV.items()}, _KAFKA_ENV)
        es_username, es_password = _opt(get, "ATLAS_ES_USERNAME"), get("ATLAS_ES_PASSWORD", "") or None
        if bool(es_username) != bool(es_password):
            raise SettingsError("ATLAS_ES_USERNAME and ATLAS_ES_PASSWORD go together: set both or neither")
        return cls(
            broker=broker,
            metadata_dir=Path(get("ATLAS_METADATA_DIR", "metadata")).expanduser(),
            data_dir=Path(get("ATLAS_DATA_DIR", ".atlas")).expanduser(),
            lake_uri=_lake_uri(get("ATLAS_LAKE_URI", "lake")),
            es_url=es_url,
            web_port=_int("ATLAS_WEB_PORT", get("ATLAS_WEB_PORT", "6066"), 1),
            web_host=get("ATLAS_WEB_HOST", "127.0.0.1"),
            embedded_broker=_bool("ATLAS_EMBEDDED_BROKER", get("ATLAS_EMBEDDED_BROKER", "0")),
            dev_broker=dev_broker,
            app_id=get("ATLAS_APP_ID", "atlas-stream"),
            topic_partitions=_int("ATLAS_TOPIC_PARTITIONS", get("ATLAS_TOPIC_PARTITIONS", "4"), 1),
            topic_replication=_int("ATLAS_TOPIC_REPLICATION", get("ATLAS_TOPIC_REPLICATION", "1"), 1),
            processing_guarantee=guarantee,
            broker_session_timeout=_float("ATLAS_BROKER_SESSION_TIMEOUT", get("ATLAS_BROKER_SESSION_TIMEOUT", "45")),
            max_message_bytes=_int("ATLAS_MAX_MESSAGE_BYTES", get("ATLAS_MAX_MESSAGE_BYTES", "1000000"), 10_000),
            store=get("ATLAS_STORE", "").strip() or default_store(guarantee),
            log_level=_log_level(get("ATLAS_LOG_LEVEL", "info")),
            gateway_port=_int("ATLAS_GATEWAY_PORT", get("ATLAS_GATEWAY_PORT", "8765"), 0),
            gateway_host=get("ATLAS_GATEWAY_HOST", "127.0.0.1"),
            gateway_max_frame_bytes=_int("ATLAS_GATEWAY_MAX_FRAME_BYTES",
                                         get("ATLAS_GATEWAY_MAX_FRAME_BYTES", "1048576"), 1024),
            gateway_max_frame_records=_int("ATLAS_GATEWAY_MAX_FRAME_RECORDS",
                                           get("ATLAS_GATEWAY_MAX_FRAME_RECORDS", "10000"), 1),
            gateway_max_in_flight=_int("ATLAS_GATEWAY_MAX_IN_FLIGHT", get("ATLAS_GATEWAY_MAX_IN_FLIGHT", "100000"), 1),
            gateway_send_timeout=_float("ATLAS_GATEWAY_SEND_TIMEOUT", get("ATLAS_GATEWAY_SEND_TIMEOUT", "30")),
            gateway_drain_seconds=_float("ATLAS_GATEWAY_DRAIN_SECONDS", get("ATLAS_GATEWAY_DRAIN_SECONDS", "5")),
            sink_flush_seconds=_float("ATLAS_SINK_FLUSH_SECONDS", get("ATLAS_SINK_FLUSH_SECONDS", "10")),
            sink_rotate_seconds=_float("ATLAS_SINK_ROTATE_SECONDS", get("ATLAS_SINK_ROTATE_SECONDS", "300")),
            admin_token=get("ATLAS_ADMIN_TOKEN", "").strip() or None,
            sink_flush_rows=_int("ATLAS_SINK_FLUSH_ROWS", get("ATLAS_SINK_FLUSH_ROWS", "50000"), 1),
            sink_flush_bytes=_int("ATLAS_SINK_FLUSH_BYTES", get("ATLAS_SINK_FLUSH_BYTES", str(32 * 1024 * 1024)), 1024),
            sink_rotate_rows=_int("ATLAS_SINK_ROTATE_ROWS", get("ATLAS_SINK_ROTATE_ROWS", "1000000"), 1),
            sink_rotate_bytes=_int("ATLAS_SINK_ROTATE_BYTES", get("ATLAS_SINK_ROTATE_BYTES", str(256 * 1024 * 1024)), 1024),
            sink_enabled=_bool("ATLAS_SINK_ENABLED", get("ATLAS_SINK_ENABLED", "1")),
            s3_endpoint=get("ATLAS_S3_ENDPOINT", "").strip() or None,
            es_bulk_docs=_int("ATLAS_ES_BULK_DOCS", get("ATLAS_ES_BULK_DOCS", "500"), 1),
            es_bulk_bytes=_int("ATLAS_ES_BULK_BYTES", get("ATLAS_ES_BULK_BYTES", str(5 * 1024 * 1024)), 1024),
            es_linger_seconds=_float("ATLAS_ES_LINGER_SECONDS", get("ATLAS_ES_LINGER_SECONDS", "1")),
            spark_master=get("ATLAS_SPARK_MASTER", "").strip() or "local[*]",
            kafka_security=kafka,
            es_api_key=_opt(get, "ATLAS_ES_API_KEY"),
            es_username=es_username,
            es_password=es_password,
            es_ca_certs=_opt(get, "ATLAS_ES_CA_CERTS"),
            es_cloud_id=_opt(get, "ATLAS_ES_CLOUD_ID"),
            s3_region=_opt(get, "ATLAS_S3_REGION"),
            s3_ca_file=_opt(get, "ATLAS_S3_CA_FILE"),
        )


    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` list for plain Kafka clients (aiokafka), from the Faust URL(s)."""
        out = []
        for url in self.broker.replace(",", ";").split(";"):
            url = url.strip()
            if url:
                out.append(url.split("://", 1)[-1].rstrip("/"))
        return out

    def describe(self) -> dict[str, str]:
        """Settings as strings for logs: secrets say only "set" or "unset", URLs lose their password."""
        out = {f.name: str(getattr(self, f.name)) for f in fields(self)}
        for name in _SECRETS:
            out[name] = "set" if getattr(self, name) else "unset"
        out["kafka_security"] = self.kafka_security.describe()
        out["es_url"] = redact_url(self.es_url) if self.es_url else "None"
        out["broker"] = redact_url(self.broker)
        out["lake_uri"] = redact_url(self.lake_uri)
        return out


_SECRETS = ("admin_token", "es_api_key", "es_password")

#: KafkaSecurity field -> the environment variable that sets it (named in every error).
_KAFKA_ENV = {
    "protocol": "ATLAS_KAFKA_SECURITY_PROTOCOL",
    "sasl_mechanism": "ATLAS_KAFKA_SASL_MECHANISM",
    "sasl_username": "ATLAS_KAFKA_SASL_USERNAME",
    "sasl_password": "ATLAS_KAFKA_SASL_PASSWORD",
    "ssl_cafile": "ATLAS_KAFKA_SSL_CAFILE",
    "ssl_certfile": "ATLAS_KAFKA_SSL_CERTFILE",
    "ssl_keyfile": "ATLAS_KAFKA_SSL_KEYFILE",
}


def _opt(get, name: str) -> str | None:  # type: ignore[no-untyped-def]
    return get(name, "").strip() or None


def default_store(guarantee: str) -> str:
    """ATLAS_STORE when unset: on disk where that is safe (see Settings.store)."""
    from importlib.util import find_spec

    if guarantee == "at_least_once" and find_spec("rocksdict") is not None:
        return "rocksdb://"
    return "memory://"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()

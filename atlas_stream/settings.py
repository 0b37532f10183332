"""The only module that reads os.environ: every ATLAS_* setting, declared once with its type and help.

Each :class:`Settings` field is one declaration (:func:`setting`): the environment variable, how
its text becomes a value (a parser that says what it accepts), the default and the help. Parsing,
validation and the README's settings table (``python -m atlas_stream.settings --write README.md``)
all come from these declarations; ``tests/unit/test_settings.py`` fails when the README lags.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .errors import SettingsError
from .kafka_security import MECHANISMS, PROTOCOLS, KafkaSecurity
from .redact import redact_url
from .settings_fields import (
    DECLARED,
    OPTIONAL,
    PEM,
    URL,
    Choice,
    Flag,
    Folder,
    LakeUri,
    LogLevel,
    Raw,
    Required,
    Seconds,
    Setting,
    Text,
    Whole,
    setting,
)

__all__ = [
    "BEGIN",
    "DEV_BROKERS",
    "END",
    "Setting",
    "Settings",
    "declarations",
    "default_store",
    "get_settings",
    "markdown_table",
    "readme_section",
    "write_readme",
]

DEV_BROKERS = ("kafka", "noida", "tansu")


#: KafkaSecurity field -> its variable; validated together by :meth:`KafkaSecurity.build`.
_KAFKA = {
    "protocol": Setting(
        "ATLAS_KAFKA_SECURITY_PROTOCOL", parse=Raw(", ".join(f"`{p}`" for p in PROTOCOLS)), shown="`PLAINTEXT`",
        help="TLS/SASL of every Kafka client (worker, gateway, pollers, sinks' probes, admin, `sample`) "
             "([docs/security.md](docs/security.md))"),
    "sasl_mechanism": Setting(
        "ATLAS_KAFKA_SASL_MECHANISM", parse=Raw(", ".join(f"`{m}`" for m in MECHANISMS)), shown="`PLAIN`",
        help="SASL mechanism (SASL protocols only)"),
    "sasl_username": Setting("ATLAS_KAFKA_SASL_USERNAME", "SASL login (needed by the SASL protocols)", Raw()),
    "sasl_password": Setting("ATLAS_KAFKA_SASL_PASSWORD", "SASL password; never logged", Raw(), secret=True),
    "ssl_cafile": Setting("ATLAS_KAFKA_SSL_CAFILE", "PEM CA bundle that verifies the brokers' certificates",
                          Raw("PEM file"), shown="unset (system CAs)"),
    "ssl_certfile": Setting("ATLAS_KAFKA_SSL_CERTFILE", "client certificate (mutual TLS; with the key file)",
                            Raw("PEM file")),
    "ssl_keyfile": Setting("ATLAS_KAFKA_SSL_KEYFILE", "client private key (mutual TLS; with the certificate)",
                           Raw("PEM file")),
}


@dataclass(frozen=True)
class Settings:
    """Atlas Stream configuration. Defaults work on a fresh machine with the development broker.

    Every field names its ATLAS_* variable (a public interface: names never change); the README's
    table is generated from these declarations.
    """

    broker: str = setting(
        "ATLAS_BROKER", "kafka://127.0.0.1:9092", "Kafka bootstrap servers as Faust URLs, `;`-separated for several",
        Required("kafka://127.0.0.1:9092"))
    metadata_dir: Path = setting("ATLAS_METADATA_DIR", Path("metadata"), "folder of contracts (`*.json`)", Folder())
    data_dir: Path = setting(
        "ATLAS_DATA_DIR", Path(".atlas"), "local state: Faust tables (`rocksdb://`: one worker per data dir), "
        "development broker data, checkpoints", Folder())
    lake_uri: str = setting("ATLAS_LAKE_URI", "", "root of the data lake (`file://`, `s3://`, `hdfs://`, "
                            "`webhdfs://`; a bare path is a local folder)", LakeUri(), unset="lake", shown="`./lake`")
    es_url: str | None = setting(  # may hold a password: describe() redacts it
        "ATLAS_ES_URL", None, "Elasticsearch URL; unset means no Elasticsearch sink (a password in it is never "
        "logged)", URL, repr=False)
    web_port: int = setting("ATLAS_WEB_PORT", 6066, "Faust web server port (stats, registry, dashboard)", Whole(1))
    web_host: str = setting("ATLAS_WEB_HOST", "127.0.0.1", "address the web server binds")
    embedded_broker: bool = setting(
        "ATLAS_EMBEDDED_BROKER", False, "`1`: talking to a development broker, apply its workarounds "
        "(none for `kafka`)", Flag())
    dev_broker: str | None = setting(
        "ATLAS_DEV_BROKER", None, "which development broker `up`, `broker` and the tests start: `kafka` (real "
        "Apache Kafka; needs Java 17+), or the PyPI fallbacks `noida` (persistent, transactions; group changes "
        "break) and `tansu` (in memory; failover works)", Choice(DEV_BROKERS, optional=True),
        shown="`kafka` when Java 17+ is there, else `noida`")
    app_id: str = setting("ATLAS_APP_ID", "atlas-stream", "Faust application id (consumer group, changelog "
                          "topic prefix)")
    topic_partitions: int = setting(
        "ATLAS_TOPIC_PARTITIONS", 4, "partitions of the topics Atlas Stream creates (raw topics must have this "
        "many)", Whole(1))
    topic_replication: int = setting(
        "ATLAS_TOPIC_REPLICATION", 1, "replication factor of the topics Atlas Stream creates (use 3 on a real "
        "cluster)", Whole(1))
    processing_guarantee: str = setting(
        "ATLAS_PROCESSING_GUARANTEE", "at_least_once", "`exactly_once` needs a broker with transactions; sinks "
        "deduplicate by raw position either way", Choice(("at_least_once", "exactly_once")))
    broker_session_timeout: float = setting(
        "ATLAS_BROKER_SESSION_TIMEOUT", 45.0, "seconds without a heartbeat before the group coordinator gives a "
        "worker's partitions to the others (Kafka's `session.timeout.ms`); lower means faster failover",
        Seconds())
    max_message_bytes: int = setting(
        "ATLAS_MAX_MESSAGE_BYTES", 1_000_000, "largest message Atlas Stream produces; a bigger output goes to the "
        "DLQ with the reason", Whole(10_000))
    store: str = setting(
        "ATLAS_STORE", "memory://", "Faust table store: `rocksdb://` keeps tables in ATLAS_DATA_DIR so a restart "
        "replays only the changelog the disk lacks; `memory://` replays the whole changelog at every start "
        "([docs/tables.md](docs/tables.md))", OPTIONAL, unset="",
        shown="`rocksdb://` (`memory://` with `exactly_once` or without rocksdict)")
    log_level: str = setting("ATLAS_LOG_LEVEL", "info", "worker log level", LogLevel())
    gateway_port: int = setting("ATLAS_GATEWAY_PORT", 8765, "WebSocket gateway port", Whole(0))
    gateway_host: str = setting("ATLAS_GATEWAY_HOST", "127.0.0.1", "address the WebSocket gateway binds")
    gateway_max_frame_bytes: int = setting(
        "ATLAS_GATEWAY_MAX_FRAME_BYTES", 1_048_576, "largest WebSocket frame the gateway accepts", Whole(1024))
    gateway_max_frame_records: int = setting(
        "ATLAS_GATEWAY_MAX_FRAME_RECORDS", 10_000, "most JSON objects in one gateway frame", Whole(1))
    gateway_max_in_flight: int = setting(
        "ATLAS_GATEWAY_MAX_IN_FLIGHT", 100_000, "records the gateway holds unacknowledged, all clients together",
        Whole(1))
    gateway_send_timeout: float = setting(
        "ATLAS_GATEWAY_SEND_TIMEOUT", 30.0, "seconds a frame may wait for the broker before an error reply",
        Seconds())
    gateway_drain_seconds: float = setting(
        "ATLAS_GATEWAY_DRAIN_SECONDS", 5.0, "on SIGTERM, how long connections keep being served", Seconds())
    sink_flush_seconds: float = setting("ATLAS_SINK_FLUSH_SECONDS", 10.0, "sink window length", Seconds())
    sink_rotate_seconds: float = setting("ATLAS_SINK_ROTATE_SECONDS", 300.0, "the longest a lake file stays open",
                                         Seconds())
    admin_token: str | None = setting(
        "ATLAS_ADMIN_TOKEN", None, "bearer token for web writes (`PUT /schemas/config[/<subject>]`); unset or "
        "empty refuses every write with 401; never logged", OPTIONAL, secret=True)
    sink_flush_rows: int = setting("ATLAS_SINK_FLUSH_ROWS", 50_000, "a sink window also closes when it holds "
                                   "this many rows", Whole(1))
    sink_flush_bytes: int = setting("ATLAS_SINK_FLUSH_BYTES", 32 * 1024 * 1024, "... or this many bytes of tier "
                                    "messages", Whole(1024))
    sink_rotate_rows: int = setting("ATLAS_SINK_ROTATE_ROWS", 1_000_000, "a lake file is committed once it holds "
                                    "this many rows", Whole(1))
    sink_rotate_bytes: int = setting("ATLAS_SINK_ROTATE_BYTES", 256 * 1024 * 1024, "... or once it is about this "
                                     "large", Whole(1024))
    sink_enabled: bool = setting("ATLAS_SINK_ENABLED", True, "`0`: this worker runs no sink agents (scoring only)",
                                 Flag())
    s3_endpoint: str | None = setting(
        "ATLAS_S3_ENDPOINT", None, "S3 endpoint override (MinIO, moto, ...) for an `s3://` lake; credentials come "
        "from the standard `AWS_*` variables", URL)
    es_bulk_docs: int = setting("ATLAS_ES_BULK_DOCS", 500, "documents per Elasticsearch bulk request", Whole(1))
    es_bulk_bytes: int = setting("ATLAS_ES_BULK_BYTES", 5 * 1024 * 1024, "bytes per Elasticsearch bulk request",
                                 Whole(1024))
    es_linger_seconds: float = setting(
        "ATLAS_ES_LINGER_SECONDS", 1.0, "the longest an Elasticsearch batch waits to fill", Seconds())
    spark_master: str = setting(
        "ATLAS_SPARK_MASTER", "local[*]", "Spark master of `batch --engine spark`: `local[*]` (this machine, "
        "pyspark from PyPI and Java 17+), `local[N]`, or a cluster URL (`spark://host:7077`, `yarn`, `k8s://...`)",
        Text(strip=True, empty="local[*]"))
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity, metadata={DECLARED: _KAFKA})
    es_api_key: str | None = setting(
        "ATLAS_ES_API_KEY", None, "Elasticsearch API key (the base64 `id:key` form); never logged", OPTIONAL,
        secret=True)
    es_username: str | None = setting(
        "ATLAS_ES_USERNAME", None, "Elasticsearch basic authentication (with ATLAS_ES_PASSWORD)", OPTIONAL)
    es_password: str | None = setting(
        "ATLAS_ES_PASSWORD", None, "Elasticsearch password (with ATLAS_ES_USERNAME); never logged",
        Text(empty=None), secret=True)
    es_ca_certs: str | None = setting(
        "ATLAS_ES_CA_CERTS", None, "PEM file of the CA that signed Elasticsearch's certificate", PEM)
    es_cloud_id: str | None = setting(
        "ATLAS_ES_CLOUD_ID", None, "Elastic Cloud deployment id (instead of, or besides, ATLAS_ES_URL)", OPTIONAL)
    s3_region: str | None = setting("ATLAS_S3_REGION", None, "region of an `s3://` lake", OPTIONAL,
                                    shown="unset (`AWS_REGION` / the AWS configuration)")
    s3_ca_file: str | None = setting(
        "ATLAS_S3_CA_FILE", None, "PEM CA bundle that verifies the S3 endpoint's TLS certificate", PEM)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            declared = f.metadata[DECLARED]
            if isinstance(declared, Setting):
                values[f.name] = declared.read(env, f.default)
            else:  # a group checked as a whole (kafka_security); errors name the variables
                values[f.name] = KafkaSecurity.build({key: env.get(s.env) for key, s in declared.items()},
                                                     {key: s.env for key, s in declared.items()})
        # Rules that involve several settings.
        if bool(values["es_username"]) != bool(values["es_password"]):
            raise SettingsError("ATLAS_ES_USERNAME and ATLAS_ES_PASSWORD go together: set both or neither")
        values["store"] = values["store"] or default_store(values["processing_guarantee"])
        return cls(**values)

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
        for name, declared in declarations():
            if declared.secret and name in out:
                out[name] = "set" if getattr(self, name) else "unset"
        out["kafka_security"] = self.kafka_security.describe()
        out["es_url"] = redact_url(self.es_url) if self.es_url else "None"
        out["broker"] = redact_url(self.broker)
        out["lake_uri"] = redact_url(self.lake_uri)
        return out


def declarations() -> Iterator[tuple[str, Setting]]:
    """Every declared variable in order, with its Settings attribute (``kafka_security.<key>`` for the group)."""
    for f in fields(Settings):
        declared = f.metadata[DECLARED]
        if isinstance(declared, Setting):
            yield f.name, declared
        else:
            for key, sub in declared.items():
                yield f"{f.name}.{key}", sub


def _defaults() -> dict[str, Any]:
    return {f.name: f.default for f in fields(Settings)}


def markdown_table() -> str:
    """The README's settings table, one row per variable, from the declarations."""
    defaults = _defaults()
    rows = ["| variable | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, declared in declarations():
        default = defaults.get(name)
        rows.append(f"| `{declared.env}` | {declared.default_text(default)} | {declared.parse.accepts} "
                    f"| {declared.help} |")
    return "\n".join(rows) + "\n"


BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"


def _between_markers(text: str) -> tuple[int, int]:
    return text.index(BEGIN) + len(BEGIN), text.index(END)


def readme_section(text: str) -> str:
    """The part of ``text`` between the settings markers."""
    start, end = _between_markers(text)
    return text[start:end].strip("\n") + "\n"


def write_readme(path: Path) -> bool:
    """Replace the table between the markers of ``path``; True when it changed."""
    text = path.read_text(encoding="utf-8")
    start, end = _between_markers(text)
    new = f"{text[:start]}\n{markdown_table()}{text[end:]}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True


def default_store(guarantee: str) -> str:
    """ATLAS_STORE when unset: on disk where that is safe (see Settings.store)."""
    from importlib.util import find_spec

    if guarantee == "at_least_once" and find_spec("rocksdict") is not None:
        return "rocksdb://"
    return "memory://"


def arrow_pool_chosen(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``ARROW_DEFAULT_MEMORY_POOL`` (Arrow's own variable, not an Atlas setting) picks
    Arrow's memory pool: the batch command then keeps that choice."""
    return bool((os.environ if env is None else env).get("ARROW_DEFAULT_MEMORY_POOL"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    return Settings.from_env()


def main(argv: Sequence[str]) -> int:
    """``--markdown``: print the settings table; ``--write README.md``: refresh it between the markers."""
    if list(argv[:1]) == ["--markdown"]:
        sys.stdout.write(markdown_table())
        return 0
    if len(argv) == 2 and argv[0] == "--write":
        print("updated" if write_readme(Path(argv[1])) else "already up to date", argv[1])
        return 0
    print("usage: python -m atlas_stream.settings --markdown | --write README.md", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

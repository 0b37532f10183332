"""Atlas Stream's exception tree, grouped by what the operator does next.

Every exception class of the package is drawn here, by class name and the module that defines it
(tests/unit/test_errors.py fails when one is missing or outside the tree). "also ValueError" and
the like: the builtin base is kept because callers catch it.

    AtlasError                    root: catch this to catch everything of ours
    ├── ConfigError               fatal: a setting, a contract or the set-up is wrong; fix it, then restart
    │   ├── SettingsError         an ATLAS_* environment variable has a bad value
    │   ├── ContractError         a metadata/*.json contract is invalid (names file and JSON path)
    │   ├── TransformSchemaError  transform: a transformation does not fit the feature list at its step
    │   │                         (also ValueError; contracts report it as a ContractError)
    │   ├── LockHeld              locks: another live process holds the lock (data dir, source checkpoint)
    │   ├── DatabaseQueryError    database source (sources.database.pass_): the database refuses the configured query
    │   ├── ApiRequestRefused     REST source (sources.rest.source): the API refuses the request as configured
    │   ├── BatchInputError       batch readers: the input of a batch run cannot be read (missing file, format)
    │   └── SparkError            batch spark_session: Spark cannot run the job (master, JDBC driver, input)
    ├── ExprError                 a rule or derive expression does not parse (raised inside
    │                             ContractError when it comes from a contract)
    ├── RetriableError            the outside world is down (broker, database, lake); retry later
    │   ├── BrokerUnavailable     the Kafka-protocol broker could not be reached or started
    │   ├── DatabaseUnavailable   database source (sources.database.pass_): the database cannot be reached
    │   ├── ElasticsearchUnavailable  Elasticsearch sink (elasticsearch): the cluster cannot be reached
    │   └── LakeUnavailable       the lake's filesystem (local, S3, HDFS, WebHDFS) failed or is down
    │       └── LakeError         batch writer: a batch run cannot write or commit its output
    ├── RecordError               skippable: one record is bad; it goes to the DLQ with the reason
    │   ├── CoercionError         dtypes: a value cannot be read as its dtype (also ValueError)
    │   ├── EvalError             expr: an expression fails on these values (type mismatch, division by zero)
    │   └── FrameError            gateway source (sources.gateway.frames): a WebSocket frame is malformed
    │                             (also ValueError)
    ├── RequestError              a web client's request is wrong: answered with a 4xx, the server is fine
    │   ├── BadRequest            web params: malformed query, 400 (also ValueError)
    │   ├── Unauthorized          web responses: missing or wrong admin token, 401 (also PermissionError)
    │   ├── NotFound              web responses: no such group, dataset or page, 404 (also LookupError)
    │   └── ApiError              web schemas: a schema-registry error with Confluent's status and error code
    └── NotVectorised             batch arrow_expr: internal signal, the Arrow engine falls back to the
                                  per-row evaluator; never leaves the batch engine
"""

from __future__ import annotations

__all__ = [
    "AtlasError",
    "BrokerUnavailable",
    "ConfigError",
    "ContractError",
    "ExprError",
    "LakeUnavailable",
    "RecordError",
    "RequestError",
    "RetriableError",
    "SettingsError",
]


class AtlasError(Exception):
    """Root of every error Atlas Stream raises on purpose."""


class ConfigError(AtlasError):
    """Fatal: configuration is wrong and nothing should start until it is fixed."""


class SettingsError(ConfigError):
    """An ATLAS_* environment variable holds a value that cannot be used."""


class ContractError(ConfigError):
    """A contract is invalid. ``file`` and ``json_path`` say where."""

    def __init__(self, file: str, json_path: str, message: str) -> None:
        self.file = file
        self.json_path = json_path
        self.message = message
        super().__init__(f"{file}: {json_path}: {message}")


class ExprError(AtlasError):
    """An expression of the rule language does not parse or names something unknown."""


class RetriableError(AtlasError):
    """Transient: the operation may succeed when retried later."""


class BrokerUnavailable(RetriableError):
    """The Kafka-protocol broker cannot be reached or could not be started."""


class LakeUnavailable(RetriableError):
    """The lake's filesystem failed or could not be reached; the message names the URI and what to check."""


class RecordError(AtlasError):
    """One record cannot be processed; it is routed to the DLQ with this message."""


class RequestError(AtlasError):
    """A web client's request cannot be answered as asked; the view answers with a 4xx status."""

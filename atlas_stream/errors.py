"""Atlas Stream's exception tree, grouped by what the operator does next.

    AtlasError                    root: catch this to catch everything of ours
    ├── ConfigError               fatal: a setting or a contract is wrong; fix it, then restart
    │   ├── SettingsError         an ATLAS_* environment variable has a bad value
    │   └── ContractError         a metadata/*.json contract is invalid (names file and JSON path)
    ├── ExprError                 a rule or derive expression does not parse (raised inside
    │                             ContractError when it comes from a contract)
    ├── RetriableError            the outside world is down (broker, database, lake); retry later
    │   ├── BrokerUnavailable     the Kafka-protocol broker could not be reached or started
    │   └── LakeUnavailable       the lake's filesystem (local, S3, HDFS, WebHDFS) failed or is down
    └── RecordError               skippable: one record is bad; it goes to the DLQ with the reason
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

"""Database poller settings from an rdbms contract: the SQLAlchemy URL and per-dataset options."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping

import isodate
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from ...contract_schema import did_you_mean, json_path
from ...errors import ContractError
from ...model import Contract, Dataset
from ..interface import source_key_fields

__all__ = [
    "DRIVERS",
    "MODES",
    "DatasetOptions",
    "Incremental",
    "connect_args",
    "database_url",
    "dataset_options",
    "safe_url",
]

#: ``db_type`` spellings -> SQLAlchemy driver names.
DRIVERS: dict[str, str] = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "sqlite": "sqlite",
    "mssql": "mssql+pyodbc",
    "sqlserver": "mssql+pyodbc",
}
#: Incremental modes, with Kafka Connect JDBC source semantics.
MODES: tuple[str, ...] = ("bulk", "incrementing", "timestamp", "timestamp+incrementing")
_CLASSIC_KEYS = ("db_type", "host", "port", "user", "password", "database")
_INCREMENTAL_KEYS = ("mode", "timestamp_column", "incrementing_column", "timestamp_delay")
DEFAULT_FETCH_SIZE = 1000
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_CONNECT_TIMEOUT = 10


def safe_url(url: URL) -> str:
    """The URL for logs and messages: the password replaced by ``***``."""
    return url.render_as_string(hide_password=True)


def _fail(contract: Contract, loc: tuple[Any, ...], message: str) -> ContractError:
    return ContractError(contract.file, json_path(loc), message)


def database_url(contract: Contract) -> URL:
    """``source_config.url`` (any SQLAlchemy URL), or one built from the classic keys
    ``db_type``, ``host``, ``port``, ``user``, ``password``, ``database`` with
    ``URL.create`` (values are never pasted into a string, so no escaping issue and no
    injection through the URL)."""
    config = contract.source_config
    if config.get("url"):
        try:
            return make_url(str(config["url"]))
        except (ArgumentError, ValueError):
            # The text may hold a password: do not quote it.
            raise _fail(contract, ("source_config", "url"), "not an SQLAlchemy URL; expected e.g. "
                        "postgresql+psycopg://user:${DB_PASSWORD}@host:5432/dbname") from None
    db_type = config.get("db_type")
    if not db_type:
        raise _fail(contract, ("source_config",), "an rdbms source needs either 'url' (an SQLAlchemy "
                    f"URL) or the keys {', '.join(_CLASSIC_KEYS)}")
    db_type = str(db_type).strip().lower()
    driver = db_type if "+" in db_type else DRIVERS.get(db_type)
    if driver is None:
        raise _fail(contract, ("source_config", "db_type"), f"unknown db_type {db_type!r} (known: "
                    f"{', '.join(DRIVERS)}){did_you_mean(db_type, tuple(DRIVERS))}")
    port = config.get("port")
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise _fail(contract, ("source_config", "port"), f"expected a port number, got {port!r}") from None
    query: dict[str, str] = {}
    if driver.startswith("mssql+pyodbc"):
        query["driver"] = str(config.get("odbc_driver", "ODBC Driver 18 for SQL Server"))
    return URL.create(
        driver,
        username=_opt(config.get("user")),
        password=_opt(config.get("password")),
        host=_opt(config.get("host")),
        port=port,
        database=_opt(config.get("database")),
        query=query,
    )


def _opt(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _seconds(contract: Contract, loc: tuple[Any, ...], raw: Any, allow_zero: bool = False) -> float:
    """An ISO-8601 duration (``PT30S``) or a number of seconds."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        value = float(raw)
    else:
        try:
            parsed = isodate.parse_duration(str(raw))
        except (isodate.ISO8601Error, ValueError):
            raise _fail(contract, loc, f"expected an ISO-8601 duration such as PT30S, got {raw!r}") from None
        if not isinstance(parsed, timedelta):
            raise _fail(contract, loc, f"{raw!r}: years and months are ambiguous; use days, hours, "
                        "minutes or seconds") from None
        value = parsed.total_seconds()
    if value < 0 or (value == 0 and not allow_zero):
        raise _fail(contract, loc, f"expected a positive duration, got {raw!r}")
    return value


def connect_args(url: URL, contract: Contract) -> dict[str, Any]:
    """Driver connect arguments: the connect timeout (``source_config.connect_timeout``)."""
    raw = contract.source_config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)
    seconds = max(1, round(_seconds(contract, ("source_config", "connect_timeout"), raw)))
    backend = url.get_backend_name()
    if backend in ("postgresql", "mysql", "mariadb"):
        return {"connect_timeout": seconds}
    if backend == "sqlite":
        return {"timeout": seconds}  # how long to wait for a lock
    if backend == "mssql":
        return {"timeout": seconds}
    return {}


@dataclass(frozen=True)
class Incremental:
    """``source.incremental``: how new and changed rows are found (Kafka Connect JDBC semantics)."""

    mode: str = "bulk"
    timestamp_column: str | None = None
    incrementing_column: str | None = None
    #: Only rows whose timestamp is at least this old (database clock) are read.
    timestamp_delay: timedelta = timedelta(0)

    @property
    def uses_timestamp(self) -> bool:
        return self.mode in ("timestamp", "timestamp+incrementing")

    @property
    def uses_incrementing(self) -> bool:
        return self.mode in ("incrementing", "timestamp+incrementing")


@dataclass(frozen=True)
class DatasetOptions:
    """Everything the poller needs from one dataset of an rdbms contract."""

    index: int
    table: str | None
    schema: str | None
    query: str | None
    incremental: Incremental
    fetch_size: int
    poll_interval: float
    #: Columns to select: the dataset's source features.
    columns: tuple[str, ...]
    #: Source columns of the contract's key fields (renames undone); empty: no key.
    key_columns: tuple[str, ...]


def dataset_options(contract: Contract, dataset: Dataset) -> DatasetOptions:
    """Validate and collect a dataset's poller options. Raises ContractError naming the key."""
    index = contract.datasets.index(dataset)
    loc: tuple[Any, ...] = ("dataset_config", index, "source")
    source: Mapping[str, Any] = dataset.source
    query = source.get("query")
    if query is not None and (not isinstance(query, str) or not query.strip()):
        raise _fail(contract, (*loc, "query"), "expected the text of a SELECT statement")
    table = schema = None
    if query is None:
        parts = dataset.path.split(".")
        if not dataset.path or len(parts) > 2 or not all(parts):
            raise _fail(contract, (*loc, "path"), f"expected a table name or schema.table, got {dataset.path!r}")
        schema, table = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    fetch_size = source.get("fetch_size", contract.source_config.get("fetch_size", DEFAULT_FETCH_SIZE))
    if isinstance(fetch_size, bool) or not isinstance(fetch_size, int) or fetch_size < 1:
        raise _fail(contract, (*loc, "fetch_size"), f"expected a whole number of rows >= 1, got {fetch_size!r}")
    interval_raw = source.get("poll_interval", contract.source_config.get("poll_interval", DEFAULT_POLL_INTERVAL))
    where = (*loc, "poll_interval") if "poll_interval" in source else ("source_config", "poll_interval")
    return DatasetOptions(
        index=index, table=table, schema=schema, query=query,
        incremental=_incremental(contract, (*loc, "incremental"), source.get("incremental")),
        fetch_size=fetch_size,
        poll_interval=_seconds(contract, where, interval_raw),
        columns=tuple(f.name for f in dataset.source_features),
        key_columns=source_key_fields(dataset),
    )


def _incremental(contract: Contract, loc: tuple[Any, ...], raw: Any) -> Incremental:
    if raw is None:
        return Incremental()
    if isinstance(raw, str):
        raw = {"mode": raw}
    if not isinstance(raw, dict):
        raise _fail(contract, loc, "expected an object {mode, timestamp_column, incrementing_column, "
                    "timestamp_delay}")
    for key in raw:
        if key not in _INCREMENTAL_KEYS:
            raise _fail(contract, (*loc, key), f"unknown key {key!r} (known: {', '.join(_INCREMENTAL_KEYS)})"
                        f"{did_you_mean(key, _INCREMENTAL_KEYS)}")
    mode = str(raw.get("mode", "")).strip().lower()
    if mode not in MODES:
        raise _fail(contract, (*loc, "mode"), f"expected one of {', '.join(MODES)}, got {raw.get('mode')!r}")
    spec = Incremental(mode=mode)
    names: dict[str, Any] = {}
    for key, needed in (("timestamp_column", spec.uses_timestamp), ("incrementing_column", spec.uses_incrementing)):
        value = raw.get(key)
        if needed and (not isinstance(value, str) or not value):
            raise _fail(contract, (*loc, key), f"mode {mode!r} needs {key} (a column name)")
        names[key] = value if needed else None
    delay = timedelta(0)
    if raw.get("timestamp_delay") is not None:
        delay = timedelta(seconds=_seconds(contract, (*loc, "timestamp_delay"), raw["timestamp_delay"],
                                           allow_zero=True))
    return Incremental(mode, names["timestamp_column"], names["incrementing_column"], delay)


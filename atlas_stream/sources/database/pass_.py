"""One pass over a dataset: its connection, the streaming SELECT, rows -> records (blocking)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, CursorResult, Engine
from sqlalchemy.exc import DBAPIError

from ...errors import ConfigError, ContractError, RetriableError
from ...messages import record_key
from ...model import Contract, Dataset
from ..interface import OutRecord, dead_letter
from .config import DatasetOptions, safe_url
from .query import Plan, count_rows, plan_source, select_rows
from .rows import Cursor, encode_row, key_text, position, ts_text

__all__ = ["DatabaseQueryError", "DatabaseUnavailable", "Entry", "Pass", "PassSource", "first_line"]

log = logging.getLogger(__name__)


class DatabaseUnavailable(RetriableError):
    """The database cannot be reached or failed mid-pass; the runner retries with backoff."""


class DatabaseQueryError(ConfigError):
    """The database refused a query for a reason retrying will not fix (a column dropped since
    the names were checked, missing privileges, ...): fix the database or the contract, restart."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A row ready to publish, with what the cursor needs: its timestamp text and its id (bulk:
    row number; timestamp mode: primary key text or rank)."""

    record: OutRecord
    ts: str | None
    ident: Any


def first_line(exc: BaseException) -> str:
    """``<driver exception>: <first line of its message>`` (SQLAlchemy appends the SQL and a link)."""
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0].strip() if lines else ''}"


class PassSource(Protocol):
    """What a pass needs from its source (:class:`~.source.DatabaseSource`). A protocol, so this
    module does not import the source module that imports it."""

    source_id: str
    contract: Contract
    dataset: Dataset
    raw_topic: str
    dlq: str
    max_bytes: int
    engine: Engine
    opts: DatasetOptions
    #: Looked up by the first pass that reaches the database; reset when the table may have changed.
    plan: Plan | None

    def label(self) -> str:
        """The table (or "the contract query") for messages."""
        ...


class Pass:
    """One pass over a dataset: its connection, streaming result and row conversion. Every
    method blocks; the source runs them in threads, one at a time."""

    def __init__(self, source: PassSource, cursor: Cursor) -> None:
        self.source = source
        self.cursor = cursor
        self.conn: Connection | None = None
        self.result: CursorResult[Any] | None = None
        self.exhausted = False
        self.row = cursor.bulk_row if cursor.mode == "bulk" else 0
        self._rank_ts: str | None = None
        self._rank = 0

    def _connect(self) -> Connection:
        src = self.source
        try:
            return src.engine.connect()
        except DBAPIError as exc:
            url = src.engine.url
            where = f"the file {url.database}" if url.get_backend_name() == "sqlite" else \
                f"{url.host or 'localhost'}:{url.port or 'default port'}"
            reason = first_line(exc)
            if url.password:
                reason = reason.replace(str(url.password), "***")
            raise DatabaseUnavailable(
                f"database {safe_url(url)} unreachable ({reason}): check that the server runs and accepts "
                f"connections at {where}, and the user, password and database in source_config of "
                f"{src.contract.file}") from None

    def open(self) -> int | None:
        """Connect, look names up (first pass), start the streaming SELECT; returns the number of
        rows pending when it is cheap to count."""
        src, opts, inc = self.source, self.source.opts, self.source.opts.incremental
        self.conn = conn = self._connect()
        if src.plan is None:
            src.plan = plan_source(conn, src.contract, opts)
        plan = src.plan
        upper = None
        if inc.uses_timestamp:
            # The database's clock, not ours: rows are stamped by it.
            now = conn.execute(select(func.now())).scalar_one()
            upper = now - inc.timestamp_delay
        pending = None
        if plan.indexed:
            pending = int(conn.execute(count_rows(plan, inc, self.cursor, upper)).scalar_one())
        stmt = select_rows(plan, inc, self.cursor, upper)
        self.result = conn.execution_options(stream_results=True, yield_per=opts.fetch_size).execute(stmt)
        keys = plan.keys
        self._ts_i = keys.index(inc.timestamp_column) if inc.timestamp_column else None
        self._inc_i = keys.index(inc.incrementing_column) if inc.incrementing_column else None
        key_cols = opts.key_columns
        self._key_i = [keys.index(c) for c in key_cols] if all(c in keys for c in key_cols) else []
        pk = [c.name for c in plan.pk]
        self._pk_i = [keys.index(c) for c in pk] if pk and all(c in keys for c in pk) else []
        return pending

    def fetch(self) -> list[Entry]:
        """The next rows (up to fetch_size), as records ready to publish."""
        if self.result is None or self.exhausted:
            return []
        rows = self.result.fetchmany(self.source.opts.fetch_size)
        if not rows:
            self.exhausted = True
            return []
        return [self._entry(row) for row in rows]

    def _entry(self, row: Any) -> Entry:
        src, mode = self.source, self.cursor.mode
        ts = ts_text(row[self._ts_i]) if self._ts_i is not None else None
        ident: Any
        if mode == "bulk":
            ident = self.row
        elif mode == "timestamp":
            if self._pk_i:
                ident = key_text([row[i] for i in self._pk_i])
            else:  # rank among the rows with this timestamp (the database's order)
                self._rank = self._rank + 1 if ts == self._rank_ts else 0
                self._rank_ts = ts
                ident = f"#{self._rank}"
        else:
            assert self._inc_i is not None
            ident = self._int_id(row[self._inc_i])
        self.row += 1
        pos = position(mode, ts, ident, self.cursor.bulk_pass)
        keys = src.plan.keys if src.plan is not None else ()
        try:
            value = encode_row(keys, row)
            if len(value) > src.max_bytes:
                raise ValueError(f"the row is {len(value)} bytes as JSON, more than ATLAS_MAX_MESSAGE_BYTES="
                                 f"{src.max_bytes}")
            key = record_key({keys[i]: row[i] for i in self._key_i}, src.opts.key_columns) if self._key_i else None
            return Entry(OutRecord(src.raw_topic, key, value, pos), ts, ident)
        except (TypeError, ValueError, orjson.JSONEncodeError) as exc:
            raw = repr(dict(zip(keys, row))).encode()
            letter = dead_letter(src.dlq, src.dataset.name, src.source_id, pos, f"row cannot be published: {exc}",
                                 raw, src.max_bytes, table=src.label())
            return Entry(letter, ts, ident)

    def _int_id(self, value: Any) -> int:
        try:
            ident = int(value)
            if ident != value and not isinstance(value, str):
                raise ValueError(value)
            return ident
        except (TypeError, ValueError):
            src = self.source
            raise ContractError(src.contract.file, f"$.dataset_config[{src.opts.index}].source.incremental."
                                "incrementing_column", f"{src.opts.incremental.incrementing_column!r} holds "
                                f"{value!r}: an incrementing column must hold whole numbers") from None

    def close(self) -> None:
        result, conn, self.result, self.conn = self.result, self.conn, None, None
        try:
            if conn is not None and result is not None and not self.exhausted:
                # Closing a half-read unbuffered result would read the rest of it first (MySQL):
                # drop the connection instead; the server rolls back and frees the cursor.
                conn.invalidate()
            elif result is not None:
                result.close()
            if conn is not None:
                conn.close()
        except Exception as exc:  # closing must not hide why the pass ended
            log.debug("%s: closing the database connection: %r", self.source.source_id, exc)

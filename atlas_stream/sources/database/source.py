"""Database poller (rdbms contracts): new and changed rows of tables into raw topics, exactly once.

Modes follow the Kafka Connect JDBC source (see docs/sources.md, "Database poller"); reading,
checkpoints, recovery and status are :class:`~atlas_stream.sources.runner.SourceRunner`'s. SQL is
built by SQLAlchemy Core from names found by reflection (``query``); blocking database
work runs in threads (``asyncio.to_thread``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, AsyncGenerator, Callable, TypeVar

from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import DBAPIError, NoSuchModuleError, OperationalError
from sqlalchemy.pool import NullPool

from ...errors import ConfigError
from ...model import Contract, Dataset
from ...settings import Settings
from ..interface import Batch, DatasetSource, PolledSource, select_datasets
from .config import DatasetOptions, connect_args, database_url, dataset_options, safe_url
from .pass_ import DatabaseQueryError, DatabaseUnavailable, Entry, Pass, first_line
from .query import Plan
from .rows import Cursor

__all__ = ["DatabaseQueryError", "DatabaseSource", "DatabaseUnavailable", "build_database_sources", "make_engine"]

log = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(url: URL, contract: Contract) -> Engine:
    """An engine without a pool: each pass opens its own connection and closes it, so nothing
    is held between polls (and a restarted database is simply reconnected)."""
    try:
        return create_engine(url, poolclass=NullPool, connect_args=connect_args(url, contract))
    except NoSuchModuleError:
        raise ConfigError(f"{contract.file}: $.source_config: SQLAlchemy has no dialect {url.drivername!r} "
                          "(e.g. postgresql+psycopg, mysql+pymysql, sqlite, mssql+pyodbc)") from None
    except ImportError as exc:
        extra = " and Microsoft's ODBC Driver 18 for SQL Server" if exc.name == "pyodbc" else ""
        raise ConfigError(f"{contract.file}: the database driver of {url.drivername!r} is not installed: "
                          f"pip install {exc.name}{extra}") from None


def build_database_sources(contract: Contract, settings: Settings,
                           dataset: str | None = None) -> list[tuple[PolledSource, float]]:
    """(source, poll interval) for every dataset of an ``rdbms`` contract (or only ``dataset``).
    Options are checked here; table and column names when a pass first reaches the database."""
    datasets = select_datasets(contract, dataset)
    url = database_url(contract)
    engine = make_engine(url, contract)
    out: list[tuple[PolledSource, float]] = []
    for ds in datasets:
        opts = dataset_options(contract, ds)
        out.append((DatabaseSource(contract, ds, settings, engine, opts), opts.poll_interval))
    log.info("database poller for %s: %s, datasets %s", contract.group, safe_url(url),
             ", ".join(ds.name for ds in datasets))
    return out


class DatabaseSource(DatasetSource):
    """One dataset of an rdbms contract: one table (or contract query) read incrementally.

    Position (JSON, in the checkpoint): ``{"mode", "ts", "id"}`` (timestamps ISO-8601 with
    microseconds, ids as int) or, in bulk mode, ``{"mode": "bulk", "pass", "row", "done"}``.
    Every record's ``atlas-pos`` is derived from its row (id, timestamp and id, ...), so a re-read
    after a crash yields the same positions and the runner publishes nothing twice.
    """

    kind = "database"

    def __init__(self, contract: Contract, dataset: Dataset, settings: Settings, engine: Engine,
                 opts: DatasetOptions) -> None:
        super().__init__("db", contract, dataset, settings)
        self.engine = engine
        self.opts = opts
        self.plan: Plan | None = None
        self._pending: int | None = None

    def lag(self) -> int | None:
        """Rows of the current pass not published yet, when counting them is cheap (the cursor
        column leads an index); None otherwise."""
        return self._pending

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.to_thread(fn, *args)
        except DBAPIError as exc:
            if isinstance(exc, OperationalError) or exc.connection_invalidated:
                self.plan = None  # the table may have changed: look it up again
                raise DatabaseUnavailable(f"database error while reading {self.label()}: {first_line(exc)}; "
                                          "retrying from the checkpoint") from None
            self.plan = None
            raise DatabaseQueryError(f"{self.source_id}: the database refused the query on {self.label()}: "
                                     f"{first_line(exc)} (check the table, its columns and the privileges of "
                                     f"the user in {self.contract.file})") from None

    def label(self) -> str:
        """The table (or "the contract query") for messages."""
        return self.plan.label if self.plan is not None else (self.opts.table or "the contract query")

    async def poll(self, position: Any) -> AsyncGenerator[Batch, None]:
        mode = self.opts.incremental.mode
        cursor = Cursor.from_json(position, mode, self.source_id)
        if mode == "bulk" and cursor.bulk_done:
            cursor = Cursor("bulk", bulk_pass=cursor.bulk_pass + 1)
        scan = Pass(self, cursor)
        fetching: asyncio.Future[list[Entry]] | None = None
        try:
            self._pending = await self._db(scan.open)
            held: list[Entry] = []
            chunk = await self._db(scan.fetch)
            while chunk:
                # Read the next chunk while this one is published.
                fetching = asyncio.ensure_future(self._db(scan.fetch))
                rows = held + chunk if held else chunk
                emit, held = _split(rows) if mode == "timestamp" else (rows, [])
                if emit:
                    yield self._batch(emit, cursor)
                chunk = await fetching
                fetching = None
            if held:
                yield self._batch(held, cursor)
            if mode == "bulk":
                yield Batch([], Cursor("bulk", bulk_pass=cursor.bulk_pass, bulk_row=scan.row, bulk_done=True).to_json())
            if self._pending is not None:
                self._pending = 0
        finally:
            if fetching is not None:
                await asyncio.gather(fetching, return_exceptions=True)
            await asyncio.to_thread(scan.close)

    def _batch(self, entries: list[Entry], cursor: Cursor) -> Batch:
        last = entries[-1]
        mode = cursor.mode
        if mode == "bulk":
            state = Cursor(mode, bulk_pass=cursor.bulk_pass, bulk_row=last.ident + 1)
        else:
            state = Cursor(mode, ts=last.ts, id=last.ident if mode != "timestamp" else None)
        if self._pending is not None:
            self._pending = max(0, self._pending - len(entries))
        return Batch([e.record for e in entries], state.to_json())


def _split(rows: list[Entry]) -> tuple[list[Entry], list[Entry]]:
    """Timestamp mode resumes at ``ts > last``: a batch must never end inside a run of rows with
    the same timestamp. Hold the last run back until the next chunk shows where it ends."""
    cut = len(rows)
    last = rows[-1].ts
    while cut > 0 and rows[cut - 1].ts == last:
        cut -= 1
    return rows[:cut], rows[cut:]

"""Batch input from an ``rdbms`` dataset: the whole table (or contract query), streamed.

Names are checked by the poller's reflection (:func:`plan_source`: a missing table or column is a
ContractError naming it, before any row is read). Rows come from a server-side cursor
(``stream_results``) read with ``fetchmany(fetch_size)``, so memory holds one batch. Values are
turned into what the stream sees once the poller wrote the row as JSON (decimals and times as
ISO text, ...), column by column.
"""

from __future__ import annotations

from typing import Any, Iterator

from sqlalchemy import Connection, Select, func, select
from sqlalchemy.exc import DBAPIError

from ..model import Contract, Dataset
from ..sources.database import make_engine
from ..sources.database.config import database_url, dataset_options, safe_url
from ..sources.database.pass_ import first_line
from ..sources.database.query import plan_source
from ..sources.database.rows import json_value
from .arrow_values import Col, from_python
from .readers import BatchInputError, RawBatch

__all__ = ["DatabaseInput", "column_of"]

_NATIVE = (str, int, float, bool, type(None))


def column_of(values: list[Any]) -> Col:
    return Col(from_python([v if isinstance(v, _NATIVE) else json_value(v) for v in values]))


class DatabaseInput:
    """Every row of one dataset's table, in primary-key order when there is one."""

    unit: str = "rows"

    def __init__(self, contract: Contract, dataset: Dataset, fetch_size: int | None) -> None:
        self.contract = contract
        self.dataset = dataset
        self.opts = dataset_options(contract, dataset)
        self.fetch_size = fetch_size or self.opts.fetch_size
        self.url = database_url(contract)
        self.engine = make_engine(self.url, contract)
        table = self.opts.table or ""
        self.label: str = table if self.opts.schema is None else f"{self.opts.schema}.{table}"
        if self.opts.query is not None:
            self.label = f"query of {dataset.subject}"
        self.total: int | None = None

    def _unreachable(self, exc: BaseException) -> BatchInputError:
        reason = first_line(exc)
        if self.url.password:
            reason = reason.replace(str(self.url.password), "***")
        return BatchInputError(f"database {safe_url(self.url)} unreachable ({reason}); check that the server "
                               f"runs, and source_config in {self.contract.file}")

    def statement(self, conn: Connection) -> tuple[Select[Any], list[str], Any]:
        """The SELECT of every wanted column (labelled with the contract's names, in primary-key
        order when there is one), those names, and the table or query it reads."""
        plan = plan_source(conn, self.contract, self.opts)
        wanted = [c for c, key in zip(plan.columns, plan.keys) if key in self.opts.columns]
        names = [key for key in plan.keys if key in self.opts.columns]
        stmt = select(*wanted).select_from(plan.source)
        order = list(plan.pk) or ([plan.inc] if plan.inc is not None else [])
        if order:
            stmt = stmt.order_by(*order)
        return stmt, names, plan.source

    def batches(self) -> Iterator[RawBatch]:
        try:
            conn = self.engine.connect()
        except DBAPIError as exc:
            raise self._unreachable(exc) from None
        try:
            stmt, names, source = self.statement(conn)
            self.total = int(conn.execute(select(func.count()).select_from(source)).scalar_one())
            result = conn.execution_options(stream_results=True, yield_per=self.fetch_size).execute(stmt)
            row = 0
            while True:
                rows = result.fetchmany(self.fetch_size)
                if not rows:
                    break
                cols = {name: column_of([r[j] for r in rows]) for j, name in enumerate(names)}
                yield RawBatch(cols, len(rows), self.label, row, row + len(rows))
                row += len(rows)
        except DBAPIError as exc:
            raise BatchInputError(f"{self.dataset.subject}: the database refused the query on {self.label}: "
                                  f"{first_line(exc)}") from None
        finally:
            conn.close()
            self.engine.dispose()

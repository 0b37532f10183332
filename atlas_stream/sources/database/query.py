"""Contract names checked against the database's own reflection, and the incremental SELECT.

No SQL text is assembled from contract strings: tables and columns are looked up with
``sqlalchemy.inspect`` / ``Table(..., autoload_with=...)`` and quoted by SQLAlchemy; values are
bound parameters. The one exception is ``source.query``: a SELECT written in the contract, which
is trusted content (whoever edits contracts can already read the database); it is wrapped as a
subquery so that the incremental WHERE and ORDER BY are still built by SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Sequence

from sqlalchemy import (
    ColumnElement,
    DateTime,
    FromClause,
    MetaData,
    Select,
    Table,
    and_,
    bindparam,
    column,
    false,
    func,
    inspect,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.engine import Connection

from ...contract_schema import did_you_mean, json_path
from ...errors import ContractError
from ...model import Contract
from .config import DatasetOptions, Incremental
from .rows import Cursor

__all__ = ["Plan", "count_rows", "plan_source", "select_rows"]

#: Alias of a contract query wrapped as a subquery.
QUERY_ALIAS = "atlas_src"


@dataclass(frozen=True)
class Plan:
    """What one dataset selects, after every name was found in the database."""

    label: str
    source: FromClause
    columns: tuple[ColumnElement[Any], ...]
    #: Output column names, in select order.
    keys: tuple[str, ...]
    ts: ColumnElement[Any] | None
    inc: ColumnElement[Any] | None
    #: Primary-key columns (empty for a query or a table without one): tie-breaker and identity.
    pk: tuple[ColumnElement[Any], ...]
    #: The first ORDER BY column leads an index: counting pending rows is cheap.
    indexed: bool


def _some(names: Sequence[str], most: int = 30) -> str:
    listed = sorted(names)
    text = ", ".join(listed[:most]) or "none"
    return text + (f" and {len(listed) - most} more" if len(listed) > most else "")


def _wanted(opts: DatasetOptions) -> list[tuple[str, tuple[Any, ...]]]:
    """(column, contract location) for each name the dataset needs, features first."""
    src: tuple[Any, ...] = ("dataset_config", opts.index, "source")
    out = [(name, (*src, "features", j, "name")) for j, name in enumerate(opts.columns)]
    inc = opts.incremental
    for key, name in (("timestamp_column", inc.timestamp_column), ("incrementing_column", inc.incrementing_column)):
        if name is not None and name not in opts.columns:
            out.append((name, (*src, "incremental", key)))
    return out


def _check_columns(contract: Contract, opts: DatasetOptions, label: str, available: Sequence[str]) -> None:
    known = list(available)
    for name, loc in _wanted(opts):
        if name not in known:
            raise ContractError(contract.file, json_path(loc), f"column {name!r} does not exist in {label} "
                                f"(its columns: {_some(known)}){did_you_mean(name, known)}; nothing was read")


def plan_source(conn: Connection, contract: Contract, opts: DatasetOptions) -> Plan:
    """Look the dataset's table (or query) and columns up in the database. Raises ContractError
    naming the missing table or column, before any query touches the data (blocking)."""
    if opts.query is not None:
        return _plan_query(conn, contract, opts)
    assert opts.table is not None
    loc = json_path(("dataset_config", opts.index, "source", "path"))
    name = opts.table if opts.schema is None else f"{opts.schema}.{opts.table}"
    label = f"table {name!r}"
    insp = inspect(conn)
    if opts.schema is not None and opts.schema not in insp.get_schema_names():
        raise ContractError(contract.file, loc, f"schema {opts.schema!r} does not exist in the database"
                            f"{did_you_mean(opts.schema, insp.get_schema_names())}; nothing was read")
    if not insp.has_table(opts.table, schema=opts.schema):
        tables = insp.get_table_names(schema=opts.schema) + insp.get_view_names(schema=opts.schema)
        if opts.table not in tables:  # has_table misses some views on some dialects
            raise ContractError(contract.file, loc, f"{label} does not exist in the database (tables: "
                                f"{_some(tables)}){did_you_mean(opts.table, tables)}; nothing was read")
    table = Table(opts.table, MetaData(), schema=opts.schema, autoload_with=conn)
    _check_columns(contract, opts, label, [c.name for c in table.columns])
    names = [name for name, _ in _wanted(opts)]
    inc = opts.incremental
    pk = tuple(table.primary_key.columns)
    first = inc.timestamp_column or inc.incrementing_column
    leading = {index["column_names"][0] for index in insp.get_indexes(opts.table, schema=opts.schema)
               if index.get("column_names")}
    if pk:
        leading.add(pk[0].name)
    return Plan(
        label=label, source=table, columns=tuple(table.c[n] for n in names), keys=tuple(names),
        ts=table.c[inc.timestamp_column] if inc.timestamp_column else None,
        inc=table.c[inc.incrementing_column] if inc.incrementing_column else None,
        pk=pk, indexed=first is not None and first in leading,
    )


def _plan_query(conn: Connection, contract: Contract, opts: DatasetOptions) -> Plan:
    assert opts.query is not None
    query = opts.query.strip().rstrip(";").strip()
    # Which columns does the query produce? Ask the database (no row is read: WHERE false).
    probe: Select[Any] = select(literal_column("*")).select_from(text(query).columns().subquery(QUERY_ALIAS)).where(false())
    available = list(conn.execute(probe).keys())
    label = f"the query of dataset_config[{opts.index}].source.query"
    _check_columns(contract, opts, label, available)
    names = [name for name, _ in _wanted(opts)]
    ts_name = opts.incremental.timestamp_column
    # Typed as DateTime so that drivers without native timestamps (SQLite) hand back datetimes.
    cols = [column(n, DateTime()) if n == ts_name else column(n) for n in names]
    sub = text(query).columns(*cols).subquery(QUERY_ALIAS)
    inc = opts.incremental
    return Plan(
        label=label, source=sub, columns=tuple(sub.c[n] for n in names), keys=tuple(names),
        ts=sub.c[ts_name] if ts_name else None,
        inc=sub.c[inc.incrementing_column] if inc.incrementing_column else None,
        pk=(), indexed=False,
    )


def _conditions(plan: Plan, inc: Incremental, cursor: Cursor,
                upper: date | datetime | None) -> list[ColumnElement[bool]]:
    out: list[ColumnElement[bool]] = []
    if inc.uses_timestamp:
        assert plan.ts is not None
        out.append(plan.ts <= bindparam("upper", upper))
        last_ts = cursor.ts_value()
        if last_ts is not None:
            after = plan.ts > bindparam("last_ts", last_ts)
            if inc.mode == "timestamp+incrementing" and cursor.id is not None:
                assert plan.inc is not None
                after = or_(after, and_(plan.ts == bindparam("same_ts", last_ts),
                                        plan.inc > bindparam("last_id", cursor.id)))
            out.append(after)
        if inc.mode == "timestamp+incrementing":
            assert plan.inc is not None
            out.append(plan.inc.is_not(None))
    elif inc.mode == "incrementing":
        assert plan.inc is not None
        if cursor.id is not None:
            out.append(plan.inc > bindparam("last_id", cursor.id))
        else:
            out.append(plan.inc.is_not(None))
    return out


def select_rows(plan: Plan, inc: Incremental, cursor: Cursor, upper: date | datetime | None = None) -> Select[Any]:
    """The SELECT of one pass (Kafka Connect JDBC source semantics):

    - incrementing: ``id > :last_id ORDER BY id``
    - timestamp: ``ts > :last_ts AND ts <= :upper ORDER BY ts, <primary key>``
    - timestamp+incrementing: ``ts <= :upper AND (ts > :last_ts OR (ts = :last_ts AND id > :last_id))
      ORDER BY ts, id``
    - bulk: every row, ``ORDER BY <primary key>``; a pass cut short resumes at its row (OFFSET).

    ``upper`` is the database's clock minus ``timestamp_delay``.
    """
    stmt = select(*plan.columns).select_from(plan.source).where(*_conditions(plan, inc, cursor, upper))
    if inc.mode == "incrementing":
        assert plan.inc is not None
        return stmt.order_by(plan.inc)
    if inc.mode == "timestamp+incrementing":
        assert plan.ts is not None and plan.inc is not None
        return stmt.order_by(plan.ts, plan.inc)
    if inc.mode == "timestamp":
        assert plan.ts is not None
        return stmt.order_by(plan.ts, *plan.pk)
    stmt = stmt.order_by(*plan.pk)
    if not cursor.bulk_done and cursor.bulk_row:
        stmt = stmt.offset(cursor.bulk_row)
    return stmt


def count_rows(plan: Plan, inc: Incremental, cursor: Cursor, upper: date | datetime | None = None) -> Select[Any]:
    """``SELECT count(*)`` of the rows the next pass will read (same WHERE as select_rows)."""
    return select(func.count()).select_from(plan.source).where(*_conditions(plan, inc, cursor, upper))


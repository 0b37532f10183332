"""Database poller: names checked by reflection, and the incremental SELECT (real SQLite files)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql, postgresql
from sqlalchemy.engine import default

from atlas_stream.errors import ContractError
from atlas_stream.model import Contract
from atlas_stream.sources.database.config import dataset_options
from atlas_stream.sources.database.query import Plan, count_rows, plan_source, select_rows
from atlas_stream.sources.database.rows import Cursor

MakeContract = Callable[..., Contract]  # the db_contract fixture of conftest.py
T0 = datetime(2025, 1, 1, 12)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[sa.Engine]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'shop.db'}")
    md = sa.MetaData()
    orders = sa.Table("orders", md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("note", sa.String),
                      sa.Column("updated_at", sa.DateTime, index=True))
    sa.Table("odd", md, sa.Column("select", sa.Integer, primary_key=True), sa.Column("Mixed Case", sa.String),
             sa.Column("ts", sa.DateTime))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(orders.insert(), [{"id": i, "note": f"n{i}", "updated_at": T0 + timedelta(seconds=i // 2)}
                                       for i in range(1, 9)])
    yield engine
    engine.dispose()


def plan_for(db_contract: MakeContract, engine: sa.Engine, incremental: dict[str, Any] | str,
             **source: Any) -> tuple[Plan, Any]:
    contract = db_contract({"url": str(engine.url)}, {"incremental": incremental, **source})
    opts = dataset_options(contract, contract.datasets[0])
    with engine.connect() as conn:
        return plan_source(conn, contract, opts), opts.incremental


TSINC = {"mode": "timestamp+incrementing", "timestamp_column": "updated_at", "incrementing_column": "id"}


def compiled(stmt: Any, dialect: Any = None) -> tuple[str, dict[str, Any]]:
    c = stmt.compile(dialect=dialect or default.DefaultDialect(paramstyle="named"))
    return " ".join(str(c).split()), dict(c.params)


# ---------------------------------------------------------------------------------- statements


def test_incrementing(db_contract: MakeContract, db: sa.Engine) -> None:
    plan, inc = plan_for(db_contract, db, {"mode": "incrementing", "incrementing_column": "id"})
    stmt = select_rows(plan, inc, Cursor("incrementing", id=5))
    sql, params = compiled(stmt)
    assert sql == ("SELECT orders.id, orders.note, orders.updated_at FROM orders "
                   "WHERE orders.id > :last_id ORDER BY orders.id")
    assert params == {"last_id": 5}
    first, _ = compiled(select_rows(plan, inc, Cursor("incrementing")))
    assert "WHERE orders.id IS NOT NULL ORDER BY orders.id" in first
    with db.connect() as conn:
        assert [r.id for r in conn.execute(stmt)] == [6, 7, 8]
    assert plan.indexed  # the primary key leads: counting pending rows is cheap


def test_timestamp_orders_by_timestamp_then_primary_key(db_contract: MakeContract, db: sa.Engine) -> None:
    plan, inc = plan_for(db_contract, db, {"mode": "timestamp", "timestamp_column": "updated_at"})
    upper = T0 + timedelta(seconds=3)
    stmt = select_rows(plan, inc, Cursor("timestamp", ts=(T0 + timedelta(seconds=1)).isoformat()), upper)
    sql, params = compiled(stmt)
    assert sql.endswith("WHERE orders.updated_at <= :upper AND orders.updated_at > :last_ts "
                        "ORDER BY orders.updated_at, orders.id")
    assert params == {"upper": upper, "last_ts": T0 + timedelta(seconds=1)}
    with db.connect() as conn:
        assert [r.id for r in conn.execute(stmt)] == [4, 5, 6, 7]  # ts 2 s and 3 s
    assert plan.indexed  # index on updated_at


def test_timestamp_incrementing_is_lexicographic(db_contract: MakeContract, db: sa.Engine) -> None:
    plan, inc = plan_for(db_contract, db, TSINC, fetch_size=3)
    last = T0 + timedelta(seconds=2)
    stmt = select_rows(plan, inc, Cursor(inc.mode, ts=last.isoformat(), id=4), T0 + timedelta(hours=1))
    sql, params = compiled(stmt)
    assert ("WHERE orders.updated_at <= :upper AND (orders.updated_at > :last_ts OR "
            "orders.updated_at = :same_ts AND orders.id > :last_id) AND orders.id IS NOT NULL "
            "ORDER BY orders.updated_at, orders.id") in sql
    assert params["last_ts"] == params["same_ts"] == last and params["last_id"] == 4
    with db.connect() as conn:
        assert [r.id for r in conn.execute(stmt)] == [5, 6, 7, 8]  # (2 s, 5) follows (2 s, 4)
        counted = conn.execute(count_rows(plan, inc, Cursor(inc.mode, ts=last.isoformat(), id=4),
                                          T0 + timedelta(hours=1))).scalar_one()
    assert counted == 4


def test_bulk_resumes_a_pass_at_its_row(db_contract: MakeContract, db: sa.Engine) -> None:
    plan, inc = plan_for(db_contract, db, "bulk")
    sql, _ = compiled(select_rows(plan, inc, Cursor("bulk")))
    assert sql == "SELECT orders.id, orders.note, orders.updated_at FROM orders ORDER BY orders.id"
    resumed = select_rows(plan, inc, Cursor("bulk", bulk_pass=2, bulk_row=5))
    sql, params = compiled(resumed)
    assert sql.endswith("ORDER BY orders.id LIMIT -1 OFFSET :param_1") and params == {"param_1": 5}
    with db.connect() as conn:
        assert [r.id for r in conn.execute(resumed)] == [6, 7, 8]


def test_identifiers_are_quoted_by_sqlalchemy(db_contract: MakeContract, db: sa.Engine) -> None:
    contract = db_contract({"url": str(db.url)}, {
        "path": "odd", "features": [{"name": "select", "dtype": "int"}, {"name": "Mixed Case", "dtype": "string"}],
        "incremental": {"mode": "incrementing", "incrementing_column": "select"}}, key=None)
    opts = dataset_options(contract, contract.datasets[0])
    with db.connect() as conn:
        plan = plan_source(conn, contract, opts)
    stmt = select_rows(plan, opts.incremental, Cursor("incrementing", id=0))
    assert compiled(stmt)[0] == ('SELECT odd."select", odd."Mixed Case" FROM odd WHERE odd."select" > :last_id '
                                 'ORDER BY odd."select"')
    assert 'odd."select", odd."Mixed Case"' in compiled(stmt, postgresql.dialect())[0]
    assert "odd.[select], odd.[Mixed Case]" in compiled(stmt, mssql.dialect())[0]
    assert "odd.`select`, odd.`Mixed Case`" in compiled(stmt, mysql.dialect())[0]


def test_query_mode_wraps_the_contract_query_as_a_subquery(db_contract: MakeContract, db: sa.Engine) -> None:
    query = "SELECT id, note, updated_at FROM orders WHERE note <> 'n3';"
    plan, inc = plan_for(db_contract, db, TSINC, query=query)
    stmt = select_rows(plan, inc, Cursor(inc.mode, ts=T0.isoformat(), id=1), T0 + timedelta(hours=1))
    sql, _ = compiled(stmt)
    assert sql.startswith("SELECT atlas_src.id, atlas_src.note, atlas_src.updated_at FROM (SELECT id, note, "
                          "updated_at FROM orders WHERE note <> 'n3') AS atlas_src WHERE atlas_src.updated_at <= ")
    assert sql.endswith("ORDER BY atlas_src.updated_at, atlas_src.id")
    with db.connect() as conn:
        rows = conn.execute(stmt).all()
    assert [r.id for r in rows] == [2, 4, 5, 6, 7, 8]
    assert isinstance(rows[0].updated_at, datetime)  # typed, even on SQLite
    assert not plan.indexed and plan.pk == ()


# ---------------------------------------------------------------------------------- names


@pytest.mark.parametrize("source, where, named", [
    ({"path": "orders; DROP TABLE orders"}, "$.dataset_config[0].source.path", "'orders; DROP TABLE orders'"),
    ({"path": 'orders" --'}, "$.dataset_config[0].source.path", "'orders\" --'"),
    ({"path": "nosuchschema.orders"}, "$.dataset_config[0].source.path", "schema 'nosuchschema'"),
    ({"path": "order"}, "$.dataset_config[0].source.path", "did you mean 'orders'"),
    ({"incremental": {"mode": "incrementing", "incrementing_column": 'id" OR 1=1 --'}},
     "$.dataset_config[0].source.incremental.incrementing_column", "'id\" OR 1=1 --'"),
    ({"incremental": {"mode": "timestamp", "timestamp_column": "updated_at; DELETE FROM orders"}},
     "$.dataset_config[0].source.incremental.timestamp_column", "'updated_at; DELETE FROM orders'"),
    ({"features": [{"name": "id", "dtype": "int"}, {"name": "note) FROM orders; DROP TABLE orders; --",
                                                    "dtype": "string"}]},
     "$.dataset_config[0].source.features[1].name", "'note) FROM orders; DROP TABLE orders; --'"),
    ({"query": "SELECT id FROM orders", "features": [{"name": "id", "dtype": "int"}],
      "incremental": {"mode": "incrementing", "incrementing_column": "idx"}},
     "$.dataset_config[0].source.incremental.incrementing_column", "column 'idx' does not exist in the query"),
])
def test_names_the_database_lacks_are_refused_before_anything_runs(tmp_path: Path, db_contract: MakeContract,
                                                                   db: sa.Engine, source: dict[str, Any], where: str,
                                                                   named: str) -> None:
    contract = db_contract({"url": str(db.url)}, source, key=None)
    opts = dataset_options(contract, contract.datasets[0])
    with db.connect() as conn, pytest.raises(ContractError) as err:
        plan_source(conn, contract, opts)
    assert err.value.json_path == where
    assert named in err.value.message and "nothing was read" in err.value.message
    assert str(tmp_path / "shop.json") in str(err.value)
    with db.connect() as conn:  # untouched
        assert conn.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 8

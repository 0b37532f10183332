"""The local PostgreSQL and MariaDB servers the database tests use, a fresh database on them, and
the orders table of the sample rdbms contract (metadata/ecommerce_transactions_rdbms.json)."""

from __future__ import annotations

import contextlib
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL

from .harness import ROOT

PG = URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", port=5432, database="postgres")
MARIADB = URL.create("mysql+pymysql", username="root", host="127.0.0.1", port=3306)


def admin_engine(url: URL) -> sa.Engine:
    """An autocommit engine on ``url``; the test fails saying which server is not running."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as exc:
        pytest.fail(f"{url.render_as_string(hide_password=True)} is not reachable ({exc.orig}); these tests "
                    "need the local PostgreSQL and MariaDB servers running")
    return engine


@contextlib.contextmanager
def fresh_database(kind: str, prefix: str = "atlas_it") -> Iterator[URL]:
    """A new, empty database on the local server of ``kind`` (postgresql or mariadb); dropped afterwards."""
    admin_url = PG if kind == "postgresql" else MARIADB
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"  # generated here: safe to put in DDL text
    admin = admin_engine(admin_url)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}" + (" WITH (FORCE)" if kind == "postgresql" else ""))
        admin.dispose()


CONTRACT = ROOT / "metadata" / "ecommerce_transactions_rdbms.json"
NOW = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
ORDER_COLUMNS = ["id", "order_number", "customer_id", "order_date", "status", "total_amount", "discount_amount",
                 "currency", "updated_at"]


def create_orders(url: URL, n: int, seed: int = 1) -> list[tuple[Any, ...]]:
    """An orders table with clean rows and defects the checks catch."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    md = sa.MetaData()
    ts = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    table = sa.Table(
        "orders", md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("order_number", sa.String(20)), sa.Column("customer_id", sa.BigInteger),
        sa.Column("order_date", ts), sa.Column("status", sa.String(20)),
        sa.Column("total_amount", sa.Numeric(12, 2)), sa.Column("discount_amount", sa.Numeric(12, 2)),
        sa.Column("currency", sa.String(3)), sa.Column("updated_at", ts),
    )
    md.create_all(engine)
    rng = random.Random(seed)
    rows = []
    for i in range(1, n + 1):
        total = Decimal(rng.randint(0, 100_000)) / 100
        row = [i, f"SO-{i:08d}", rng.randint(1, 500), NOW - timedelta(hours=3), "paid", total,
               (total / 10).quantize(Decimal("0.01")), "EUR", NOW - timedelta(hours=1)]
        defect = rng.random()
        if defect < 0.05:
            row[6] = None  # filled with 0.00
        elif defect < 0.10:
            row[4] = "lost"
        elif defect < 0.15:
            row[1] = f"BAD-{i}"
        elif defect < 0.20:
            row[8] = NOW - timedelta(days=3)  # stale
        elif defect < 0.25:
            row[6] = total + 1  # discount above total: a rule and net_amount's min fail
        elif defect < 0.28:
            row[3] = None  # a required field missing: rejected
        rows.append(tuple(row))
    with engine.begin() as conn:
        for start in range(0, n, 2000):
            conn.execute(table.insert(), [dict(zip(ORDER_COLUMNS, r)) for r in rows[start:start + 2000]])
    # as the driver hands them back (numeric(12,2) gives Decimal('997.40'), ...)
    with engine.connect() as conn:
        stored = [tuple(r) for r in conn.execute(sa.select(*table.c).order_by(table.c.id))]
    engine.dispose()
    return stored


def contract_for(tmp_path: Path, kind: str, **source: Any) -> Path:
    """The sample contract, orders only; MariaDB has no ``public`` schema."""
    doc = json.loads(CONTRACT.read_text())
    doc["dataset_config"] = doc["dataset_config"][:1]
    if kind == "mariadb":
        doc["dataset_config"][0]["source"]["path"] = "orders"
    doc["dataset_config"][0]["source"].update(source)
    meta = tmp_path / "meta"
    meta.mkdir(exist_ok=True)
    (meta / "rdbms.json").write_text(json.dumps(doc))
    return meta

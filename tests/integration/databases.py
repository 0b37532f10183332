"""The local PostgreSQL and MariaDB servers the database tests use, and a fresh database on them."""

from __future__ import annotations

import contextlib
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL

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

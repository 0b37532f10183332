"""Fixtures of the batch integration tests."""

from __future__ import annotations

from typing import Iterator

import pytest
from sqlalchemy.engine import URL

from ..databases import fresh_database


@pytest.fixture(params=["postgresql", "mariadb"])
def db(request: pytest.FixtureRequest) -> Iterator[tuple[str, URL]]:
    """A fresh PostgreSQL or MariaDB database per test: ``(kind, url)``."""
    with fresh_database(request.param, prefix="atlas_batch") as url:
        yield request.param, url

"""The database poller (``source_type: rdbms``): new and changed rows of tables -> raw topics, exactly once.

``source`` is the polled source, ``pass_`` one pass over a table, ``query`` the SQL,
``rows`` rows -> JSON and positions, ``config`` the contract's connection and dataset options.
"""

from __future__ import annotations

from ...model import Contract
from ...settings import Settings
from ..interface import PolledSource
from .pass_ import DatabaseQueryError, DatabaseUnavailable
from .source import DatabaseSource, build_database_sources, make_engine

__all__ = ["DatabaseQueryError", "DatabaseSource", "DatabaseUnavailable", "build_database_sources", "make_engine",
           "sources_for"]


def sources_for(contract: Contract, settings: Settings, dataset: str | None,
                once: bool) -> list[tuple[PolledSource, float]]:
    """The registry's entry (:mod:`..kinds`)."""
    return build_database_sources(contract, settings, dataset)

"""Which package reads each ``source_type``: the one place a source kind is chosen.

Like faust's store registry (``faust/stores/__init__.py``), a name maps to where the
implementation lives, and the implementation is imported only when it is used: a contract of one
kind never imports another kind's optional dependencies (SQLAlchemy drivers, aiohttp, ...).
A polled kind's package exports ``sources_for`` (a :data:`~.interface.SourceFactory`); the
gateway's kinds are pushed to ``python -m atlas_stream gateway`` and have no poller.
"""

from __future__ import annotations

from importlib import import_module
from typing import cast

from .interface import SourceFactory

__all__ = ["GATEWAY", "POLLED_KINDS", "SOURCE_KINDS", "factory_for"]

#: The package that serves the kinds whose records are pushed rather than polled.
GATEWAY = "gateway"

#: ``source_type`` (contract.schema.json; ``streaming`` is read as ``stream``) -> subpackage of
#: ``atlas_stream.sources`` that reads it. A new kind: its package plus one line here.
SOURCE_KINDS: dict[str, str] = {
    "fs": "files",
    "rdbms": "database",
    "api": "rest",
    "kafka": "kafka",
    "websocket": GATEWAY,
    "stream": GATEWAY,
}

#: source_type values the poll command reads; websocket/stream records arrive through the gateway.
POLLED_KINDS: tuple[str, ...] = tuple(kind for kind, package in SOURCE_KINDS.items() if package != GATEWAY)


def factory_for(source_type: str) -> SourceFactory | None:
    """The ``sources_for`` of the package that polls ``source_type``; None when nothing polls it
    (the gateway's kinds, or a kind this build does not know)."""
    package = SOURCE_KINDS.get(source_type)
    if package is None or package == GATEWAY:
        return None
    return cast(SourceFactory, import_module(f"{__package__}.{package}").sources_for)

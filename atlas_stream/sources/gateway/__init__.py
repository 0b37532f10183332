"""The WebSocket gateway (``source_type: websocket`` and ``stream``): pushed frames -> raw topics.

``server`` runs the ``gateway`` command, ``connection`` serves one WebSocket, ``frames`` parses
frames, ``routes`` and ``auth`` decide who may send what where, ``publish`` bounds what is in
flight to the broker, ``status`` reports each dataset to ``atlas.sources.status``.
"""

from __future__ import annotations

from .server import run_gateway

__all__ = ["run_gateway"]

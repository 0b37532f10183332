"""The REST API poller (``source_type: api``): paginated GETs -> raw topics, exactly once.

``source`` is the polled source, ``pagination`` one small class per pagination style,
``http`` Link headers, retries, rate limit and safe URLs, ``config`` the contract's options.
"""

from __future__ import annotations

from ...model import Contract
from ...settings import Settings
from ..interface import PolledSource
from .source import ApiRequestRefused, RestSource, build_rest_sources

__all__ = ["ApiRequestRefused", "RestSource", "build_rest_sources", "sources_for"]


def sources_for(contract: Contract, settings: Settings, dataset: str | None,
                once: bool) -> list[tuple[PolledSource, float]]:
    """The registry's entry (:mod:`..kinds`)."""
    return build_rest_sources(contract, settings, dataset)

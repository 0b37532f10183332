"""Asking the other workers for their partitions' part of an answer (HTTP fan-out).

Who the other workers are comes from Faust's partition assignor: every member advertises its
web URL (``canonical_url``) with its group metadata, and ``app.router.tables_metadata()`` maps
each URL to the table partitions it owns after the last rebalance.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping

import aiohttp
from yarl import URL

__all__ = ["LOCAL_PREFIX", "peer_urls", "fetch_all"]

log = logging.getLogger(__name__)

#: Worker-local answers (this worker's partitions only) live under this path.
LOCAL_PREFIX = "/_atlas/local"
#: How long a peer may take to answer.
PEER_TIMEOUT = 5.0


def _ident(url: Any) -> tuple[str, int]:
    u = URL(str(url))
    return (u.host or "", int(u.port or 80))


def peer_urls(app: Any) -> list[str]:
    """Web URLs of the other members of the consumer group, as the assignor last saw them."""
    try:
        metadata: Mapping[str, Any] = app.router.tables_metadata()
    except Exception:  # noqa: BLE001  # no assignment yet
        return []
    me = _ident(app.conf.canonical_url)
    return sorted({str(url) for url in metadata if _ident(url) != me})


async def _fetch(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    try:
        timeout = aiohttp.ClientTimeout(total=PEER_TIMEOUT)
        async with session.get(url, timeout=timeout) as response:
            if response.status != 200:
                return {"url": url, "error": f"HTTP {response.status}"}
            doc = await response.json(content_type=None)
            return doc if isinstance(doc, dict) else {"url": url, "error": "not a JSON object"}
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
        log.warning("peer %s did not answer: %s", url, exc or type(exc).__name__)
        return {"url": url, "error": str(exc) or type(exc).__name__}


async def fetch_all(app: Any, path: str, query: str = "") -> list[dict[str, Any]]:
    """GET ``LOCAL_PREFIX + path`` from every other worker, concurrently; failures come back as
    ``{"url", "error"}`` entries (their partitions are then reported missing)."""
    urls = peer_urls(app)
    if not urls:
        return []
    suffix = f"{LOCAL_PREFIX}{path}" + (f"?{query}" if query else "")
    session = app.http_client
    return list(await asyncio.gather(*(_fetch(session, u.rstrip("/") + suffix) for u in urls)))

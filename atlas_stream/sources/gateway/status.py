"""Gateway source status: per-dataset counters and the periodic reports to atlas.sources.status."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from ...topics import SOURCE_STATUS_TOPIC
from ..interface import SourceStatus

__all__ = ["STATUS_INTERVAL", "SourceStats", "StatusReporter", "status_message"]

log = logging.getLogger(__name__)

#: Seconds between two reports when nothing changes.
STATUS_INTERVAL = 10.0


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


@dataclass
class SourceStats:
    """What the gateway knows about one dataset's traffic since it started."""

    source: str
    rows: int = 0
    last_frame: float | None = None
    last_error: str | None = None
    degraded: bool = False

    @property
    def state(self) -> SourceStatus:
        return "degraded" if self.degraded else "running"


def status_message(stats: SourceStats, state: SourceStatus, now: float | None = None) -> dict[str, Any]:
    """The JSON object published to ``atlas.sources.status`` (keyed by ``source``)."""
    return {
        "source": stats.source,
        "kind": "gateway",
        "state": state,
        "last_poll": _iso(stats.last_frame) if stats.last_frame is not None else None,
        "rows": stats.rows,
        "lag": None,
        "last_error": stats.last_error,
        "time": _iso(time.time() if now is None else now),
    }


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()  # a late failure is logged by report(), not as "never retrieved"


class _Producer(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None = ...) -> asyncio.Future[Any]: ...


class StatusReporter:
    """Reports every source every ``interval`` seconds, and at once when a state changes.

    A report that the broker does not take within ``timeout`` is skipped (the next one carries
    the same counters): status never holds up the records themselves.
    """

    def __init__(self, producer: _Producer, stats: Iterable[SourceStats], interval: float = STATUS_INTERVAL,
                 timeout: float = 5.0) -> None:
        self.producer = producer
        self.stats = list(stats)
        self.interval = interval
        self.timeout = timeout
        self._wake = asyncio.Event()
        self._reported: dict[str, SourceStatus] = {}
        self._failing = False

    def changed(self) -> None:
        """Call after updating the stats; reports now if a state differs from the last report."""
        if any(self._reported.get(s.source) != s.state for s in self.stats):
            self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            await self.report()
            try:
                await asyncio.wait_for(self._wake.wait(), self.interval)
            except TimeoutError:
                pass

    async def report(self, final_state: SourceStatus | None = None) -> bool:
        """Publish one report per source; ``final_state`` (``stopped``) overrides the states."""
        now = time.time()
        states = {s.source: final_state or s.state for s in self.stats}
        try:
            async with asyncio.timeout(self.timeout):
                futures = []
                for s in self.stats:
                    fut = await self.producer.send(SOURCE_STATUS_TOPIC,
                                                   orjson.dumps(status_message(s, states[s.source], now)),
                                                   key=s.source.encode())
                    fut.add_done_callback(_retrieve)
                    futures.append(fut)
                if futures:
                    await asyncio.wait(futures)  # unlike gather, a timeout leaves them to the producer
            failures = [f.exception() for f in futures if f.exception() is not None]
            if failures:
                raise failures[0]  # type: ignore[misc]
        except Exception as exc:  # noqa: BLE001  # the broker is down or slow: keep serving
            if not self._failing:
                log.warning("source status report failed (%s: %s); retrying every %gs",
                            type(exc).__name__, exc, self.interval)
            self._failing = True
            return False
        if self._failing:
            log.info("source status reports published again")
        self._failing = False
        self._reported = states
        return True

"""Publishing gateway frames with acks=all inside a bounded budget of in-flight records."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiokafka.errors import KafkaError

__all__ = ["Outcome", "Publisher", "RecordBudget"]


class _Producer(Protocol):
    async def send(self, topic: str, value: bytes, key: bytes | None = ...) -> asyncio.Future[Any]: ...


@dataclass
class Outcome:
    """Which records of a frame the broker acknowledged (indexes into the frame)."""

    accepted: list[int] = field(default_factory=list)
    not_accepted: list[int] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return not self.not_accepted


class RecordBudget:
    """At most ``limit`` records wait for the broker at once, over all connections.

    Waiters are served first come, first served, so a large frame is not starved by small ones.
    A request larger than the whole budget is clamped to it.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the in-flight budget needs room for at least one record")
        self.limit = limit
        self.used = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def acquire(self, n: int) -> int:
        """Wait for room for ``n`` records; returns how many were granted (release that many)."""
        n = min(n, self.limit)
        if not self._waiters and self.used + n <= self.limit:
            self.used += n
            return n
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (n, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(n)  # granted just as the wait was given up
            else:
                self._waiters.remove(entry)
                self._wake()  # a smaller waiter behind this one may fit now
            raise
        return n

    def release(self, n: int) -> None:
        self.used -= n
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.used + self._waiters[0][0] <= self.limit:
            n, waiter = self._waiters.popleft()
            if not waiter.done():
                self.used += n
                waiter.set_result(None)


class Publisher:
    """Sends a frame's records and reports, per record, whether the broker acknowledged it
    within ``timeout`` seconds. It never reports a record as accepted before its ack."""

    def __init__(self, producer: _Producer, budget: RecordBudget, timeout: float) -> None:
        self.producer = producer
        self.budget = budget
        self.timeout = timeout

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        if not fut.cancelled():
            fut.exception()  # retrieved: a late failure is no "never retrieved" warning
        self.budget.release(1)

    async def publish(self, topic: str, values: Sequence[bytes], keys: Sequence[bytes | None],
                      in_order: asyncio.Lock | None = None) -> Outcome:
        """Publish one frame. Frames that share ``in_order`` enter the producer one after the
        other, in the order their calls started, so their records keep that order per partition."""
        n = len(values)
        if n == 0:
            return Outcome()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        futures: list[asyncio.Future[Any]] = []
        granted = 0
        reason: str | None = None
        try:
            async with asyncio.timeout_at(deadline), in_order or contextlib.nullcontext():
                granted = await self.budget.acquire(n)
                for value, key in zip(values, keys):
                    fut = await self.producer.send(topic, value, key=key)
                    # The budget is given back as each record settles, not when the reply is
                    # sent: records the broker has not answered yet still hold memory.
                    if len(futures) < granted:
                        fut.add_done_callback(self._settled)
                    futures.append(fut)
        except TimeoutError:
            if not granted:
                reason = (f"the gateway is at its limit of {self.budget.limit} records waiting for the "
                          f"broker and had no room within {self.timeout:g}s")
            else:
                reason = f"the broker did not take the records within {self.timeout:g}s"
        except KafkaError as exc:
            reason = f"broker error: {type(exc).__name__}: {exc}"
        finally:
            unsent = granted - min(len(futures), granted)
            if unsent:
                self.budget.release(unsent)
        if futures:
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait(futures, timeout=remaining)
        out = Outcome()
        for i, fut in enumerate(futures):
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                out.accepted.append(i)
                continue
            out.not_accepted.append(i)
            if reason is None:
                if not fut.done():
                    reason = f"the broker did not acknowledge them within {self.timeout:g}s"
                elif not fut.cancelled():
                    failure = fut.exception()
                    reason = f"broker error: {type(failure).__name__}: {failure}"
        out.not_accepted.extend(range(len(futures), n))
        if out.not_accepted:
            out.error = f"{len(out.not_accepted)} of {n} records not accepted: {reason or 'unknown error'}"
        return out

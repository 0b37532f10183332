"""The one retry policy: exponential, capped, with equal jitter, for sources, sinks and the lake.

Every loop that waits out an outage (a database, a REST API, Elasticsearch, the lake, a Kafka read)
draws its delays from a :class:`Backoff`. The jitter matters: after an outage every worker of a
consumer group fails at the same moment; delays drawn from the same doubling sequence without
jitter make them all retry in the same instant again ("thundering herd").

    delay(n) = uniform(cap_n / 2, cap_n)   where cap_n = min(cap, first * 2 ** n)

("equal jitter": never shorter than half the step, so a retry never hammers a service that is
down, and never in step with another worker's.)
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Backoff", "RetryPolicy", "retry_async", "retry_sync"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How long to wait between attempts: ``first`` seconds, doubling up to ``cap``.

    ``give_up_after`` (seconds of continuous failure) is ``None`` for "retry forever", the right
    choice wherever giving up would acknowledge something that was not written."""

    first: float = 0.5
    cap: float = 30.0
    give_up_after: float | None = None

    def backoff(self) -> Backoff:
        return Backoff(self)


DEFAULT = RetryPolicy()


class Backoff:
    """The state of one retry loop: how many attempts failed in a row and since when."""

    def __init__(self, policy: RetryPolicy = DEFAULT, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.failures = 0
        self.since: float | None = None
        self._rng = rng or random.Random()

    def next(self) -> float:
        """Record one failure and return how long to wait before the next attempt."""
        if self.since is None:
            self.since = time.monotonic()
        step = min(self.policy.cap, self.policy.first * 2 ** min(self.failures, 62))
        self.failures += 1
        return self._rng.uniform(step / 2, step)

    def failing_for(self) -> float:
        """Seconds since the first failure of the current run of failures (0 when none)."""
        return 0.0 if self.since is None else time.monotonic() - self.since

    def exhausted(self) -> bool:
        """True once the policy's ``give_up_after`` has passed (never when it is None)."""
        limit = self.policy.give_up_after
        return limit is not None and self.failing_for() > limit

    def reset(self) -> None:
        """An attempt succeeded: the next failure starts from the first delay again."""
        self.failures, self.since = 0, None


async def retry_async(op: Callable[[], Awaitable[T]], *, retry_on: tuple[type[BaseException], ...],
                      policy: RetryPolicy = DEFAULT,
                      on_retry: Callable[[BaseException, int, float], None] | None = None) -> T:
    """Await ``op()`` until it returns; on ``retry_on`` wait per ``policy`` and try again.

    ``on_retry(exc, attempt, delay)`` is called before each wait (log there). When the policy gives
    up, the last exception propagates."""
    backoff = policy.backoff()
    while True:
        try:
            return await op()
        except retry_on as exc:
            await asyncio.sleep(_after_failure(backoff, exc, on_retry))


def retry_sync(op: Callable[[], T], *, retry_on: tuple[type[BaseException], ...],
               policy: RetryPolicy = DEFAULT,
               on_retry: Callable[[BaseException, int, float], None] | None = None,
               sleep: Callable[[float], None] = time.sleep) -> T:
    """The blocking twin of :func:`retry_async`, for code that runs in a worker thread."""
    backoff = policy.backoff()
    while True:
        try:
            return op()
        except retry_on as exc:
            sleep(_after_failure(backoff, exc, on_retry))


def _after_failure(backoff: Backoff, exc: BaseException,
                   on_retry: Callable[[BaseException, int, float], None] | None) -> float:
    """Count a failure: re-raise ``exc`` when the policy gives up, else report and return the wait."""
    delay = backoff.next()
    if backoff.exhausted():
        raise exc
    if on_retry is not None:
        on_retry(exc, backoff.failures, delay)
    return delay

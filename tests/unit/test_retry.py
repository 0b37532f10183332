"""The one retry policy: delays double up to the cap, carry jitter, and stop only when told."""

from __future__ import annotations

import asyncio
import random

import pytest

from atlas_stream.retry import Backoff, RetryPolicy, retry_async, retry_sync


def test_delays_double_up_to_the_cap_and_never_fall_below_half_a_step() -> None:
    backoff = Backoff(RetryPolicy(first=0.5, cap=4.0), rng=random.Random(1))
    delays = [backoff.next() for _ in range(8)]
    steps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    for delay, step in zip(delays, steps):
        assert step / 2 <= delay <= step


def test_two_workers_failing_together_do_not_retry_in_step() -> None:
    a, b = Backoff(rng=random.Random(1)), Backoff(rng=random.Random(2))
    assert [round(a.next(), 3) for _ in range(5)] != [round(b.next(), 3) for _ in range(5)]


def test_reset_starts_again_from_the_first_delay() -> None:
    backoff = Backoff(RetryPolicy(first=1.0, cap=60.0))
    for _ in range(5):
        backoff.next()
    backoff.reset()
    assert backoff.next() <= 1.0 and backoff.failing_for() < 1.0


def test_retry_sync_retries_only_what_it_is_told_and_reports_each_wait() -> None:
    calls, waits = [], []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("down")
        return "ok"

    seen: list[int] = []
    assert retry_sync(flaky, retry_on=(ConnectionError,), sleep=waits.append,
                      on_retry=lambda exc, attempt, delay: seen.append(attempt)) == "ok"
    assert len(calls) == 3 and len(waits) == 2 and seen == [1, 2]
    with pytest.raises(KeyError):
        retry_sync(lambda: {}["x"], retry_on=(ConnectionError,), sleep=waits.append)


def test_retry_async_gives_up_after_the_policy_says_so() -> None:
    async def always_down() -> None:
        raise TimeoutError("still down")

    policy = RetryPolicy(first=0.001, cap=0.002, give_up_after=0.02)
    with pytest.raises(TimeoutError):
        asyncio.run(retry_async(always_down, retry_on=(TimeoutError,), policy=policy))

"""The gateway's in-flight record budget: bounded, first come first served, safe to abandon."""

from __future__ import annotations

import asyncio

import pytest

from atlas_stream.sources.gateway.publish import RecordBudget
from atlas_stream.sources.gateway.status import SourceStats, status_message


async def test_waiters_are_served_in_order_when_room_is_released() -> None:
    budget = RecordBudget(10)
    assert await budget.acquire(8) == 8
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        await budget.acquire(n)
        order.append(name)

    big = asyncio.create_task(take("big", 6))
    await asyncio.sleep(0)
    small = asyncio.create_task(take("small", 1))  # would fit now, but waits behind "big"
    await asyncio.sleep(0.01)
    assert order == [] and budget.used == 8
    budget.release(5)
    await asyncio.wait_for(asyncio.gather(big, small), 1)
    assert order == ["big", "small"] and budget.used == 3 + 6 + 1


async def test_a_request_larger_than_the_budget_is_clamped() -> None:
    budget = RecordBudget(5)
    assert await budget.acquire(50) == 5
    budget.release(5)
    assert budget.used == 0


async def test_an_abandoned_wait_gives_its_place_up() -> None:
    budget = RecordBudget(4)
    await budget.acquire(4)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(budget.acquire(3), 0.05)
    behind = asyncio.create_task(budget.acquire(1))
    await asyncio.sleep(0.01)
    budget.release(1)
    assert await asyncio.wait_for(behind, 1) == 1
    assert budget.used == 4


def test_status_message_shape() -> None:
    stats = SourceStats("gateway:g.d", rows=12, last_frame=0.0, last_error=None)
    msg = status_message(stats, stats.state, now=60.0)
    assert msg == {"source": "gateway:g.d", "kind": "gateway", "state": "running",
                   "last_poll": "1970-01-01T00:00:00+00:00", "rows": 12, "lag": None, "last_error": None,
                   "time": "1970-01-01T00:01:00+00:00"}
    stats.degraded, stats.last_error = True, "broker down"
    assert status_message(stats, stats.state)["state"] == "degraded"
    assert status_message(SourceStats("gateway:g.d"), "stopped")["last_poll"] is None

"""atlas_stream.taskdump: the await chain goes through awaitables that are not coroutines (as a
Faust agent is awaited through its actor) down to the line a task waits on."""

from __future__ import annotations

import asyncio
from typing import Any, Generator

from atlas_stream.taskdump import await_chain, dump_tasks


class _Actor:
    """Awaits a coroutine through ``__await__``, as faust's AgentActor does."""

    def __init__(self, coro: Any) -> None:
        self.coro = coro

    def __await__(self) -> Generator[Any, None, Any]:
        return self.coro.__await__()


async def _agent(stop: asyncio.Event) -> None:
    async for _ in _events(stop):
        pass


async def _events(stop: asyncio.Event) -> Any:
    await stop.wait()
    yield 1


async def _execute_actor(stop: asyncio.Event) -> None:
    await _Actor(_agent(stop))


def test_the_chain_reaches_the_line_an_agent_waits_on() -> None:
    async def main() -> tuple[list[str], str]:
        stop = asyncio.Event()
        task = asyncio.create_task(_execute_actor(stop), name="the-agent")
        await asyncio.sleep(0.01)
        chain, dump = await_chain(task), dump_tasks()
        stop.set()
        await task
        return chain, dump

    chain, dump = asyncio.run(main())
    names = [frame.rsplit(" in ", 1)[1] for frame in chain]
    assert names[:3] == ["_execute_actor", "_agent", "_events"], chain
    assert any(name == "wait" for name in names[3:]), chain  # asyncio.Event.wait
    assert "TASK the-agent" in dump and "in _events" in dump

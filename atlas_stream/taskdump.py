"""Where every asyncio task of a worker waits, one line per frame: ``kill -USR2 <worker pid>``.

mode's SIGUSR1 dump (``cry``) prints each task's stack with its locals, but it stops at the first
awaitable that is not a coroutine, and a Faust agent's coroutine is awaited through such an
object (``AgentActor.__await__``): the dump shows ``await coro`` for every agent and never the
line the agent waits on. This walks through those wrappers (the coroutine or async generator a
wrapper drives is among its referents) down to the future a task waits for.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from types import FrameType
from typing import Any, Callable

__all__ = ["await_chain", "dump_tasks", "install"]

log = logging.getLogger(__name__)

_FRAME = ("cr_frame", "ag_frame", "gi_frame")
_AWAITS = ("cr_await", "ag_await", "gi_yieldfrom")


def _frame(obj: Any) -> FrameType | None:
    for name in _FRAME:
        frame = getattr(obj, name, None)
        if frame is not None:
            return frame  # type: ignore[no-any-return]
    return None


def _next(obj: Any) -> Any:
    for name in _AWAITS:
        nxt = getattr(obj, name, None)
        if nxt is not None:
            return nxt
    if _frame(obj) is None and not isinstance(obj, asyncio.Future):
        # A wrapper (coroutine_wrapper, async_generator_asend, an actor's __await__): follow the
        # coroutine or generator it drives.
        for ref in gc.get_referents(obj):
            if any(hasattr(ref, name) for name in _FRAME):
                return ref
    return None


def await_chain(task: asyncio.Task[Any], limit: int = 40) -> list[str]:
    """The frames ``task`` is suspended in, outermost first, as ``file:line in function``,
    ending with what it waits for when that is not a coroutine (a future, a task)."""
    out: list[str] = []
    obj: Any = task.get_coro()
    seen: set[int] = set()
    while obj is not None and id(obj) not in seen and len(out) < limit:
        seen.add(id(obj))
        frame = _frame(obj)
        if frame is not None:
            out.append(f"{frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}")
        elif isinstance(obj, asyncio.Future):
            out.append(f"waiting for {obj!r}"[:300])
            break
        obj = _next(obj)
    return out


def dump_tasks() -> str:
    """Every task of the running loop with its await chain."""
    lines = []
    for task in asyncio.all_tasks():
        lines.append(f"TASK {task.get_name()}")
        lines += [f"    {frame}" for frame in await_chain(task)]
    return "\n".join(lines)


def install(extra: Callable[[], str] | None = None) -> None:
    """Log :func:`dump_tasks` on SIGUSR2, followed by ``extra()`` when given (call with the
    worker's loop running)."""
    loop = asyncio.get_running_loop()

    def dump() -> None:
        more = ""
        if extra is not None:
            try:
                more = "\n" + extra()
            except Exception as exc:  # noqa: BLE001 - a diagnostic must not break the worker
                more = f"\n(state not available: {exc!r})"
        log.warning("asyncio tasks (SIGUSR2):\n%s%s\nEND OF TASKS", dump_tasks(), more)

    loop.add_signal_handler(signal.SIGUSR2, dump)

"""Reading, scoring and writing of one dataset overlapped: a reader thread, a scoring pool and
the caller's thread, in input order, with a bounded number of batches in flight."""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from types import TracebackType
from typing import Callable, Generic, Iterator, TypeVar

__all__ = ["Overlapped"]

In = TypeVar("In")
Out = TypeVar("Out")

#: How often a blocked reader looks whether the run was stopped (seconds).
_POLL = 0.1


class _End:
    """The reader's last word: the input is done (``error`` None) or failed with ``error``."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Overlapped(Generic[In, Out]):
    """``with Overlapped(items, fn, workers, ahead) as run: for item, result in run: ...``

    Guarantees: results come in the order of ``items``; ``items`` is iterated (and closed) in
    one reader thread, which submits each item to a pool of ``workers`` threads running ``fn``
    (Arrow's CSV reader and compute kernels release the GIL, so reading, scoring and whatever
    the caller does with a result overlap); at most ``ahead`` submitted items wait for the
    caller, plus the one the caller holds and the one the reader holds, so memory stays bounded.
    An error in ``items`` or ``fn`` is raised, as it is, by the caller's loop, at the position of
    the item it concerns. Leaving the ``with`` block (done, error, KeyboardInterrupt) stops the
    reader after its current item, cancels what was not started and waits for what was."""

    def __init__(self, items: Iterator[In], fn: Callable[[In], Out], workers: int, ahead: int) -> None:
        self.items = items
        self.fn = fn
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="atlas-batch")
        self.waiting: queue.Queue[tuple[In, Future[Out]] | _End] = queue.Queue(maxsize=max(1, ahead))
        self.stop = threading.Event()
        self.reader = threading.Thread(target=self._read, name="atlas-batch-read", daemon=True)

    def __enter__(self) -> Overlapped[In, Out]:
        self.reader.start()
        return self

    def __iter__(self) -> Iterator[tuple[In, Out]]:
        while True:
            entry = self.waiting.get()
            if isinstance(entry, _End):
                if entry.error is not None:
                    raise entry.error
                return
            item, job = entry
            yield item, job.result()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop.set()
        while self.reader.is_alive():
            self._cancel_waiting()
            self.reader.join(_POLL)
        self._cancel_waiting()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def _cancel_waiting(self) -> None:
        while True:
            try:
                entry = self.waiting.get_nowait()
            except queue.Empty:
                return
            if not isinstance(entry, _End):
                entry[1].cancel()

    def _read(self) -> None:
        end = _End()
        try:
            for item in self.items:
                job = self.pool.submit(self.fn, item)
                if not self._put((item, job)):
                    job.cancel()
                    return
        except BaseException as exc:  # handed to the caller's thread, which raises it
            end = _End(exc)
        finally:
            close = getattr(self.items, "close", None)
            if close is not None:
                close()
        self._put(end)

    def _put(self, entry: tuple[In, Future[Out]] | _End) -> bool:
        """Wait for room; False once the caller has left."""
        while not self.stop.is_set():
            try:
                self.waiting.put(entry, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

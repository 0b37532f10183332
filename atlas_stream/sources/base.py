"""What every poller builds on: the source interface, exactly-once runner, status reports."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncGenerator, Callable, ClassVar

from ..errors import AtlasError, ConfigError, RetriableError
from ..model import Contract, Dataset
from ..messages import dlq_message, encode
from ..settings import Settings
from ..topics import SOURCE_STATUS_TOPIC, dlq_topic, raw_topic
from .checkpoint import SourceLock, SourceState, checkpoint_path
from .publisher import HEADER_POSITION, HEADER_SOURCE, OutRecord, Publisher, merge_offsets

__all__ = [
    "HEADER_POSITION",
    "HEADER_SOURCE",
    "Backoff",
    "Batch",
    "DatasetSource",
    "OutRecord",
    "PolledSource",
    "Publisher",
    "SourceRunner",
    "SourceState",
    "StatusReporter",
    "dead_letter",
    "sleep_unless",
]

log = logging.getLogger(__name__)

#: Status messages are sent on every change, and at least this often (seconds).
STATUS_EVERY = 10.0


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc).isoformat()


@dataclass
class Batch:
    """Records to publish together, and the source position once they are durable.

    ``position`` is JSON the source understands (None means "from the start"). The runner fills
    ``sent_rows``/``sent_dead`` with what it actually published (records already published before
    a crash are skipped) before it asks the source for the next batch.
    """

    records: list[OutRecord]
    position: Any
    sent_rows: int = 0
    sent_dead: int = 0


def select_datasets(contract: Contract, dataset: str | None) -> list[Dataset]:
    """The contract's datasets, or only the one named (``poll --dataset``); ConfigError if unknown."""
    if dataset is None:
        return list(contract.datasets)
    chosen = [ds for ds in contract.datasets if ds.name == dataset]
    if not chosen:
        names = ", ".join(ds.name for ds in contract.datasets)
        raise ConfigError(f"contract {contract.group!r} has no dataset {dataset!r} (it has: {names})")
    return chosen


def dead_letter(dlq: str, dataset: str | None, source_id: str, position: str, error: str, raw: bytes,
                max_bytes: int, **where: Any) -> OutRecord:
    """A dead letter for input a source cannot turn into a record. ``where`` (file, line, row,
    table, ...) is added to the message's ``source`` next to the source id and position."""
    value = dlq_message(error, "source", {"source": source_id, "position": position, **where}, None, raw,
                        max_bytes, dataset=dataset)
    return OutRecord(dlq, None, value, position, dead=True)


class PolledSource(ABC):
    """A source read by polling: files now; database tables, REST APIs and Kafka later.

    Contract with :class:`SourceRunner`:
    - ``poll(position)`` is one pass: from ``position`` (None on the very first start) it yields
      :class:`Batch` objects until it has caught up, then returns.
    - The runner asks for the next batch only after the previous one is durable (acknowledged by
      the broker and checkpointed), so work that must follow durability (archiving a file,
      acknowledging upstream) goes right after a ``yield``.
    - Positions are deterministic: re-reading from a checkpointed position yields the same record
      under the same position string. Exactly-once publication rests on it.
    - Bad input never raises: it becomes a :func:`dead_letter`. Blocking I/O runs in threads.
    """

    kind: ClassVar[str] = "source"

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        #: Set by the runner: report a problem that is not fatal (shown as ``last_error``).
        self.report: Callable[[str], None] = lambda message: log.warning("%s: %s", source_id, message)

    @abstractmethod
    def topics(self) -> list[str]:
        """Every topic the source writes (raw topics and dead-letter topic)."""

    @abstractmethod
    def poll(self, position: Any) -> AsyncGenerator[Batch, None]:
        """One pass over the source from ``position``."""

    async def check(self) -> None:
        """Raise SettingsError/ConfigError for what no retry can fix (wrong credentials), once at
        start; an unreachable source is not an error here. Default: nothing to check."""
        return None

    def lag(self) -> int | None:
        """How far behind the source is, in its own unit (None: unknown)."""
        return None


class StatusReporter:
    """Publishes ``{"source", "kind", "state", "last_poll", "rows", "lag", "last_error", "time"}``
    to ``atlas.sources.status`` keyed by the source id, on every change of state or error and at
    least every 10 s while running. Best effort: a status that cannot be sent is not retried
    (the next one carries the current state)."""

    def __init__(self, publisher: Publisher, source_id: str, kind: str, every: float = STATUS_EVERY) -> None:
        self.publisher = publisher
        self.every = every
        self.doc: dict[str, Any] = {"source": source_id, "kind": kind, "state": "running", "last_poll": None,
                                    "rows": 0, "lag": None, "last_error": None, "time": None}
        self._changed = asyncio.Event()
        self._changed.set()
        self._closed = False

    def update(self, **fields: Any) -> None:
        before = (self.doc["state"], self.doc["last_error"])
        self.doc.update(fields)
        if (self.doc["state"], self.doc["last_error"]) != before:
            self._changed.set()

    async def send(self) -> bool:
        self.doc["time"] = _iso()
        try:
            await self.publisher.send_status(SOURCE_STATUS_TOPIC, self.doc["source"].encode(), encode(self.doc))
            return True
        except AtlasError as exc:
            log.debug("%s: status not sent: %s", self.doc["source"], exc)
            return False

    async def run(self) -> None:
        """Send on change and every ``every`` seconds, until :meth:`close`."""
        while not self._closed:
            await _wait_event(self._changed, self.every)
            self._changed.clear()
            if not self._closed:
                await self.send()

    def close(self) -> None:
        """Make :meth:`run` return at once (the caller sends the final status)."""
        self._closed = True
        self._changed.set()


class Backoff:
    """Exponential backoff with jitter: 0.5 s, 1 s, 2 s ... up to ``cap``."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap, self.failures = first, cap, 0
        self.since: float | None = None

    def next(self) -> float:
        if self.since is None:
            self.since = time.monotonic()
        delay = min(self.cap, self.first * 2 ** self.failures)
        self.failures += 1
        return delay * random.uniform(0.8, 1.2)

    def failing_for(self) -> float:
        return 0.0 if self.since is None else time.monotonic() - self.since

    def reset(self) -> None:
        self.failures, self.since = 0, None


async def _wait_event(event: asyncio.Event, timeout: float) -> None:
    """Wait until ``event`` is set or ``timeout`` passes. (Not ``asyncio.wait_for``: on Python
    3.11 it can swallow a cancellation that arrives as the event is set.)"""
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait([waiter], timeout=timeout)
    finally:
        waiter.cancel()


async def sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less when ``stop`` is set."""
    await _wait_event(stop, seconds)


def source_key_fields(dataset: Dataset) -> tuple[str, ...]:
    """The contract's key fields as the source names them (renames undone): raw records are
    keyed before the worker transforms them. Derived keys cannot be computed here."""
    keys = list(dataset.key)
    for step in reversed(dataset.transformations):
        if step.op == "rename":
            back = {new: old for old, new in step.params["mapping"].items()}
            keys = [back.get(k, k) for k in keys]
    return tuple(keys)


class DatasetSource(PolledSource):
    """A polled source feeding one dataset: its raw topic, its group's DLQ, its key fields."""

    def __init__(self, prefix: str, contract: Contract, dataset: Dataset, settings: Settings) -> None:
        super().__init__(f"{prefix}:{contract.group}.{dataset.name}")
        self.contract = contract
        self.dataset = dataset
        self.raw_topic = raw_topic(contract.group, dataset.name)
        self.dlq = dlq_topic(contract.group)
        self.key_fields = source_key_fields(dataset)
        self.max_bytes = settings.max_message_bytes

    def topics(self) -> list[str]:
        return [self.raw_topic, self.dlq]


class SourceRunner:
    """Runs one :class:`PolledSource`: recovery, publication, checkpoints, status and retries.

    Guarantee: every record the source yields lands in Kafka exactly once, across any number of
    crashes of this process (kill -9 included) and broker outages, as long as the checkpoint
    folder survives and the broker keeps what it acknowledged. How:
    - A batch is published and acknowledged by the broker (acks=all) before its checkpoint is
      written (atomically: temp file, fsync, rename, fsync the folder); the source is asked for
      its next batch only after that. A crash before the acknowledgements loses nothing: the
      restart resumes at the checkpoint and reads the batch again.
    - Every record carries the headers ``atlas-source`` (source id) and ``atlas-pos`` (its source
      position), and the checkpoint holds the end offsets of the source's topics observed after
      the batch was acknowledged. At start (and after every broker failure) the runner reads the
      topics from those offsets to their end and collects the positions this source published
      after its last checkpoint; re-read records at those positions are not published again. So a
      crash between publication and checkpoint duplicates nothing, without Kafka transactions.
      The checkpoint's offsets move past recovered records only once the source has yielded
      every one of them again, so a second crash soon after the first duplicates nothing either.
    Not guaranteed: order across a restart; exactness if the checkpoint file is deleted (the
    source starts over) or if retention removed records published after the last checkpoint.
    One poller per source: a lock file next to the checkpoint refuses a second one.
    """

    def __init__(self, source: PolledSource, publisher: Publisher, checkpoint_dir: Path, stop: asyncio.Event,
                 *, once: bool, interval: float, give_up_after: float = 60.0) -> None:
        self.source = source
        self.publisher = publisher
        self.checkpoint_dir = checkpoint_dir
        self.stop = stop
        self.once = once
        self.interval = interval
        self.give_up_after = give_up_after
        self.status = StatusReporter(publisher, source.source_id, source.kind)
        self.state: SourceState | None = None
        self._unseen: set[str] = set()
        source.report = self._report

    def _report(self, message: str) -> None:
        log.warning("%s: %s", self.source.source_id, message)
        self.status.update(last_error=message)

    async def run(self) -> None:
        """Until stopped (or, with ``once``, until one full pass is durable)."""
        sid = self.source.source_id
        lock = SourceLock(checkpoint_path(self.checkpoint_dir, sid))
        lock.acquire(sid)
        heartbeat = asyncio.create_task(self.status.run())
        backoff = Backoff()
        try:
            while not self.stop.is_set():
                try:
                    await self._session(backoff)
                    break
                except RetriableError as exc:
                    self.status.update(state="error", last_error=str(exc))
                    if self.once and backoff.failing_for() > self.give_up_after:
                        raise
                    delay = backoff.next()
                    log.warning("%s: %s; retrying in %.1f s", sid, exc, delay)
                    await sleep_unless(self.stop, delay)
                except AtlasError:
                    raise
                except Exception as exc:
                    if self.once:
                        raise
                    log.exception("%s: unexpected error; restarting from the checkpoint", sid)
                    self.status.update(state="error", last_error=f"{type(exc).__name__}: {exc}")
                    await sleep_unless(self.stop, backoff.next())
            self.status.update(state="stopped")
        finally:
            self.status.close()
            await asyncio.gather(heartbeat, return_exceptions=True)
            await self.status.send()
            lock.release()

    async def _session(self, backoff: Backoff) -> None:
        source, pub = self.source, self.publisher
        sid, topics = source.source_id, source.topics()
        state = await asyncio.to_thread(SourceState.load, self.checkpoint_dir, sid, source.kind)
        if not state.exists:
            # Offsets before anything was published: recovery never has to read further back.
            state.offsets = await pub.end_offsets(topics)
            await asyncio.to_thread(state.save)
        self.state = state
        published = await pub.published_positions(sid, topics, state.offsets)
        # Recovered positions stay protected until the source has yielded each of them again: the
        # checkpoint's offsets (where the next recovery starts reading) must not move past them
        # before, or a second crash would forget them and publish them twice.
        self._unseen = set(published)
        if published:
            log.info("%s: %d records were published after the last checkpoint; they are not published again",
                     sid, len(published))
        self.status.update(state="running", rows=state.counters.get("rows", 0), last_error=None)
        while True:
            self.status.update(state="running", last_poll=_iso())
            passes = source.poll(state.position)
            try:
                async for batch in passes:
                    await self._commit(batch, published, topics)
                    backoff.reset()
                    self.status.update(state="running", rows=state.counters["rows"], lag=source.lag())
                    if self.stop.is_set():
                        return
            finally:
                await passes.aclose()
            self.status.update(state="idle", lag=source.lag())
            if self.once or self.stop.is_set():
                return
            await sleep_unless(self.stop, self.interval)

    async def _commit(self, batch: Batch, published: set[str], topics: list[str]) -> None:
        """Publish what was not published yet, wait for the acks, then checkpoint."""
        state = self.state
        assert state is not None
        fresh = [r for r in batch.records if r.position not in published] if published else batch.records
        if self._unseen:
            self._unseen.difference_update(r.position for r in batch.records)
        if fresh:
            acked = await self.publisher.publish_batch(fresh, self.source.source_id)
            if not self._unseen:
                ends = await self.publisher.end_offsets(topics)
                state.offsets = merge_offsets(state.offsets, ends, acked)
        batch.sent_dead = sum(1 for r in fresh if r.dead)
        batch.sent_rows = len(fresh) - batch.sent_dead
        state.counters["rows"] = state.counters.get("rows", 0) + batch.sent_rows
        state.counters["dead_letters"] = state.counters.get("dead_letters", 0) + batch.sent_dead
        state.position = batch.position
        await asyncio.to_thread(state.save)


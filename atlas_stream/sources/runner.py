"""Runs a polled source exactly once into Kafka: recovery, publication, checkpoints, status, retries."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import AtlasError, RetriableError
from ..messages import encode
from ..retry import Backoff, RetryPolicy
from ..topics import SOURCE_STATUS_TOPIC
from .checkpoint import SourceLock, SourceState, checkpoint_path
from .interface import Batch, PolledSource, SourceStatus
from .publisher import Publisher, merge_offsets

__all__ = ["SOURCE_RETRY", "STATUS_EVERY", "SourceRunner", "StatusReporter", "sleep_unless"]

log = logging.getLogger(__name__)

#: Status messages are sent on every change, and at least this often (seconds).
STATUS_EVERY = 10.0

#: Retries of a source (and of the poller's first broker connection): 0.5 s doubling to 30 s, with
#: jitter. ``poll --once`` gives up after ``give_up_after`` seconds of failure; a long-running
#: poller never does.
SOURCE_RETRY = RetryPolicy(first=0.5, cap=30.0)


def _iso(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc).isoformat()


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

    def update(self, state: SourceStatus | None = None, **fields: Any) -> None:
        """Change fields of the status document; a new ``state`` or ``last_error`` is sent at once."""
        before = (self.doc["state"], self.doc["last_error"])
        if state is not None:
            self.doc["state"] = state
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
        # ``--once`` gives up after give_up_after seconds of failure; a long-running poller never does.
        backoff = replace(SOURCE_RETRY, give_up_after=self.give_up_after if self.once else None).backoff()
        try:
            while not self.stop.is_set():
                try:
                    await self._session(backoff)
                    break
                except RetriableError as exc:
                    self.status.update(state="error", last_error=str(exc))
                    if backoff.exhausted():
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


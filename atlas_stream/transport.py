"""The worker's Kafka transport: Faust's aiokafka driver with a consumer that hands a fetch's
messages to the streams without four task switches per message, and the raw topics' messages to
the scoring agent in micro-batches (docs/stream-speed.md)."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, ClassVar

from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as driver
from faust.types import TP, Message

__all__ = ["FetchConsumer", "FetchTransport", "Lane"]


class Lane:
    """The messages of some topics, on their way from the fetch to the one agent that takes them
    in micro-batches, past Faust's conductor, channel queue and stream iteration.

    faust-streaming 0.15.3 builds an event per message, puts it into the agent's channel queue,
    and its stream takes it out again with a task switch and four sensor calls per message: about
    a third of the scoring worker's time per record (docs/stream-speed.md). A lane is a plain
    queue: the consumer appends a fetch's messages of the lane's topics in fetch order, and the
    agent takes what is there at once. Faust's bookkeeping is kept where it matters:
    :meth:`FetchConsumer.take` tracks what it hands out (``wait_empty`` at a rebalance waits for
    it, as for a stream's events) and :meth:`FetchConsumer.ack_all` acks through Faust's own
    ``Consumer.ack``, so offsets are committed by the same rule as before.

    Holds at most ``maxsize`` messages plus one fetch: the consumer waits for room before it
    fetches again. What it holds is untracked (not read by the agent yet): a rebalance drops it
    (:meth:`clear`), and it is fetched again from the committed offsets, as Faust does with the
    messages in a stream's buffer.
    """

    def __init__(self, maxsize: int = 4096) -> None:
        #: The topics whose messages go through the lane (set before the consumer starts).
        self.topics: frozenset[str] = frozenset()
        self.maxsize = maxsize
        self._messages: deque[Message] = deque()
        self._filled = asyncio.Event()
        self._drained = asyncio.Event()

    def __len__(self) -> int:
        return len(self._messages)

    def full(self) -> bool:
        return len(self._messages) >= self.maxsize

    def append(self, message: Message) -> None:
        self._messages.append(message)
        self._filled.set()

    def clear(self) -> None:
        self._messages.clear()
        self._drained.set()

    async def wait_room(self) -> None:
        """Return once the lane holds fewer than ``maxsize`` messages."""
        while len(self._messages) >= self.maxsize:
            self._drained.clear()
            await self._drained.wait()

    async def take(self, most: int) -> list[Message]:
        """The oldest messages, at most ``most``, as soon as there is one."""
        messages = self._messages
        while not messages:
            self._filled.clear()
            await self._filled.wait()
        taken = [messages.popleft() for _ in range(min(most, len(messages)))]
        if len(messages) < self.maxsize:
            self._drained.set()
        return taken


class FetchConsumer(driver.Consumer):  # type: ignore[misc]
    """Faust's aiokafka consumer; every message still goes through Faust's conductor, streams,
    offset tracking and acks, in order.

    faust-streaming 0.15.3 delivers each fetched message with
    ``wait_first(callback(message), suspend_flow.wait())``: four new tasks and an
    ``asyncio.wait`` per message, so that a delivery blocked on a full stream buffer can be
    abandoned when a rebalance suspends the flow. On one core that caps any Faust agent near
    2,500 messages/s, however little it does. Here one such wait covers all the messages of a
    fetch: a rebalance still abandons the delivery at once, and the messages not yet delivered
    are not marked read (Faust's own loop marks them read although no stream got them), so they
    are fetched again from the committed offset after the rebalance.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Held by the scoring agent around a micro-batch's sends and acks under exactly_once, so
        #: that a commit (which ends the open transactions with the acked offsets) never falls
        #: between a record's outputs and its ack. FIFO: neither side starves.
        self.commit_gate = asyncio.Lock()
        #: Set once Faust has resumed the streams after a rebalance (see :meth:`_hold`).
        self.streams_open = asyncio.Event()
        self._armed = False
        #: Stream messages fetched while the streams were not open, delivered once they are.
        self._held: list[tuple[TP, Message]] = []
        #: Set when a full stream buffer has drained enough for its partitions to be fetched again.
        self._buffer_dropped = asyncio.Event()
        #: The app's lane (AtlasApp.lane); another app's is empty: every message goes through
        #: Faust's conductor.
        lane = getattr(self.app, "lane", None)
        self.lane: Lane = lane if isinstance(lane, Lane) else Lane()
        self._watch_stream_resumption()

    def _watch_stream_resumption(self) -> None:
        """Open the streams at the first ``flow_control.resume()`` after ``on_rebalance_complete``.

        faust-streaming 0.15.3 ends a rebalance with: ``on_rebalance_complete``, resume the stream
        partitions, seek them to the committed offsets, then ``flow_control.resume()``, which
        *clears every agent's buffer*. Flow was already resumed for the tables' recovery, so the
        fetcher can deliver stream messages between the resumption of the partitions and that
        clear: they are counted as read and unacknowledged, then dropped from the buffers, and
        when the seek came before their fetch nothing reads them again. The partition then never
        commits past them and its later records are never processed: a worker that took over a
        killed worker's partitions scored nothing more (tests/integration/stream/test_real_kafka.py,
        about one failover in twenty; the SIGUSR2 dump showed the buffered records unacked, the
        agent waiting on an empty buffer and aiokafka's position at the end of the partition).
        """
        flow_control: Any = self.app.flow_control
        resume = flow_control.resume

        def resume_and_open() -> None:
            resume()  # clears the agents' buffers
            if self._armed:
                self._armed = False
                self.streams_open.set()

        flow_control.resume = resume_and_open

        async def arm(sender: Any = None, **kwargs: Any) -> None:
            self._armed = True

        self.app.on_rebalance_complete.connect(arm, weak=False)  # type: ignore[arg-type]  # Faust's stub: sync receivers

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.streams_open.clear()
        self._armed = False
        self._held = []  # fetched again from the committed offsets after the rebalance
        self.lane.clear()  # untracked: fetched again too
        await super().on_partitions_revoked(revoked)

    def _hold(self, fetched: list[tuple[TP, Message]]) -> list[tuple[TP, Message]]:
        """What to deliver now: everything once the streams are open (held messages first);
        before that, the changelog messages only (the tables' recovery reads them) and the rest
        is held, not dropped: the fetcher has moved past it."""
        if self.streams_open.is_set():
            if self._held:
                fetched, self._held = self._held + fetched, []
            return fetched
        is_changelog = self._is_changelog_tp
        self._held += [pair for pair in fetched if not is_changelog(pair[0])]
        return [pair for pair in fetched if is_changelog(pair[0])]

    def describe(self) -> str:
        """Faust's and aiokafka's view of the stream partitions (changelogs left out), for the
        SIGUSR2 dump: a partition that is assigned but not fetched, or fetched but not delivered,
        is where a stalled stream stops. aiokafka's state is read without its thread's lock."""
        def tps(items: Any) -> str:
            return ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in items
                                    if not self._is_changelog_tp(tp))) or "-"

        offsets = sorted((f"{tp.topic}[{tp.partition}]", o) for tp, o in self._read_offset.items()
                         if not self._is_changelog_tp(tp))
        lines = ["CONSUMER",
                 f"    assigned: {tps(self.assignment())}",
                 f"    active (Faust fetches): {tps(self._active_partitions or ())}",
                 f"    paused (Faust): {tps(self._paused_partitions)}",
                 f"    buffered (stream buffer full): {tps(self._buffered_partitions)}",
                 f"    read offsets: {dict(offsets)}",
                 f"    flow active: {self.flow_active}, suspend flow: {self.suspend_flow.is_set()}, "
                 f"streams open: {self.streams_open.is_set()}, held: {len(self._held)}, "
                 f"in the lane (not taken yet): {len(self.lane)}"]
        inner = getattr(self._thread, "_consumer", None)
        if inner is None:
            return "\n".join(lines)
        fetcher = inner._fetcher
        task = fetcher._fetch_task
        ended = "cancelled" if task.done() and task.cancelled() else task.exception() if task.done() else None
        lines += [f"    paused (aiokafka): {tps(inner.paused())}",
                  f"    aiokafka fetcher: {'running' if ended is None else f'ended ({ended})'}; fetches in flight "
                  f"to nodes {sorted(fetcher._in_flight)}; records waiting for {tps(fetcher._records)}"]
        subscription = inner._subscription.subscription
        assignment: Any = subscription.assignment if subscription is not None else None
        for tp in sorted(assignment.tps if assignment else (), key=lambda t: (t.topic, t.partition)):
            if not self._is_changelog_tp(tp):
                st = assignment.state_value(tp)
                lines.append(f"    {tp.topic}[{tp.partition}]: position {st._position}, highwater {st.highwater}, "
                             f"status {st._status}, paused {st._paused}")
        return "\n".join(lines)

    def on_buffer_drop(self, tp: TP) -> None:
        super().on_buffer_drop(tp)
        self._buffer_dropped.set()

    async def _wait_next_records(self, timeout: float) -> Any:
        """Faust's, except that while a stream buffer is full it first waits for a buffer to drain.

        faust-streaming 0.15.3 takes a partition out of the fetch while its stream's buffer is
        full, and then fetches the other partitions with a one-second timeout (or sleeps a second
        when none is left). Under load a fetch filled the scoring agent's buffer (4,096 records,
        before the raw records took the lane) past its high mark, which took every raw partition
        out; the records already fetched for them were not handed over, and the fetch waited the
        whole second on the changelog and registry partitions, where nothing came. The agent
        emptied its buffer in about half a second and then had nothing to do for the rest of the
        second: about 40 % of the worker's wall time at full speed (docs/stream-speed.md). The
        sink agents' streams still fill up this way. Messages of the other partitions wait at
        most as long as before."""
        if self._buffered_partitions and self.flow_active:
            self._buffer_dropped.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._buffer_dropped.wait()
            except TimeoutError:
                pass
        return await super()._wait_next_records(timeout)

    async def take(self, most: int) -> list[Message]:
        """The next micro-batch of the lane (at most ``most`` messages, in fetch order), tracked
        as Faust's streams track their events: each is pending until :meth:`ack_all` acks it.

        As a stream does, it leaves out what came before the current generation (fetched
        before a rebalance: fetched again from the committed offsets) and takes nothing while
        the flow is suspended for a rebalance; unlike a stream it does not ack what it leaves
        out, so Faust never commits past a record nobody scored."""
        app = self.app
        while True:
            taken = await self.lane.take(most)
            if not app.flow_control.is_active():
                continue
            generation = app.consumer_generation_id
            if taken[0].generation_id != generation or taken[-1].generation_id != generation:
                taken = [m for m in taken if m.generation_id == generation]
            if taken:
                break
        track = self._unacked_messages.add
        on_message_in = self._on_message_in
        for message in taken:
            message.tracked = True
            track(message)
            on_message_in(message.tp, message.offset, message)
        self.app.monitor.events_total += len(taken)
        return taken

    def ack_all(self, messages: list[Message]) -> None:
        """Ack messages taken from the lane (Faust commits an offset once it and all before it
        are acked)."""
        ack = self.ack
        on_message_out = self.app.sensors.on_message_out
        for message in messages:
            if ack(message):
                on_message_out(message.tp, message.offset, message)

    async def commit(self, topics: Any = None, start_new_transaction: bool = True) -> bool:
        async with self.commit_gate:
            return bool(await super().commit(topics, start_new_transaction=start_new_transaction))

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - runs in the worker
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                self.diag.set_flag(CONSUMER_FETCHING)
                # Fetch outside the wait: getmany itself waits while the flow is suspended.
                fetched = self._hold([pair async for pair in self.getmany(timeout=1.0)])
                await self.sleep(0)
                while fetched and not self.should_stop:
                    at = [len(fetched)]
                    await self.wait_first(self._deliver(fetched, at), self.suspend_flow.wait())
                    if at[0] >= len(fetched) or self.suspend_flow.is_set():
                        break
                    # A commit is due before message at[0]. It runs here, outside the wait, as in
                    # Faust's own loop: a rebalance cancels the delivery, never a commit halfway
                    # (under exactly_once, between sending the offsets to a transaction and
                    # committing it).
                    self._n_acked = 0
                    await self.commit()
                    fetched = fetched[at[0]:]
                self.diag.unset_flag(CONSUMER_FETCHING)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag(CONSUMER_FETCHING)

    async def _deliver(self, fetched: list[tuple[TP, Message]], at: list[int]) -> None:
        """Faust's per-message steps, unchanged: skip what was read already, record a gap in the
        offsets as acked, hand the message over. When ``broker_commit_every`` acks call for a
        commit, it stops before the message and leaves its index in ``at[0]`` (the caller commits,
        outside the cancellable wait, and delivers the rest)."""
        callback = self.callback
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        lane = self.lane
        lane_topics = lane.topics
        if lane_topics:
            await self.app.flow_control.acquire()  # what Faust's conductor awaits per message
            await self.app.producer.buffer.wait_until_ebb()
        since_yield = 0
        for index, (tp, message) in enumerate(fetched):
            since_yield += 1
            if since_yield > 100:
                await asyncio.sleep(0)
                since_yield = 0
            offset = message.offset
            r_offset = get_read_offset(tp)
            if r_offset is not None and offset < r_offset:
                continue
            if self._commit_every is not None and self._n_acked >= self._commit_every:
                at[0] = index  # before the gap is recorded: this message is handled again after
                return
            gap = offset - (r_offset or 0)
            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                await self._add_gap(tp, r_offset + 1, offset)
            if tp.topic in lane_topics:
                lane.append(message)
            else:
                await callback(message)
            set_read_offset(tp, offset)
        if lane_topics:
            await lane.wait_room()


class FetchTransport(driver.Transport):  # type: ignore[misc]
    """Faust's aiokafka transport with :class:`FetchConsumer`."""

    Consumer: ClassVar[type] = FetchConsumer

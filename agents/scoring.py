"""Score every raw record and route it to exactly one tier topic or the DLQ."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Any, cast

import faust
from faust.exceptions import PartitionsMismatch
from faust.types import TP, Message

from atlas_stream.app import app, catalog, settings
from atlas_stream.channels import events, raw_records
from atlas_stream.messages import event_message
from atlas_stream.pipeline import Outcome
from atlas_stream.metrics import CHECK_FAILURES, RECORDS, SCHEMA_DRIFT
from atlas_stream.schema_registry import latest
from atlas_stream.sinks.probe import Probe
from atlas_stream.stats import MINUTE, StatsBatch, split_key, stat_key
from atlas_stream.transport import FetchConsumer
from tables.schemas import schema_registry
from tables.stats import failure_counts, last_seen, schema_drift, tier_counts, tier_counts_per_minute

log = logging.getLogger(__name__)

#: How often pending statistics are written even when no commit asks for them (seconds).
STATS_EVERY = 1.0
#: How long per-minute counts are kept.
MINUTES_KEPT = 120


@app.task
async def check_raw_topic_partitions() -> None:
    """Stop the worker with a clear message when a raw topic that existed before has another
    partition count than ATLAS_TOPIC_PARTITIONS (the stats tables are co-partitioned with it)."""
    want = settings.topic_partitions
    for _ in range(120):
        counts = {t: app.consumer.topic_partitions(t) for t in raw_records.topics}
        if all(n is not None for n in counts.values()):
            break
        await asyncio.sleep(0.5)
    wrong = {t: n for t, n in counts.items() if n is not None and n != want}
    if wrong:
        detail = ", ".join(f"{t} has {n}" for t, n in sorted(wrong.items()))
        await app.crash(PartitionsMismatch(
            f"raw topics must have ATLAS_TOPIC_PARTITIONS={want} partitions but {detail}: "
            "recreate or repartition them, or set ATLAS_TOPIC_PARTITIONS to match"))


_unregistered: set[str] = set()

#: The raw records reach the scoring agent through the app's lane, in micro-batches, not through
#: its Faust stream (atlas_stream/transport.py); the stream only subscribes the worker to them.
#: A full lane means the consumer's one delivery loop waits for room in it, and nothing else is
#: delivered meanwhile.
app.lane.topics = frozenset(raw_records.topics)
#: How long a full lane is borne while a first registration is awaited.
BLOCKED_GRACE = 2.0


async def _registered(subject: str, wait: float = 30.0) -> dict[str, Any] | None:
    """On a first start the registry agent registers the contracts within a second or two;
    wait for it once per subject so that every record names its schema version. After that,
    score against the contract's schema (version null) rather than stall the stream.

    With a backlog on a first start the wait cannot end: the registration request is delivered
    by the same loop that is blocked waiting for room in the full lane (every agent of the
    worker stalled 30 s). So a lane full for BLOCKED_GRACE seconds ends the wait."""
    if subject in _unregistered:
        return None
    blocked = 0.0
    for _ in range(int(wait / 0.25)):
        await asyncio.sleep(0.25)
        entry = schema_registry.get(subject)
        if entry:
            return entry  # type: ignore[no-any-return]
        blocked = blocked + 0.25 if app.lane.full() else 0.0
        if blocked >= BLOCKED_GRACE:
            log.warning("schema %s not registered yet, and its registration request waits behind the raw records "
                        "that fill the scoring agent's lane: scoring against the contract's schema (version null) "
                        "until it is registered", subject)
            _unregistered.add(subject)
            return None
    log.warning("schema %s not registered after %.0fs: scoring against the contract's schema", subject, wait)
    _unregistered.add(subject)
    return None


class StatsFlush(faust.Sensor):  # type: ignore[misc]
    """Writes the pending statistics when Faust starts a commit.

    Faust calls on_commit_initiated synchronously right before it picks the offsets to commit
    and flushes the producer, so every acknowledged record's counts reach the changelog before
    its raw offset is committed: statistics never fall behind the committed position, and
    changelog traffic is one message per key per commit instead of several per record.
    """

    def on_commit_initiated(self, consumer: Any) -> Any:
        _flush()
        return super().on_commit_initiated(consumer)


_pending = StatsBatch()


def _flush() -> None:
    global _pending
    batch, _pending = _pending, StatsBatch()
    for key, n in batch.tiers.items():
        tier_counts[key] += n
        _, subject, tier = split_key(key, 3)
        RECORDS.labels(subject, tier).inc(n)
    for key, n in batch.minutes.items():
        tier_counts_per_minute[key] += n
    for key, n in batch.failures.items():
        failure_counts[key] += n
        _, subject, check = split_key(key, 3)
        CHECK_FAILURES.labels(subject, check).inc(n)
    for key, ts in batch.last_seen.items():
        if ts > last_seen[key]:
            last_seen[key] = ts
    for key, n in batch.drift.items():
        schema_drift[key] += n
        _, subject, name = split_key(key, 3)
        SCHEMA_DRIFT.labels(subject, name).inc(n)


def _expire_minutes(now: float) -> None:
    oldest = now - MINUTES_KEPT * MINUTE
    stale = [k for k in list(tier_counts_per_minute.keys()) if int(split_key(k, 4)[3]) < oldest]
    for key in stale:
        del tier_counts_per_minute[key]


app.sensors.add(StatsFlush())

#: (topic, partition) -> (offset, timestamp) of the newest raw record this process has scored.
_scored: dict[tuple[str, int], tuple[int, float]] = {}


def _already_scored(topic: str, partition: int, offset: int, timestamp: float) -> bool:
    """True for a raw record this process has scored already.

    faust-streaming 0.15.3 can hand a partition's records to the agent twice right after start-up
    or a rebalance (its fetcher runs while recovery seeks the partition back to the committed
    offset, and its drain loop accepts ``offset >= read_offset``: faust-streaming #502); the
    second copy is dropped here so that it does not yield a duplicate tier message. Seen on real
    Apache Kafka too (docs/stream-speed.md), so it applies in every profile.
    Only an older offset with an older-or-equal broker timestamp counts as seen: a recreated
    topic whose offsets start again carries newer timestamps and is processed normally.
    """
    last = _scored.get((topic, partition))
    if last is not None and offset <= last[0] and timestamp <= last[1]:
        return True
    _scored[(topic, partition)] = (offset, max(timestamp, last[1]) if last else timestamp)
    return False


@app.on_partitions_revoked.connect  # type: ignore[arg-type]  # Faust's signal stub, as in agents/sinks.py
async def _forget_revoked(app: Any, revoked: set[Any], **kwargs: Any) -> None:
    for tp in revoked:
        _scored.pop((tp.topic, tp.partition), None)


async def _expected(topic: str, partition: int) -> int | None:
    """The next raw offset this partition should deliver: after the last one scored, or the
    group's committed offset right after an assignment (None when unknown)."""
    last = _scored.get((topic, partition))
    if last is not None:
        return last[0] + 1
    return await _probe.committed(settings.app_id, topic, partition)


Raw = tuple[str, int, int, float, "bytes | None", "bytes | None"]  # topic, partition, offset, ts, key, value
Gap = tuple[TP, int, int]  # a partition and the first and last offset of records a jump skipped


async def _fill_skipped(topic: str, partition: int, offset: int, gaps: list[Gap]) -> list[Raw]:
    """The records a jump of the stream left out, read straight from the topic, in order.

    faust-streaming 0.15.3's fetcher can race with the seek that recovery performs after a
    restart or rebalance: the stream then jumps ahead, and Faust's gap tracking
    (``Consumer._add_gap`` counts the gap as acked) would commit past records nobody scored:
    faust-streaming #216, #221 and #606. A jump is checked against the topic and the missing
    records are scored before the record that revealed the jump. Seen on real Apache Kafka too
    (docs/stream-speed.md), so it applies in every profile.
    """
    expected = await _expected(topic, partition)
    if expected is None or offset <= expected:
        return []
    found = await _probe.read_at(topic, partition, expected)
    if found.status not in ("found", "unknown"):
        return []  # a real gap (compaction, transaction markers, retention)
    log.warning("%s[%d]: the stream jumped from %d to %d; scoring the %d records between from the topic",
                topic, partition, expected, offset, offset - expected)
    gaps.append((TP(topic, partition), expected, offset - 1))
    missing: list[Raw] = []
    async for chunk in _probe.read_range(topic, partition, expected, offset):
        for rec in chunk:
            ts = rec.timestamp / 1000.0 if rec.timestamp and rec.timestamp > 0 else time.time()
            if not _already_scored(topic, partition, rec.offset, ts):
                missing.append((topic, partition, rec.offset, ts, rec.key, rec.value))
    return missing


_probe = Probe(settings.bootstrap_servers)

#: The most raw records scored together. A micro-batch is whatever the stream holds when the agent
#: asks, up to this many: under load they fill up, while a lone record is scored at once.
BATCH_MAX = 1000


async def _to_score(messages: list[Message], gaps: list[Gap]) -> list[Raw]:
    """The raw records of a micro-batch to score, in order: records a fetch jump skipped first
    (their offsets go to ``gaps``, to be acked with the batch), second deliveries left out."""
    todo: list[Raw] = []
    for msg in messages:
        timestamp = msg.timestamp if msg.timestamp and msg.timestamp > 0 else time.time()  # Faust: seconds
        todo += await _fill_skipped(msg.topic, msg.partition, msg.offset, gaps)
        if _already_scored(msg.topic, msg.partition, msg.offset, timestamp):
            log.info("skipped a second delivery of %s[%d]@%d", msg.topic, msg.partition, msg.offset)
            continue
        todo.append((msg.topic, msg.partition, msg.offset, timestamp, msg.key, msg.value))
    return todo


async def _send(producer: Any, raw_topic: str, raw_partition: int, outcome: Outcome) -> Any:
    """Send one outcome with Faust's producer, without Topic.send's per-message objects; returns
    the future of its acknowledgement.

    A keyless output keeps its raw partition, so that a second emission of the same raw record
    (at-least-once) lands where the sinks can recognise it by raw position. Under exactly_once,
    Faust's transaction manager would put a message in the transaction of its *output* partition
    while it commits raw offsets in the transaction of the *raw* partition: a keyed output would
    be committed along with another partition's offsets, and a SIGKILL between the two commits
    duplicates or loses it. Each output goes into its raw partition's transaction instead, the one
    that commits that raw offset (same transactional id format as faust.transport.consumer).
    """
    partition = raw_partition if outcome.key is None else None
    if app.in_transaction:
        tid = f"{app.conf.id}-{app.assignor.group_for_topic(raw_topic)}-{raw_partition}"
        return await app.producer.send(outcome.topic, outcome.key, outcome.value, partition, None, None,
                                       transactional_id=tid)
    return await producer.send(outcome.topic, outcome.key, outcome.value, partition, None, None)


async def _score(todo: list[Raw]) -> list[Any]:
    """Score a micro-batch and hand every outcome to the producer; returns the futures of their
    acknowledgements."""
    by_topic: dict[str, list[Raw]] = {}
    for raw in todo:
        by_topic.setdefault(raw[0], []).append(raw)
    producer = await app.maybe_start_producer()
    sent: list[Any] = []
    for topic, raws in by_topic.items():
        rt = catalog.by_raw_topic[topic]
        entry = schema_registry.get(rt.subject) or await _registered(rt.subject)
        sources = [{"topic": t, "partition": p, "offset": o, "timestamp": ts} for t, p, o, ts, _, _ in raws]
        outcomes = rt.process_many([(value, key, source) for (*_, key, value), source in zip(raws, sources)],
                                   latest(entry) if entry else None, settings.max_message_bytes)
        for (_, partition, offset, timestamp, _, _), outcome in zip(raws, outcomes):
            sent.append(await _send(producer, topic, partition, outcome))
            for name in outcome.drift:
                key_ = stat_key(partition, rt.subject, name)
                if schema_drift[key_] + _pending.drift[key_] == 0:  # first sighting on this partition
                    sent.append(await events.send(key=rt.subject.encode(), value=event_message(
                        "schema.drift", rt.subject, field=name, partition=partition, offset=offset)))
            _pending.add(partition, rt.subject, outcome.tier or "dlq", outcome.failures, outcome.drift, timestamp)
            if outcome.error:
                log.warning("dead letter %s[%d]@%d: %s", topic, partition, offset, outcome.error)
    return sent


#: Raw records whose outputs may await their acknowledgements while the next ones are scored
#: (eight full micro-batches). Counted in records, not batches: at a paced rate every record is a
#: micro-batch of its own, and a limit of eight batches made the agent wait for a broker round trip
#: every eight records (about 800 records/s at a 10 ms round trip: latency grew without bound).
RECORDS_IN_FLIGHT = 8 * BATCH_MAX


async def _ack_gaps(gaps: list[Gap]) -> None:
    """Tell Faust that the offsets of records a jump skipped are done (scored from the topic).

    Faust commits only up to the first offset that is neither acked nor in a recorded gap. A jump
    right after start-up or a rebalance can come before Faust knows the partition's read offset,
    and then it records no gap: it would never commit that partition again. Under exactly_once
    that left every later transaction open (outputs scored, never visible to read_committed
    readers: tests/integration/stream/test_stream_exactly_once.py failed 2 runs in 3)."""
    for tp, first, last in gaps:
        await cast(FetchConsumer, app.consumer)._add_gap(tp, first, last)


async def _ack_when_sent(consumer: FetchConsumer, messages: list[Message], sent: list[Any], gaps: list[Gap]) -> None:
    """Ack a micro-batch's messages once the broker has acknowledged every output: only then can
    Faust commit their offsets (it commits the highest offset below which all are acked).

    The futures are awaited one by one rather than gathered: they are resolved a produce batch
    at a time, so after the first most are done already, and a gather put a callback on the
    event loop for each of them (one per record)."""
    for future in sent:
        await future  # raises for a failed send: nothing of the batch is acked
    await _ack_gaps(gaps)
    consumer.ack_all(messages)


@app.agent(raw_records)
async def score_raw_records(stream: Any) -> None:
    """Micro-batches of raw records: scored together, sent in bulk, acked together once every
    output is acknowledged. The next batch is scored while the broker acknowledges the previous
    ones (at most RECORDS_IN_FLIGHT records), so a broker round trip does not stall the stream; a
    failed send stops the agent before anything after it is acked.

    ``stream`` is not read: it subscribes the worker to the raw topics, whose messages come
    through the app's lane (:meth:`FetchConsumer.take`)."""
    consumer = cast(FetchConsumer, app.consumer)  # AtlasApp's transport (atlas_stream/transport.py)
    clock = {"flush": 0.0, "expiry": 0.0}
    in_flight: deque[tuple[asyncio.Task[None], int]] = deque()  # (acking task, records), oldest first
    records_in_flight = 0
    while True:
        batch = await consumer.take(BATCH_MAX)
        if app.in_transaction:
            # exactly_once: the outputs go into the open transactions and the events are acked
            # before any commit can run, so a commit takes a record's outputs and its offset
            # together or neither (it flushes them; a failed send fails the commit).
            # Wait for a first registration before taking the gate: under read_committed the
            # registry agent sees the request only after a commit, which the gate would hold up.
            for topic in {m.topic for m in batch}:
                rt = catalog.by_raw_topic.get(topic)
                if rt is not None and not schema_registry.get(rt.subject):
                    await _registered(rt.subject)
            async with consumer.commit_gate:
                gaps: list[Gap] = []
                await _score(await _to_score(batch, gaps))
                await _ack_gaps(gaps)
                consumer.ack_all(batch)
                # The statistics join the same transactions: faust-streaming 0.15.3 commits
                # transactions without draining its send buffer, through which table changelog
                # updates go, so hand them to the producer while no commit can run (otherwise a
                # SIGKILL aborted them with the next transaction while the offsets they count
                # were committed: statistics recovered about 12 % short in the exactly_once test).
                _flush()
                await app.producer.buffer.flush()
        else:
            gaps = []
            sent = await _score(await _to_score(batch, gaps))
            in_flight.append((asyncio.ensure_future(_ack_when_sent(consumer, batch, sent, gaps)), len(batch)))
            records_in_flight += len(batch)
        # Acknowledgements come back in order (one produce request per partition at a time), so
        # the oldest task is the one to wait for.
        while in_flight and (in_flight[0][0].done() or records_in_flight >= RECORDS_IN_FLIGHT):
            task, n = in_flight.popleft()
            if not task.done():
                await asyncio.wait([task])
            records_in_flight -= n
            task.result()  # a send that failed: crash here, its events stay unacked
        now = time.monotonic()
        if now >= clock["flush"]:
            _flush()
            clock["flush"] = now + STATS_EVERY
        if now >= clock["expiry"]:
            _expire_minutes(time.time())
            clock["expiry"] = now + MINUTE

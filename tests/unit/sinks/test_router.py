"""The sink router without Kafka: a fake sink and a fake probe show what reaches the sinks and
which offsets are committed when the stream replays, skips records, or the topic is recreated."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from atlas_stream.pipeline import load_catalog
from atlas_stream.retry import RetryPolicy
from atlas_stream.sinks import router as router_module
from atlas_stream.sinks.base import TP, Flushed, Recovered, RefusedRecord, TierSink
from atlas_stream.sinks.probe import ProbeResult
from atlas_stream.sinks.router import Route, SinkRouter

CATALOG = load_catalog(Path(__file__).resolve().parents[3] / "tests" / "integration" / "contracts")
TOPIC = "atlas.itest.orders.gold"
TP0 = (TOPIC, 0)


class FakeSink(TierSink):
    """Keeps what it was given in memory; ``durable`` is what its flushes wrote, in order."""

    name = "fake"

    def __init__(self, flush_every: int = 1000, recovered: Recovered | None = None, recovers: bool = False,
                 journal: list[str] | None = None, label: str = "fake") -> None:
        self.flush_every, self.recovered, self.label = flush_every, recovered or Recovered(), label
        self.recovers = recovers  # type: ignore[misc]  # a ClassVar of the contract, per instance here
        self.buffer: dict[TP, list[tuple[int, bytes | None]]] = {}
        self.durable: list[tuple[TP, int, bytes | None]] = []
        self.restarts: list[tuple[TP, int, int | None]] = []
        self.journal = journal if journal is not None else []
        self.fail = False
        self.refuse: set[int] = set()

    def takes(self, route: Route) -> bool:
        return True

    async def assign(self, tp: TP, route: Route) -> Recovered:
        self.buffer[tp] = []
        return self.recovered

    def add(self, tp: TP, offset: int, value: bytes | None) -> bool:
        self.buffer[tp].append((offset, value))
        return len(self.buffer[tp]) >= self.flush_every

    def due(self, now: float) -> list[TP]:
        return [tp for tp, held in self.buffer.items() if held]

    async def flush(self, tps: Collection[TP], *, commit: bool = False) -> Flushed:
        self.journal.append(f"{self.label}.flush{'+commit' if commit else ''}")
        if self.fail:
            raise OSError("the destination is down")
        out = Flushed()
        for tp in tps:
            held, self.buffer[tp] = self.buffer[tp], []
            for offset, value in held:
                if offset in self.refuse:
                    out.refused.append(RefusedRecord(tp, offset, f"refused {offset}", "sink.fake", value))
                else:
                    self.durable.append((tp, offset, value))
            if held:
                out.safe[tp] = held[-1][0] + 1
        return out

    async def restart(self, tp: TP, offset: int, after: int | None) -> int | None:
        self.restarts.append((tp, offset, after))
        return offset

    async def revoke(self, tps: Collection[TP]) -> None:
        for tp in tps:
            self.buffer.pop(tp, None)

    def offsets(self) -> list[int]:
        return [offset for _, offset, _ in self.durable]


class FakeProbe:
    """A topic partition's log in memory: ``log[offset] = value``; ``start`` is its log start."""

    def __init__(self, log: dict[int, bytes], start: int = 0, fail_reads: int = 0) -> None:
        self.log, self.start, self.fail_reads = log, start, fail_reads
        self.reads: list[tuple[int, int]] = []
        self.probed: list[int] = []

    async def read_at(self, topic: str, partition: int, offset: int) -> ProbeResult:
        self.probed.append(offset)
        end = max(self.log, default=-1) + 1
        if offset < self.start or offset >= end:
            return ProbeResult("out_of_range", end=end)
        at = min(o for o in self.log if o >= offset)
        raw = self.log[at]
        return ProbeResult("found" if at == offset else "later", at, orjson.loads(raw), end, raw)

    async def read_range(self, topic: str, partition: int, start: int, end: int) -> AsyncIterator[list[Any]]:
        self.reads.append((start, end))
        if self.fail_reads:
            self.fail_reads -= 1
            raise OSError("the broker went away")
        yield [SimpleNamespace(offset=o, value=self.log[o]) for o in sorted(self.log) if start <= o < end]


def message(i: int, run: str = "a") -> bytes:
    return orjson.dumps({"record": {"order_id": f"{run}{i}"}, "source": {"topic": "raw", "partition": 0, "offset": i},
                         "ingested_at": f"{run}-{i}"})


class Harness:
    def __init__(self, sinks: list[TierSink], probe: FakeProbe) -> None:
        self.commits: list[dict[TP, int]] = []
        self.dead: list[tuple[str, dict[str, Any]]] = []

        async def commit(offsets: dict[TP, int]) -> None:
            self.commits.append(dict(offsets))

        async def send(topic: str, key: bytes | None, value: bytes) -> None:
            self.dead.append((topic, orjson.loads(value)))

        self.router = SinkRouter(CATALOG, sinks=sinks, probe=probe, commit=commit, send=send)  # type: ignore[arg-type]

    async def feed(self, offsets: list[int], run: str = "a") -> None:
        for o in offsets:
            await self.router.handle(TOPIC, 0, o, message(o, run))


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(router_module, "FILL_RETRY", RetryPolicy(first=0.01, cap=0.02))


async def test_a_replay_is_skipped_and_nothing_is_written_twice() -> None:
    sink = FakeSink()
    probe = FakeProbe({o: message(o) for o in range(12)})
    h = Harness([sink], probe)
    await h.feed(list(range(10)))
    await h.router.tick()
    assert h.commits == [{TP0: 10}]
    await h.feed([5, 6, 7, 8, 9])  # Faust read again from an older committed offset
    await h.feed([10, 11])
    await h.router.tick()
    assert sink.offsets() == list(range(12))
    assert probe.probed == [9]  # the record last written is still there: the topic is the same; asked once
    assert h.commits == [{TP0: 10}, {TP0: 12}]


async def test_after_recovery_records_the_sink_holds_are_skipped() -> None:
    """A new process: the sink recovered up to offset 10 and its last record; the consumer
    starts lower (an old committed offset): those records are replays, not a new topic."""
    last = orjson.loads(message(9))
    sink = FakeSink(recovered=Recovered(10, {"offset": 9, "source": ["raw", 0, 9], "ingested_at": last["ingested_at"]}))
    probe = FakeProbe({o: message(o) for o in range(12)})
    h = Harness([sink], probe)
    assert await h.router.recover_assigned([TP0]) == {TP0: 10}
    await h.feed(list(range(3, 12)))
    await h.router.tick()
    assert sink.offsets() == [10, 11]
    assert h.commits == [{TP0: 12}]


async def test_a_gap_is_filled_from_the_topic_in_order() -> None:
    sink = FakeSink(flush_every=3)
    probe = FakeProbe({o: message(o) for o in range(20)}, fail_reads=1)
    h = Harness([sink], probe)
    await h.feed([0, 1, 2, 3, 4])
    await h.feed([10, 11])  # the stream jumped over 5..9, which the topic still holds
    await h.router.tick()
    assert probe.reads == [(5, 10), (5, 10)]  # the first read failed and was retried
    assert sink.offsets() == list(range(12))
    assert [v for _, _, v in sink.durable] == [message(o) for o in range(12)]
    assert h.commits[-1] == {TP0: 12}


async def test_offsets_missing_from_the_topic_are_not_waited_for() -> None:
    sink = FakeSink()
    probe = FakeProbe({**{o: message(o) for o in range(5)}, **{o: message(o) for o in range(10, 12)}})
    h = Harness([sink], probe)
    await h.feed([0, 1, 2, 3, 4, 10, 11])  # 5..9 were compacted away
    await h.router.tick()
    assert probe.reads == [] and sink.offsets() == [0, 1, 2, 3, 4, 10, 11]
    assert h.commits == [{TP0: 12}]


async def test_a_recreated_topic_starts_a_new_series() -> None:
    sink = FakeSink()
    probe = FakeProbe({o: message(o) for o in range(10)})
    h = Harness([sink], probe)
    await h.feed(list(range(10)))
    probe.log = {0: message(0, "b"), 1: message(1, "b")}  # deleted and created again: offsets from 0
    await h.feed([0, 1], run="b")
    await h.router.tick()
    assert sink.restarts == [(TP0, 0, 10)]
    assert sink.journal[0] == "fake.flush+commit"  # what it held of the old topic, committed first
    assert [(o, v) for _, o, v in sink.durable] == [*((o, message(o)) for o in range(10)),
                                                    (0, message(0, "b")), (1, message(1, "b"))]
    assert h.commits == [{TP0: 2}]  # the old topic's 10 was never committed; the new one goes on from 0


async def test_sinks_flush_in_order_the_committed_offset_is_their_minimum_and_refused_go_to_the_dlq() -> None:
    journal: list[str] = []
    files = FakeSink(flush_every=4, recovers=True, journal=journal, label="files")
    index = FakeSink(flush_every=1000, journal=journal, label="index")
    index.refuse = {2}
    h = Harness([files, index], FakeProbe({}))  # given in the wrong order: the router puts files last
    await h.feed([0, 1, 2, 3])
    assert journal == ["index.flush", "files.flush"]  # the index holds what a file holds, first
    await h.feed([4, 5])
    index.flush_every = 1  # the index is due alone: the files wait
    await h.feed([6])
    assert journal[2:] == ["index.flush"] and files.offsets() == [0, 1, 2, 3]
    await h.router._commit_offsets()
    assert h.commits == [{TP0: 4}]  # the files hold 0..3, the index 0..6
    [(topic, dead)] = h.dead
    assert topic == "atlas.itest.dlq" and dead["error"] == "refused 2" and dead["stage"] == "sink.fake"
    assert dead["source"]["offset"] == 2 and dead["dataset"] == "orders"


async def test_a_failed_flush_acknowledges_nothing() -> None:
    sink = FakeSink()
    h = Harness([sink], FakeProbe({}))
    await h.feed([0, 1, 2])
    sink.fail = True
    with pytest.raises(OSError):
        await h.router.tick()
    assert h.commits == [] and h.router.safe_offsets() == {}
    sink.fail = False
    await h.router.tick()
    assert h.commits == [{TP0: 3}]


async def test_a_record_arriving_during_a_flush_never_reaches_a_later_sink_before_an_earlier_one() -> None:
    """The timer flushes the index, then the files; a record the stream delivers meanwhile must
    not be committed in a file while the index has not flushed it (a crash would lose it there)."""
    import asyncio

    journal: list[str] = []
    files = FakeSink(flush_every=1000, recovers=True, journal=journal, label="files")
    index = FakeSink(flush_every=1000, journal=journal, label="index")
    h = Harness([index, files], FakeProbe({}))
    await h.feed([0, 1])
    index_flush = index.flush
    started, release = asyncio.Event(), asyncio.Event()

    async def slow_flush(tps: Collection[TP], *, commit: bool = False) -> Flushed:
        done = await index_flush(tps, commit=commit)  # takes what it holds now, like a bulk request
        started.set()
        await release.wait()  # ... whose answer takes a while
        return done

    index.flush = slow_flush  # type: ignore[method-assign]
    index.due = lambda now: []  # type: ignore[method-assign]  # only the files are due: they flush the index first
    tick = asyncio.ensure_future(h.router.tick())
    await started.wait()  # the index is being flushed; the files come next
    late = asyncio.ensure_future(h.feed([2]))
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(tick, late)
    index.flush = index_flush  # type: ignore[method-assign]
    assert set(files.offsets()) <= set(index.offsets())
    await h.router.tick()
    assert files.offsets() == index.offsets() == [0, 1, 2]

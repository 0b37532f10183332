"""Test harness: real development brokers, real Faust worker processes, plain Kafka clients."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError

from atlas_stream.devbroker import stop_process
from atlas_stream.kafka_admin import partitions_of

ROOT = Path(__file__).resolve().parents[2]


#: The tasks that move records from the raw topics to the lake: where a stalled worker waits.
STREAM_TASKS = ("score_raw_records", "_drain_messages", "_handle_pending", "sink_tier_records",
                "close_sink_windows", "_ack_when_sent", "_commit_livelock_detector")


class Worker:
    """``python -m atlas_stream worker`` as a subprocess with its own log file."""

    def __init__(self, env: dict[str, str], log_path: Path, args: Iterable[str] = ()) -> None:
        self.env = env
        self.log_path = log_path
        self.args = list(args)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "Worker":
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "atlas_stream", "worker", "-l", "info", *self.args],
            cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request_task_dump(self) -> None:
        """Ask the worker to log where its asyncio tasks wait (SIGUSR2: atlas_stream/taskdump.py),
        and give it time to: what a timed-out test shows to explain a stall."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR2)
            time.sleep(2.0)

    def stuck_tasks(self, names: Iterable[str] = STREAM_TASKS) -> str:
        """After :meth:`request_task_dump`: the await chains of the tasks that name one of ``names``."""
        dump = self.log().rsplit("asyncio tasks (SIGUSR2):\n", 1)
        if len(dump) < 2:
            return "(no task dump in the log)"
        blocks = dump[1].split("\nEND OF TASKS", 1)[0].split("TASK ")
        state = blocks[-1].split("CONSUMER\n", 1)
        tasks = "".join(f"TASK {b}" for b in blocks if any(n in b for n in names)) or "(none of the tasks)\n"
        return tasks + (f"CONSUMER\n{state[1]}" if len(state) == 2 else "")

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            if "[^Worker]: Ready" in self.log():
                return
            time.sleep(0.25)
        raise AssertionError(f"worker not ready after {timeout}s:\n{self.log()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        proc, self.proc = self.proc, None
        if proc is None:
            return 0
        code = stop_process(proc, sig, timeout)
        self._log.close()
        return code


def worker_env(broker: str, tmp: Path, metadata_dir: Path, app_id: str, **extra: str) -> dict[str, str]:
    """Environment of a worker subprocess; ``broker`` is a Faust URL (``kafka://h:p;kafka://...``)
    or a bare ``host:port``. ATLAS_EMBEDDED_BROKER=1 applies the imitations' workarounds only
    when ATLAS_DEV_BROKER names one (noida, tansu): on real Kafka the settings are production's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({
        "ATLAS_BROKER": broker if "://" in broker else f"kafka://{broker}",
        "ATLAS_EMBEDDED_BROKER": "1",
        "ATLAS_METADATA_DIR": str(metadata_dir),
        "ATLAS_DATA_DIR": str(tmp / "data"),
        "ATLAS_LAKE_URI": str(tmp / "lake"),
        "ATLAS_APP_ID": app_id,
        "ATLAS_TOPIC_PARTITIONS": "2",
        "PYTHONUNBUFFERED": "1",
    })
    env.update(extra)
    return env


def poller_env(broker_url: str, tmp: Path, contract: dict[str, Any] | None = None, **extra: str) -> dict[str, str]:
    """Environment for a ``python -m atlas_stream poll`` subprocess; with ``contract``, it is
    written as the only file of a fresh metadata folder under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_BROKER": broker_url, "ATLAS_DATA_DIR": str(tmp / "data"),
                "ATLAS_TOPIC_PARTITIONS": "2", "PYTHONUNBUFFERED": "1"})
    if contract is not None:
        metadata = tmp / "metadata"
        metadata.mkdir(exist_ok=True)
        (metadata / f"{contract['ocs_group_name']}.json").write_bytes(orjson.dumps(contract))
        env["ATLAS_METADATA_DIR"] = str(metadata)
    env.update(extra)
    return env


async def produce(bootstrap: str, topic: str, values: Iterable[bytes | None], key: bytes | None = None) -> list[tuple[int, int]]:
    """Publish values with acks=all; returns (partition, offset) of each."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=4 * 1024 * 1024)
    await producer.start()
    try:
        out = []
        for value in values:
            meta = await producer.send_and_wait(topic, value, key=key)
            out.append((meta.partition, meta.offset))
        return out
    finally:
        await producer.stop()


async def consume(
    bootstrap: str,
    topics: Iterable[str],
    until: Callable[[list[Any]], bool],
    timeout: float = 60.0,
    isolation_level: str = "read_uncommitted",
) -> list[Any]:
    """Read topics from the beginning (no consumer group) until ``until(messages)`` or timeout."""
    deadline = time.monotonic() + timeout
    while True:  # the broker may still be starting
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024,
            isolation_level=isolation_level,
        )
        try:
            await consumer.start()
            break
        except KafkaConnectionError:
            await consumer.stop()
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    # Partitions are (re)discovered every second: a topic, or some of its partitions, may appear
    # after the first look. aiokafka's assign() restarts every partition from the beginning, so
    # messages are kept by position: each one is returned once.
    found: dict[tuple[str, int, int], Any] = {}
    try:
        topics = list(topics)
        known: set[TopicPartition] = set()
        next_look = 0.0
        while time.monotonic() < deadline:
            if time.monotonic() >= next_look:
                now_known = {TopicPartition(t, p) for t in topics for p in (await partitions_of(consumer, t))}
                if now_known - known:
                    known |= now_known
                    consumer.assign(sorted(known))
                    await consumer.seek_to_beginning(*known)
                next_look = time.monotonic() + 1.0
            if known:
                batch = await consumer.getmany(timeout_ms=300)
                for records in batch.values():
                    for m in records:
                        found.setdefault((m.topic, m.partition, m.offset), m)
            else:
                await asyncio.sleep(0.3)
            messages = sorted(found.values(), key=lambda m: (m.topic, m.partition, m.offset))
            if until(messages):
                return messages
        return sorted(found.values(), key=lambda m: (m.topic, m.partition, m.offset))
    finally:
        await consumer.stop()


async def produce_fast(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Send ``values`` without waiting for each acknowledgement (acks=all, batched)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(topic, v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def parse(messages: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(m.topic, orjson.loads(m.value)) for m in messages]


async def read_to_end(bootstrap: str, topics: list[str], isolation_level: str = "read_uncommitted") -> list[Any]:
    """Every message of ``topics`` up to their end offsets at the time of the call (with
    ``read_committed``: up to the last stable offset, committed transactions only)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                                isolation_level=isolation_level)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(await partitions_of(consumer, t))]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Any] = []
        for _ in range(200):
            if all([await consumer.position(tp) >= ends[tp] for tp in tps]):
                return out
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(messages)
        raise AssertionError("topics not read to their end within 100 s")
    finally:
        await consumer.stop()


class Feeder(threading.Thread):
    """Publishes ``values`` to ``topic`` from its own thread in chunks (acks=all, idempotent),
    pausing between chunks, so that a test can kill things while records keep arriving.
    ``positions`` holds the (partition, offset) of every acknowledged value, in order."""

    def __init__(self, bootstrap: str, topic: str, values: list[bytes], chunk: int = 200, pause: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.values, self.chunk, self.pause = bootstrap, topic, values, chunk, pause
        self.positions: list[tuple[int, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # reported by result()
            self.error = exc

    async def _run(self) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for start in range(0, len(self.values), self.chunk):
                futures = [await producer.send(self.topic, v) for v in self.values[start:start + self.chunk]]
                self.positions += [(m.partition, m.offset) for m in await asyncio.gather(*futures)]
                await asyncio.sleep(self.pause)
        finally:
            await producer.stop()

    def result(self, timeout: float = 300.0) -> list[tuple[int, int]]:
        self.join(timeout)
        if self.error is not None:
            raise AssertionError(f"publishing failed: {self.error!r}") from self.error
        assert not self.is_alive(), "publishing did not finish"
        return self.positions


def changelog_reads(log: str) -> int:
    """Changelog messages a worker's last recovery had to read: highwater - start offset per
    active changelog partition, from the two tables Faust's recovery logs."""
    def table(title: str) -> dict[tuple[str, int], int]:
        at = log.lower().rfind(title.lower())
        assert at >= 0, f"no {title!r} table in the log"
        out: dict[tuple[str, int], int] = {}
        topic = ""
        for line in log[at:].splitlines()[4:]:
            if not line.startswith("|"):
                break
            name, partition, offset = (c.strip() for c in line.strip().strip("|").split("|"))
            topic = topic if name == "\u3003" else name  # 〃: the topic of the row above
            out[(topic, int(partition))] = int(offset)
        return out

    high = table("Highwater for active changelog partitions")
    start = table("active offsets at start of reading")
    assert high and set(high) == set(start)
    return sum(max(0, h - start[tp]) for tp, h in high.items())


def changelog_totals(messages: list[Any]) -> Counter[str]:
    """Latest value per table key (what a recovering worker would load), summed over partitions."""
    latest: dict[str, int] = {}
    for m in messages:
        latest[json.loads(m.key)] = json.loads(m.value) if m.value is not None else 0
    totals: Counter[str] = Counter()
    for key, count in latest.items():
        _partition, subject, tier = key.split("|", 2)
        totals[f"{subject}|{tier}"] += count
    return totals

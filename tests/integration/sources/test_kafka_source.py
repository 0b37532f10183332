"""The Kafka poller as an operator sees it: an external topic on a real broker copied to a raw
topic by ``python -m atlas_stream poll`` subprocesses, killed with SIGKILL mid-way."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from atlas_stream.devbroker import DevBroker
from atlas_stream.kafka_admin import ensure_topics
from atlas_stream.sources.checkpoint import checkpoint_path
from atlas_stream.topics import SOURCE_STATUS_TOPIC, dlq_topic, raw_topic

from ..harness import ROOT, poller_env, read_to_end

GROUP = "kafkait"
SOURCE = "ext.orders"
COPIER = "kafkait-copier"
RAW = raw_topic(GROUP, "orders")
DLQ = dlq_topic(GROUP)
BAD = [b"not json", b"[1, 2]", b'{"order_id": "O-x", ', b"42", None]


def _contract(**source: Any) -> dict[str, Any]:
    return {
        "ocs_group_name": GROUP,
        "source_type": "kafka",
        "source_config": {"group_id": COPIER},
        "dataset_config": [{
            "source": {"name": "orders", "path": SOURCE, "key": "order_id", "batch_size": 10, "poll_interval": 0.2,
                       "features": [{"name": "order_id", "dtype": "string", "required": True},
                                    {"name": "amount", "dtype": "int"}], **source},
            "destination": {"path": f"{GROUP}/orders"},
        }],
    }


def _env(broker: DevBroker, tmp_path: Path, contract: dict[str, Any]) -> dict[str, str]:
    return poller_env(broker.url, tmp_path, contract)


async def _produce(bootstrap: str, first: int, count: int, bad: list[bytes | None]) -> dict[int, tuple[int, int]]:
    """Orders ``first..first+count-1`` over 3 partitions, a bad value after every 100th; returns
    (partition, offset) of each bad value by its index in ``bad``."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    where: dict[int, tuple[int, int]] = {}
    try:
        for i in range(first, first + count):
            value = orjson.dumps({"order_id": f"O-{i}", "amount": i})
            await producer.send(SOURCE, value, key=f"O-{i}".encode(), partition=i % 3)
            if i % 100 == 50 and bad:
                n = len(where)
                if n < len(bad):
                    meta = await producer.send_and_wait(SOURCE, bad[n], key=b"bad", partition=n % 3)
                    where[n] = (meta.partition, meta.offset)
        for n in range(len(where), len(bad)):
            meta = await producer.send_and_wait(SOURCE, bad[n], key=b"bad", partition=n % 3)
            where[n] = (meta.partition, meta.offset)
        await producer.flush()
    finally:
        await producer.stop()
    return where


class Poller:
    """``python -m atlas_stream poll --ocs kafkait`` as a subprocess, output in a log file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "poll", "--ocs", GROUP, *args],
                                         cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait(self, timeout: float = 90.0) -> int:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"poller still running after {timeout}s:\n{self.output()[-4000:]}")
            await asyncio.sleep(0.1)
        return self.proc.returncode


def _rows(checkpoint: Path) -> int:
    try:
        return int(json.loads(checkpoint.read_bytes())["counters"]["rows"])
    except (FileNotFoundError, ValueError, KeyError):
        return 0


async def _kill_when(poller: Poller, checkpoint: Path, rows: int, timeout: float = 60.0) -> int:
    """SIGKILL the poller as soon as its checkpoint counts ``rows`` rows; returns the count seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        seen = _rows(checkpoint)
        if seen >= rows:
            await asyncio.sleep(random.uniform(0, 0.02))  # now and then between publish and checkpoint
            poller.proc.send_signal(signal.SIGKILL)
            poller.proc.wait()
            return seen
        if poller.proc.poll() is not None:
            raise AssertionError(f"poller exited with {poller.proc.returncode}:\n{poller.output()[-4000:]}")
        await asyncio.sleep(0.005)
    raise AssertionError(f"checkpoint never reached {rows} rows:\n{poller.output()[-4000:]}")


async def test_kafka_poller_copies_each_value_once_across_kill_9(kafka: DevBroker, tmp_path: Path) -> None:
    bootstrap = kafka.bootstrap
    await ensure_topics([bootstrap], [SOURCE], 3, 1)
    bad_at = await _produce(bootstrap, 0, 500, BAD)
    env = _env(kafka, tmp_path, _contract())
    checkpoint = checkpoint_path(tmp_path / "data" / "checkpoints", f"kafka:{GROUP}.orders")

    # Three runs killed with SIGKILL mid-way, then one that finishes.
    killed = []
    for n, at in enumerate((100, 250, 400)):
        poller = Poller(env, tmp_path / f"poll-{n}.log")
        killed.append(await _kill_when(poller, checkpoint, at))
    assert all(k < 500 for k in killed), f"the kills came too late to be mid-way: {killed}"
    last = Poller(env, tmp_path / "poll-last.log", "--once")
    assert await last.wait() == 0, last.output()

    messages = await read_to_end(bootstrap, [RAW, DLQ])
    orders = Counter(orjson.loads(m.value)["order_id"] for m in messages if m.topic == RAW)
    missing = [f"O-{i}" for i in range(500) if f"O-{i}" not in orders]
    duplicated = [k for k, c in orders.items() if c > 1]
    assert not missing and not duplicated, (f"{len(missing)} missing, {len(duplicated)} duplicated "
                                            f"(kills at {killed})")
    assert len(orders) == 500
    copy = next(m for m in messages if m.topic == RAW and orjson.loads(m.value)["order_id"] == "O-7")
    assert copy.key == b"O-7" and copy.value == orjson.dumps({"order_id": "O-7", "amount": 7})
    headers = dict(copy.headers)
    assert headers["atlas-source"] == f"kafka:{GROUP}.orders".encode()
    assert headers["atlas-pos"].decode().startswith(f"{SOURCE}:1:")

    # Bad values: in the DLQ once each, with where they were and why.
    dead = [orjson.loads(m.value) for m in messages if m.topic == DLQ]
    assert sorted((d["source"]["partition"], d["source"]["offset"]) for d in dead) == sorted(bad_at.values())
    for d in dead:
        assert d["source"]["topic"] == SOURCE and d["dataset"] == "orders" and d["error"]
    errors = " | ".join(d["error"] for d in dead)
    assert "not valid JSON" in errors and "expected a JSON object" in errors and "tombstone" in errors

    # The copier's group offsets were committed (after the acks) up to the end of the topic.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=COPIER, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(SOURCE, p) for p in range(3)]
        ends = await consumer.end_offsets(tps)
        assert {tp.partition: await consumer.committed(tp) for tp in tps} == {tp.partition: ends[tp] for tp in tps}
    finally:
        await consumer.stop()

    # Status: caught up.
    status = [orjson.loads(m.value) for m in await read_to_end(bootstrap, [SOURCE_STATUS_TOPIC])]
    mine = [s for s in status if s["source"] == f"kafka:{GROUP}.orders"]
    # (rows: what the checkpoints counted; records recovered after a kill are not counted again)
    assert mine[-1]["lag"] == 0 and 0 < mine[-1]["rows"] <= 500, mine[-1]

    # More values later: only they are copied.
    await _produce(bootstrap, 500, 40, [])
    again = Poller(env, tmp_path / "poll-again.log", "--once")
    assert await again.wait() == 0, again.output()
    messages = await read_to_end(bootstrap, [RAW, DLQ])
    orders = Counter(orjson.loads(m.value)["order_id"] for m in messages if m.topic == RAW)
    assert len(orders) == 540 and max(orders.values()) == 1
    assert len([m for m in messages if m.topic == DLQ]) == len(BAD)


async def test_consume_directly_only_checks_the_topic(kafka: DevBroker, tmp_path: Path) -> None:
    await ensure_topics([kafka.bootstrap], [RAW], 2, 1)
    env = _env(kafka, tmp_path, _contract(path=RAW, consume_directly=True))
    poller = Poller(env, tmp_path / "direct.log", "--once")
    assert await poller.wait() == 0, poller.output()
    out = poller.output()
    assert f"topic '{RAW}' exists (2 partitions)" in out and "copies nothing" in out, out

    env = _env(kafka, tmp_path, _contract(consume_directly=True))  # ext.orders does not exist here
    poller = Poller(env, tmp_path / "direct-missing.log", "--once")
    assert await poller.wait() != 0
    assert f"topic '{SOURCE}' does not exist" in poller.output()

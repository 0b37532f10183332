"""Raw to tier speed against the speed limit: three programs over the same records in one run.

    .venv/bin/python bench/stream_throughput.py [--records 30000] [--broker kafka|noida|tansu]
                                                [--latency-seconds 5] [--idle-seconds 60]

One fresh development broker (real Apache Kafka by default), one raw topic of 4 partitions
pre-loaded with ``--records`` JSON records of about 300 bytes; then, each with its own consumer
group over the same records:

(a) a plain aiokafka relay (bench/aiokafka_relay.py): consume, orjson decode + encode, produce
    with acks=all, commit: what the client library itself reaches on this broker;
(b) a Faust pass-through agent (bench/passthrough_app.py), Atlas Stream's producer settings;
(c) the Atlas Stream worker: decode, transform, score, route to a tier topic or the DLQ, stats.

Throughput is counted from the broker's append times (the output topics are created with
``message.timestamp.type=LogAppendTime``) of the first and last output, so start-up is not
counted. Then, with (a) and then (c) still running, records are sent one at a time at 1,000 records/s and
the latency of each is its output's append time minus the time it was sent (p50/p99).
Last, the idle worker's CPU use is read from /proc over ``--idle-seconds``.
Goals (issue 11): c/a >= 0.5 on real Kafka, p99 latency <= 100 ms, idle < 2 % of a core.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.devbroker import choose_dev_broker, free_port, make_dev_broker  # noqa: E402
from atlas_stream.devkafka import KAFKA_VERSION  # noqa: E402

RAW = "atlas.bench.events.raw"
TIER_TOPICS = [f"atlas.bench.events.{t}" for t in ("gold", "silver", "bronze", "rejected")] + ["atlas.bench.dlq"]
RELAY_OUT = "bench.relay.out"
PASS_OUT = "bench.passthrough.out"
PARTITIONS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK")


def record(i: int, rng: random.Random, prefix: str = "E") -> bytes:
    qty = rng.randint(1, 20)
    price = round(rng.uniform(1, 100), 2)
    rec = {
        "event_id": f"{prefix}-{i}", "user_id": rng.randint(1, 10**9), "amount": f"{qty * price:.2f}",
        "quantity": qty, "price": price, "currency": rng.choice(["usd", "EUR", "GBP", "JPY"]),
        "country": rng.choice(["US", "DE", "GB", "FRA"]), "paid": rng.random() < 0.9,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    rec["payload"] = "x" * max(0, 300 - len(orjson.dumps(rec)) - 14)
    return orjson.dumps(rec)


async def create_topics(bootstrap: str) -> None:
    """The raw topic, and every output topic with the broker's append time as timestamp."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        append_time = {"message.timestamp.type": "LogAppendTime"}
        await admin.create_topics([NewTopic(RAW, PARTITIONS, 1)] + [
            NewTopic(t, PARTITIONS, 1, topic_configs=append_time) for t in (*TIER_TOPICS, RELAY_OUT, PASS_OUT)])
    finally:
        await admin.close()


async def preload(bootstrap: str, n: int) -> None:
    rng = random.Random(7)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(RAW, record(i, rng), key=f"E-{i}".encode()) for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _consumer(bootstrap: str, topics: list[str],
                    proc: subprocess.Popen[bytes]) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=50)
    await consumer.start()
    tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
    consumer.assign(tps)
    _check(proc)
    return consumer, tps


async def raw_records(bootstrap: str) -> int:
    """How many records the raw topic holds now: the pre-loaded ones plus the paced records of
    the programs measured before (the relay's paced run goes into the same raw topic)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(RAW, p) for p in range(PARTITIONS)]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


def _check(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        raise SystemExit(f"{proc.args!r} exited with code {proc.returncode}: see its log")


async def throughput(bootstrap: str, topics: list[str], n: int, proc: subprocess.Popen[bytes]) -> tuple[float, float]:
    """Records/s between the first and the last of ``n`` outputs (broker append times), and the
    process's CPU time per record (microseconds) over the same stretch: on a shared machine the
    second figure moves much less with what else runs."""
    deadline = time.monotonic() + 900
    consumer, tps = await _consumer(bootstrap, topics, proc)
    first, last, count = None, None, 0
    cpu_from, count_from = 0.0, 0
    try:
        await consumer.seek_to_beginning(*tps)
        while count < n and time.monotonic() < deadline:
            _check(proc)
            for msgs in (await consumer.getmany(timeout_ms=100, max_records=10000)).values():
                for m in msgs:
                    first = m.timestamp if first is None else min(first, m.timestamp)
                    last = m.timestamp if last is None else max(last, m.timestamp)
                    count += 1
            if count and not count_from:
                cpu_from, count_from = cpu_seconds(proc.pid), count
        cpu = cpu_seconds(proc.pid) - cpu_from
    finally:
        await consumer.stop()
    if count < n or first is None or last is None:
        raise SystemExit(f"only {count} of {n} outputs arrived")
    return count / max((last - first) / 1000.0, 1e-3), 1e6 * cpu / max(count - count_from, 1)


def _event_id(doc: dict[str, Any]) -> str:
    """A record's event_id, in a tier message (under ``record``) or as relayed."""
    return str(doc.get("record", doc).get("event_id", ""))


async def latency(bootstrap: str, topics: list[str], seconds: float, rate: int,
                  proc: subprocess.Popen[bytes]) -> list[float]:
    """Milliseconds from sending a raw record to its output's append time at the broker, for
    records sent one by one at ``rate``/s (each sent alone: no batching on the way in)."""
    consumer, tps = await _consumer(bootstrap, topics, proc)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    rng = random.Random(11)
    n = int(seconds * rate)
    sent: dict[str, float] = {}
    got: dict[str, float] = {}
    try:
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)

        async def collect() -> None:
            while len(got) < n:
                for msgs in (await consumer.getmany(timeout_ms=200)).values():
                    for m in msgs:
                        event_id = _event_id(orjson.loads(m.value))
                        if event_id in sent:
                            got[event_id] = m.timestamp - sent[event_id]

        collector = asyncio.create_task(collect())
        start = time.monotonic()
        for i in range(n):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[f"L-{i}"] = time.time() * 1000.0
            await producer.send(RAW, record(i, rng, "L"), key=f"L-{i}".encode())
        try:
            await asyncio.wait_for(collector, 60)
        except TimeoutError:
            raise SystemExit(f"only {len(got)} of {n} paced records came out") from None
        _check(proc)
    finally:
        await producer.stop()
        await consumer.stop()
    trace = os.environ.get("ATLAS_BENCH_LATENCY_TRACE")
    if trace:  # one line per paced record, in send order: index, milliseconds (where the slow ones are)
        Path(trace).write_text("".join(f"{i},{got.get(f'L-{i}', -1):.1f}\n" for i in range(n)))
    return sorted(got.values())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def idle_cpu(proc: subprocess.Popen[bytes], seconds: float) -> float:
    """Percent of one core the process used over ``seconds`` of no traffic."""
    time.sleep(5)  # let the last commit and stats flush settle
    before, t0 = cpu_seconds(proc.pid), time.monotonic()
    time.sleep(seconds)
    _check(proc)
    return 100.0 * (cpu_seconds(proc.pid) - before) / (time.monotonic() - t0)


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)


def profile(proc: subprocess.Popen[bytes], out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``proc`` into ``out`` (collapsed stacks, idle frames left out)."""
    spy = Path(sys.executable).with_name("py-spy")
    return subprocess.Popen([str(spy), "record", "--pid", str(proc.pid), "--format", "raw", "--rate", "200",
                             "--nonblocking", "--output", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def pct(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=30000)
    parser.add_argument("--broker", choices=("kafka", "noida", "tansu"), default=None,
                        help="default: real Apache Kafka when Java is there, else noida-db")
    parser.add_argument("--latency-seconds", type=float, default=5.0, help="paced run at 1,000 records/s")
    parser.add_argument("--idle-seconds", type=float, default=60.0, help="0 skips the idle measurement")
    parser.add_argument("--only", default="abc", help="which of a, b, c to run (default all)")
    parser.add_argument("--profile", action="store_true",
                        help="record (b) and (c) with py-spy (pip install py-spy) into the log folder")
    args = parser.parse_args()
    kind, note = choose_dev_broker(args.broker)
    if note:
        print(note)
    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    (tmp / "data").mkdir()
    results: dict[str, Any] = {}
    cpu: dict[str, float] = {}
    broker_log = open(tmp / "broker.log", "w")
    broker = make_dev_broker(kind, free_port(), data_dir=tmp / "broker", log=broker_log)
    label = f"Apache Kafka {KAFKA_VERSION} (KRaft, 1 node)" if kind == "kafka" else f"{kind} (PyPI imitation)"
    print(f"broker: {label} at {broker.bootstrap}", flush=True)
    with broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        env.update({"ATLAS_BROKER": broker.url, "ATLAS_EMBEDDED_BROKER": "1", "ATLAS_DEV_BROKER": kind,
                    "ATLAS_METADATA_DIR": str(ROOT / "bench" / "contracts"), "ATLAS_DATA_DIR": str(tmp / "data"),
                    "ATLAS_TOPIC_PARTITIONS": str(PARTITIONS), "ATLAS_LOG_LEVEL": "warn",
                    "ATLAS_SINK_ENABLED": "0", "PYTHONPATH": str(ROOT)})
        asyncio.run(create_topics(broker.bootstrap))
        print(f"preloading {args.records:,} records of about 300 bytes into {RAW} ({PARTITIONS} partitions) ...",
              flush=True)
        asyncio.run(preload(broker.bootstrap, args.records))
        runs = {
            "a": ("aiokafka relay", [sys.executable, "bench/aiokafka_relay.py", broker.bootstrap, "bench-relay",
                                     RAW, RELAY_OUT], {}, [RELAY_OUT]),
            "b": ("faust pass-through", [sys.executable, "bench/passthrough_app.py", "worker", "-l", "warn",
                                         "--web-port", str(free_port())], {"ATLAS_APP_ID": "bench-passthrough"},
                  [PASS_OUT]),
            "c": ("atlas stream worker", [sys.executable, "-m", "atlas_stream", "worker", "-l", "warn"],
                  {"ATLAS_APP_ID": "bench-atlas", "ATLAS_WEB_PORT": str(free_port())}, TIER_TOPICS),
        }
        for name in args.only:
            title, cmd, extra, topics = runs[name]
            proc = start(cmd, {**env, **extra}, tmp / f"{name}.log")
            spy = profile(proc, tmp / f"{name}.pyspy.txt") if args.profile and name != "a" else None
            try:
                # Every raw record, not just the pre-loaded ones: the paced run must start at a quiet
                # moment, not while the program still works through what an earlier paced run added.
                backlog = asyncio.run(raw_records(broker.bootstrap))
                results[name], cpu_us = asyncio.run(throughput(broker.bootstrap, topics, backlog, proc))
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)
                cpu[name] = cpu_us
                print(f"({name}) {title}: {results[name]:,.0f} records/s, {cpu_us:,.0f} µs of CPU per record",
                      flush=True)
                if name in "ac" and args.latency_seconds > 0:
                    lat = asyncio.run(latency(broker.bootstrap, topics, args.latency_seconds, 1000, proc))
                    goal = " (goal p99 <= 100 ms)" if name == "c" else ""
                    print(f"    latency, {len(lat):,} records sent one by one at 1,000/s: p50 {pct(lat, 0.5):.1f} ms, "
                          f"p99 {pct(lat, 0.99):.1f} ms, max {lat[-1]:.1f} ms{goal}", flush=True)
                if name == "c" and args.idle_seconds > 0:
                    idle = idle_cpu(proc, args.idle_seconds)
                    print(f"    idle worker: {idle:.2f} % of a core over {args.idle_seconds:.0f} s (goal < 2 %)",
                          flush=True)
            finally:
                stop(proc)
    broker_log.close()
    if "c" in results:
        for base, goal in (("a", 0.5), ("b", None)):
            if base in results:
                ratio = results["c"] / results[base]
                verdict = f" (goal >= {goal:.2f}: {'met' if ratio >= goal else 'NOT met'})" if goal else ""
                print(f"c/{base}: {ratio:.2f}{verdict}; CPU per record {cpu[base] / cpu['c']:.2f}")
    print(f"broker: {label}; logs in {tmp}")


if __name__ == "__main__":
    main()

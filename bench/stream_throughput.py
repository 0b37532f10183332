"""Records/s from raw to tier topics, next to a pass-through agent in the same run.

    .venv/bin/python bench/stream_throughput.py [--records 20000] [--broker tansu|noida]

Both workers run against the same fresh development broker, over the same pre-loaded raw topic of
1 KB records; throughput is measured from the broker timestamps of the first and last output
messages, so worker start-up is not counted. Goal: Atlas Stream >= 0.5 x pass-through.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.devbroker import DevBroker, free_port  # noqa: E402
from atlas_stream.kafka_admin import ensure_topics  # noqa: E402

RAW = "atlas.bench.events.raw"
TIER_TOPICS = [f"atlas.bench.events.{t}" for t in ("gold", "silver", "bronze", "rejected")] + ["atlas.bench.dlq"]


def record(i: int, rng: random.Random) -> bytes:
    qty = rng.randint(1, 20)
    price = round(rng.uniform(1, 100), 2)
    rec = {
        "event_id": f"E-{i}", "user_id": rng.randint(1, 10**9), "amount": f"{qty * price:.2f}",
        "quantity": qty, "price": price, "currency": rng.choice(["usd", "EUR", "GBP", "JPY"]),
        "country": rng.choice(["US", "DE", "GB", "FRA"]), "paid": rng.random() < 0.9,
        "created_at": datetime.now(timezone.utc).isoformat(),
    }
    rec["payload"] = "x" * (1024 - len(orjson.dumps(rec)) - 14)
    return orjson.dumps(rec)


async def preload(bootstrap: str, n: int) -> None:
    rng = random.Random(7)
    await ensure_topics([bootstrap], [RAW], partitions=4, replication=1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        futures = [await producer.send(RAW, record(i, rng), key=f"E-{i}".encode()) for i in range(n)]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def wait_outputs(bootstrap: str, topics: list[str], n: int, timeout: float,
                       proc: subprocess.Popen[bytes]) -> tuple[int, float]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest")
    await consumer.start()
    first, last, count = None, None, 0
    deadline = time.monotonic() + timeout
    try:
        tps: list[TopicPartition] = []
        while not tps and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the worker exited with code {proc.returncode}: see its log")
            await consumer._client.force_metadata_update()  # aiokafka has no public refresh
            tps = [TopicPartition(t, p) for t in topics for p in (consumer.partitions_for_topic(t) or ())]
            await asyncio.sleep(0.5)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last_progress = time.monotonic()
        while count < n and time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"the worker exited with code {proc.returncode}: see its log")
            batch = await consumer.getmany(timeout_ms=1000, max_records=10000)
            for msgs in batch.values():
                for m in msgs:
                    ts = m.timestamp / 1000.0
                    first = ts if first is None else min(first, ts)
                    last = ts if last is None else max(last, ts)
                    count += 1
            if batch:
                last_progress = time.monotonic()
            elif time.monotonic() - last_progress > 60:
                break
            if tps and len(tps) < sum(len(consumer.partitions_for_topic(t) or ()) for t in topics):
                await consumer._client.force_metadata_update()  # aiokafka has no public refresh
    finally:
        await consumer.stop()
    if count < n or first is None or last is None:
        raise SystemExit(f"only {count} of {n} outputs arrived: see the worker log")
    return count, max(last - first, 1e-3)


def run_worker(cmd: list[str], env: dict[str, str], bootstrap: str, topics: list[str], n: int, log: Path) -> float:
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            count, seconds = asyncio.run(wait_outputs(bootstrap, topics, n, timeout=600, proc=proc))
        finally:
            proc.terminate()
            proc.wait(60)
    return count / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=20000)
    # Tansu by default: noida-db rewrites a JSON snapshot of all data every second, which makes
    # the broker, not the worker, the bottleneck once megabytes are stored.
    parser.add_argument("--broker", choices=("noida", "tansu"), default="tansu")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="atlas-bench-"))
    (tmp / "data").mkdir()
    with DevBroker(args.broker, free_port(), data_dir=tmp / "broker") as broker:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        env.update({"ATLAS_BROKER": broker.url, "ATLAS_EMBEDDED_BROKER": "1", "ATLAS_DEV_BROKER": args.broker,
                    "ATLAS_METADATA_DIR": str(ROOT / "bench" / "contracts"), "ATLAS_DATA_DIR": str(tmp / "data"),
                    "ATLAS_TOPIC_PARTITIONS": "4", "ATLAS_LOG_LEVEL": "warn", "PYTHONPATH": str(ROOT)})
        print(f"preloading {args.records} records of 1 KB into {RAW} ...", flush=True)
        asyncio.run(preload(broker.bootstrap, args.records))
        print("pass-through worker ...", flush=True)
        base = run_worker([sys.executable, "bench/passthrough_app.py", "worker", "-l", "warn",
                           "--web-port", str(free_port())],
                          {**env, "ATLAS_APP_ID": "bench-passthrough"}, broker.bootstrap,
                          ["bench.passthrough.out"], args.records, tmp / "passthrough.log")
        print(f"  pass-through: {base:,.0f} records/s", flush=True)
        print("atlas stream worker (validate, score, route, stats tables) ...", flush=True)
        ours = run_worker([sys.executable, "-m", "atlas_stream", "worker", "-l", "warn"],
                          {**env, "ATLAS_APP_ID": "bench-atlas", "ATLAS_WEB_PORT": str(free_port())},
                          broker.bootstrap, TIER_TOPICS, args.records, tmp / "atlas.log")
        print(f"  atlas stream: {ours:,.0f} records/s", flush=True)
    ratio = ours / base
    print(f"ratio atlas/pass-through: {ratio:.2f} (goal >= 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
    print(f"logs in {tmp}")


if __name__ == "__main__":
    main()

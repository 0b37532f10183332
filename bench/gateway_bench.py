"""WebSocket gateway: records/s and acknowledgement latency, next to a direct Kafka producer.

    .venv/bin/python bench/gateway_bench.py [--seconds 10] [--clients 8] [--frame 100] [--rate 1000]

Starts a fresh development broker (Apache Kafka by default, `--broker` to choose) and ``python -m atlas_stream gateway``, then measures, each against a
baseline measured in the same run on the same broker (an aiokafka producer with acks=all in this
process, shaped the same way):

1. throughput: ``--clients`` connections, each keeping up to 4 frames of ``--frame`` records in
   flight, for ``--seconds``; records acknowledged per second.
2. latency: single-record frames at a steady ``--rate`` records/s (open loop, spread over the
   clients), for ``--seconds``; p50/p99 from the scheduled send time to the ``ok`` reply, so a
   stall is counted in full rather than hidden by the sender slowing down.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from websockets.asyncio.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.devbroker import DevBroker, choose_dev_broker, describe_broker, free_port, make_dev_broker  # noqa: E402,E501
from atlas_stream.devkafka import KafkaCluster  # noqa: E402
from atlas_stream.kafka_admin import ensure_topics  # noqa: E402

TOPIC = "atlas.gwbench.events.raw"
WINDOW = 4  # frames in flight per connection (the gateway buffers 4 per connection)
CONTRACT = {
    "ocs_group_name": "gwbench",
    "source_type": "stream",
    "source_config": {"auth": "none"},
    "dataset_config": [{
        "source": {"name": "events", "key": "event_id", "features": [
            {"name": "event_id", "dtype": "string", "required": True},
            {"name": "user", "dtype": "int"}, {"name": "amount", "dtype": "double"},
            {"name": "note", "dtype": "string"}]},
        "destination": {"path": "gwbench/events"},
    }],
}


def record(i: int) -> dict[str, Any]:
    return {"event_id": f"E-{i:09d}", "user": i % 9973, "amount": round(i * 0.37, 2), "note": "x" * 120}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------- gateway clients

async def gateway_throughput(url: str, clients: int, frame: int, seconds: float) -> float:
    acked = [0] * clients
    stop_at = time.monotonic() + seconds

    async def client(c: int) -> None:
        async with connect(url, max_size=None) as ws:
            window = asyncio.Semaphore(WINDOW)

            async def receive() -> None:
                async for message in ws:
                    reply = orjson.loads(message)
                    if not reply["ok"]:
                        raise SystemExit(f"gateway refused a frame: {reply}")
                    acked[c] += reply["count"]
                    window.release()

            receiver = asyncio.create_task(receive())
            sent, i = 0, c * 10**8
            while time.monotonic() < stop_at:
                await window.acquire()
                await ws.send(orjson.dumps([record(i + k) for k in range(frame)]).decode())
                i += frame
                sent += frame
            while acked[c] < sent and not receiver.done():
                await asyncio.sleep(0.01)
            receiver.cancel()

    started = time.monotonic()
    await asyncio.gather(*(client(c) for c in range(clients)))
    return sum(acked) / (time.monotonic() - started)


async def gateway_latency(url: str, clients: int, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    per_client = rate / clients
    n = int(per_client * seconds)

    async def client(c: int) -> None:
        async with connect(url) as ws:
            scheduled: list[float] = []

            async def receive() -> None:
                for k in range(n):
                    reply = orjson.loads(await ws.recv())
                    if not reply["ok"]:
                        raise SystemExit(f"gateway refused a frame: {reply}")
                    latencies.append(time.monotonic() - scheduled[k])

            receiver = asyncio.create_task(receive())
            start = time.monotonic() + c / rate  # stagger the clients evenly
            for k in range(n):
                at = start + k / per_client
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                scheduled.append(at)
                await ws.send(orjson.dumps(record(c * 10**8 + k)).decode())
            await receiver

    await asyncio.gather(*(client(c) for c in range(clients)))
    return latencies


# ---------------------------------------------------------------------------- direct baseline

async def direct_throughput(bootstrap: str, clients: int, frame: int, seconds: float) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=256 * 1024)
    await producer.start()
    acked = [0] * clients
    stop_at = time.monotonic() + seconds

    async def client(c: int) -> None:
        window = asyncio.Semaphore(WINDOW)
        pending: set[asyncio.Task[None]] = set()

        async def one_frame(i: int) -> None:
            records = [record(i + k) for k in range(frame)]
            futures = [await producer.send(TOPIC, orjson.dumps(r), key=r["event_id"].encode()) for r in records]
            await asyncio.gather(*futures)
            acked[c] += frame
            window.release()

        i = c * 10**8
        while time.monotonic() < stop_at:
            await window.acquire()
            task = asyncio.create_task(one_frame(i))
            pending.add(task)
            task.add_done_callback(pending.discard)
            i += frame
        await asyncio.gather(*pending)

    started = time.monotonic()
    try:
        await asyncio.gather(*(client(c) for c in range(clients)))
        return sum(acked) / (time.monotonic() - started)
    finally:
        await producer.stop()


async def direct_latency(bootstrap: str, rate: float, seconds: float) -> list[float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    latencies: list[float] = []
    try:
        start = time.monotonic()
        waits = []
        for k in range(int(rate * seconds)):
            at = start + k / rate
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            r = record(k)
            fut = await producer.send(TOPIC, orjson.dumps(r), key=r["event_id"].encode())
            fut.add_done_callback(lambda _, at=at: latencies.append(time.monotonic() - at))
            waits.append(fut)
        await asyncio.gather(*waits)
        return latencies
    finally:
        await producer.stop()


# ---------------------------------------------------------------------------- main

def start_gateway(broker: DevBroker | KafkaCluster, tmp: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    metadata = tmp / "metadata"
    metadata.mkdir()
    (metadata / "gwbench.json").write_bytes(orjson.dumps(CONTRACT))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_BROKER": broker.url, "ATLAS_METADATA_DIR": str(metadata), "ATLAS_DATA_DIR": str(tmp / "data"),
                "ATLAS_TOPIC_PARTITIONS": "4", "ATLAS_LOG_LEVEL": "warn", "PYTHONUNBUFFERED": "1"})
    log = tmp / "gateway.log"
    out = open(log, "wb")  # noqa: SIM115  # the gateway writes to it until the end
    proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "gateway", "--port", "0"], cwd=ROOT, env=env,
                            stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"atlas gateway ready: (ws://\S+?)/ingest/", log.read_text(errors="replace"))
        if found:
            return proc, f"{found.group(1)}/ingest/gwbench/events", log
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the gateway did not start: see {log}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--frame", type=int, default=100, help="records per frame (throughput)")
    parser.add_argument("--rate", type=float, default=1000.0, help="records/s (latency)")
    parser.add_argument("--broker", choices=("kafka", "noida", "tansu"), default=None,
                        help="default: Apache Kafka when Java is there, else noida-db")
    args = parser.parse_args()
    kind, note = choose_dev_broker(args.broker)
    if note:
        print(f"note: {note}", flush=True)
    tmp = Path(tempfile.mkdtemp(prefix="atlas-gateway-bench-"))
    with make_dev_broker(kind, free_port(), data_dir=tmp / "broker") as broker:
        print(f"broker: {describe_broker(kind)} at {broker.bootstrap}", flush=True)
        asyncio.run(ensure_topics([broker.bootstrap], [TOPIC], 4, 1))
        proc, url, log = start_gateway(broker, tmp)
        try:
            print(f"throughput: {args.clients} clients, frames of {args.frame} records, {args.seconds:g}s each",
                  flush=True)
            base = asyncio.run(direct_throughput(broker.bootstrap, args.clients, args.frame, args.seconds))
            print(f"  direct aiokafka producer: {base:,.0f} records/s", flush=True)
            ours = asyncio.run(gateway_throughput(url, args.clients, args.frame, args.seconds))
            print(f"  gateway:                  {ours:,.0f} records/s (ratio {ours / base:.2f})", flush=True)
            print(f"latency: single records at {args.rate:g}/s for {args.seconds:g}s", flush=True)
            direct = asyncio.run(direct_latency(broker.bootstrap, args.rate, args.seconds))
            print(f"  direct aiokafka producer: p50 {percentile(direct, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(direct, 0.99) * 1000:.1f} ms ({len(direct)} records)", flush=True)
            lat = asyncio.run(gateway_latency(url, args.clients, args.rate, args.seconds))
            print(f"  gateway:                  p50 {percentile(lat, 0.5) * 1000:.1f} ms, "
                  f"p99 {percentile(lat, 0.99) * 1000:.1f} ms ({len(lat)} records; "
                  f"{args.clients} connections)", flush=True)
        finally:
            proc.terminate()
            proc.wait(60)
    print(f"gateway log in {log}")


if __name__ == "__main__":
    main()

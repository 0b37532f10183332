"""Parquet sink speed, as ratios against a baseline measured in the same run.

1. Throughput: the sink's writer (tier messages -> Arrow -> row groups -> commit by rename)
   against pyarrow writing the same rows, already as record batches, straight to a file.
   Goal: ratio >= 0.5.
2. End-to-end latency from the raw topic to a committed file (p50, p99), through a real worker
   on the Tansu development broker, with ATLAS_SINK_FLUSH_SECONDS / ROTATE_SECONDS as given.

    .venv/bin/python bench/sink_bench.py [--rows 200000] [--latency-records 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.contracts import load_contracts  # noqa: E402
from atlas_stream.lake import dataset_features, lake_schema  # noqa: E402
from atlas_stream.sinks.lakefs import open_lake  # noqa: E402
from atlas_stream.sinks.parquet import Limits, PartitionWriter, Recovery, rows_to_table  # noqa: E402

CONTRACT_DIR = ROOT / "tests" / "integration" / "contracts"


def tier_messages(n: int) -> list[bytes]:
    now = datetime.now(timezone.utc).isoformat()
    out = []
    for i in range(n):
        out.append(orjson.dumps({
            "record": {"order_id": f"O-{i}", "amount": 10.5 + i % 100, "quantity": 1 + i % 5, "currency": "USD",
                       "note": "ok", "created_at": now},
            "quality": {"tier": "gold", "score": 1.0, "failures": [], "passed": 19, "counted": 19},
            "source": {"topic": "atlas.itest.orders.raw", "partition": 0, "offset": i, "timestamp": 1.7e9 + i},
            "schema": {"subject": "itest.orders", "version": 1}, "ingested_at": now,
        }))
    return out


async def sink_run(values: list[bytes], root: Path) -> float:
    ds = load_contracts(CONTRACT_DIR)[0].datasets[0]
    lake = open_lake(root.as_uri())
    limits = Limits(flush_seconds=3600, flush_rows=50_000, rotate_seconds=3600, rotate_rows=10**9, rotate_bytes=10**12)
    w = PartitionWriter(lake, ds, "gold", "atlas.itest.orders.gold", 0, Recovery(), limits, root / "staging",
                        lambda d, v: d.schema)
    t0 = time.perf_counter()
    for offset, value in enumerate(values):
        w.consume(offset, orjson.loads(value), len(value))
        if w.due(time.monotonic()):
            await w.flush()
    await w.commit()
    return time.perf_counter() - t0


def baseline_run(values: list[bytes], root: Path) -> float:
    """pyarrow alone: the same rows as ready record batches of 50,000, written to one file."""
    ds = load_contracts(CONTRACT_DIR)[0].datasets[0]
    features = dataset_features(ds)
    schema = lake_schema(features)
    batches = [rows_to_table([orjson.loads(v) for v in values[i:i + 50_000]], features, schema)
               for i in range(0, len(values), 50_000)]
    t0 = time.perf_counter()
    with pq.ParquetWriter(str(root / "baseline.parquet"), schema, compression="snappy") as writer:
        for b in batches:
            writer.write_table(b)
    return time.perf_counter() - t0


def throughput(rows: int) -> float:
    values = tier_messages(rows)
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline_run(values, Path(tmp))
        sink = asyncio.run(sink_run(values, Path(tmp) / "lake"))
    ratio = base / sink
    print(f"throughput: pyarrow direct {rows / base:,.0f} rows/s, Parquet sink {rows / sink:,.0f} rows/s "
          f"(decode + convert + write + commit); ratio {ratio:.2f} (goal >= 0.5)")
    return ratio


def latency(records: int, flush: str, rotate: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from integration.harness import Worker, worker_env

    from atlas_stream.devbroker import DevBroker, free_port

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        broker = DevBroker("tansu", free_port(), data_dir=tmp / "broker", log=open(tmp / "broker.log", "w"))
        broker.start()
        meta = tmp / "metadata"
        meta.mkdir()
        (meta / "itest.json").write_bytes((CONTRACT_DIR / "itest.json").read_bytes())
        env = worker_env(broker.bootstrap, tmp, meta, "atlas-bench-sink", ATLAS_DEV_BROKER="tansu",
                         ATLAS_WEB_PORT=str(free_port()), ATLAS_SINK_FLUSH_SECONDS=flush,
                         ATLAS_SINK_ROTATE_SECONDS=rotate)
        worker = Worker(env, tmp / "worker.log").start()
        try:
            worker.wait_ready()
            sent: dict[int, float] = {}
            values = []
            for i in range(records):
                values.append(orjson.dumps({"order_id": f"O-{i}", "amount": 12.0, "quantity": 2, "currency": "USD",
                                            "note": "ok", "created_at": datetime.now(timezone.utc).isoformat()}))
            # Paced at ~200 records/s so that the figure is latency, not a backlog draining.
            async def paced() -> None:
                from aiokafka import AIOKafkaProducer

                producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
                await producer.start()
                try:
                    for i, v in enumerate(values):
                        sent[i] = time.time()
                        await producer.send_and_wait("atlas.itest.orders.raw", v)
                        await asyncio.sleep(0.005)
                finally:
                    await producer.stop()
            asyncio.run(paced())
            seen: dict[str, float] = {}
            deadline = time.time() + 120 + records / 50
            lake = tmp / "lake"
            while time.time() < deadline:
                for f in lake.rglob("*.parquet"):
                    seen.setdefault(str(f), f.stat().st_mtime)
                n = sum(pq.read_metadata(f).num_rows for f in map(Path, seen))
                if n >= records:
                    break
                time.sleep(0.2)
            lat = []
            for f, committed in seen.items():
                for oid in pq.read_table(f, columns=["order_id"]).column("order_id").to_pylist():
                    lat.append(committed - sent[int(oid[2:])])
            lat.sort()
            p50 = statistics.median(lat)
            p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
            print(f"latency raw topic -> committed file ({len(lat)} records, flush {flush}s, rotate {rotate}s): "
                  f"p50 {p50:.2f}s, p99 {p99:.2f}s")
        finally:
            worker.stop()
            broker.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--latency-records", type=int, default=2000)
    ap.add_argument("--flush", default="1")
    ap.add_argument("--rotate", default="2")
    args = ap.parse_args()
    throughput(args.rows)
    if args.latency_records:
        latency(args.latency_records, args.flush, args.rotate)


if __name__ == "__main__":
    main()

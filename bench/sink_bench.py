"""Parquet sink speed, as ratios against baselines measured in the same run.

1. Throughput: the sink as the agent drives it (``SinkRouter.handle`` per tier message: window
   buffers, Arrow decoding of the JSON values, row groups, commit by rename, offsets) against
   (a) pyarrow writing the same rows, already as record batches, straight to a file (the
   issue's ratio, goal >= 0.5), and (b) pyarrow doing the whole job directly from the same
   bytes: ``pyarrow.json.read_json`` of each window, then the same write. Each is run three
   times, interleaved; the best run of each counts.
2. End-to-end latency from the raw topic to a committed file (p50, p99), through a real worker
   on a development broker (Apache Kafka by default), with ATLAS_SINK_FLUSH_SECONDS / ROTATE_SECONDS as given.

    .venv/bin/python bench/sink_bench.py [--rows 200000] [--latency-records 2000]
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
from typing import Any

import orjson
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.contracts import load_contracts  # noqa: E402
from atlas_stream.lake import dataset_features, lake_schema  # noqa: E402
from atlas_stream.sinks.lakefs import open_lake  # noqa: E402
from atlas_stream.pipeline import load_catalog  # noqa: E402
from atlas_stream.sinks.parquet import Limits, ParquetSink  # noqa: E402
from atlas_stream.sinks.probe import Probe  # noqa: E402
from atlas_stream.sinks.router import SinkRouter  # noqa: E402
from atlas_stream.sinks.tier_arrow import decode_window, rows_to_table  # noqa: E402

CONTRACT_DIR = ROOT / "tests" / "integration" / "contracts"


def tier_messages(n: int) -> list[bytes]:
    """Gold tier messages as the scoring agent writes them, with values that vary as real ones do."""
    start = datetime.now(timezone.utc).timestamp()
    out = []
    for i in range(n):
        created = datetime.fromtimestamp(start - 60 + i * 0.001, timezone.utc).isoformat()
        ingested = datetime.fromtimestamp(start + i * 0.001, timezone.utc).isoformat()
        out.append(orjson.dumps({
            "record": {"order_id": f"O-{i:09d}", "amount": round(10.5 + (i * 7919) % 10_000 / 100, 2),
                       "quantity": 1 + i % 5, "currency": ("USD", "EUR", "GBP")[i % 3],
                       "note": ("ok", "gift", "express delivery", None)[i % 4], "created_at": created},
            "quality": {"tier": "gold", "score": 1.0, "failures": [], "passed": 19, "counted": 19},
            "source": {"topic": "atlas.itest.orders.raw", "partition": i % 2, "offset": i // 2,
                       "timestamp": start + i * 0.001},
            "schema": {"subject": "itest.orders", "version": 1}, "ingested_at": ingested,
        }))
    return out


WINDOW = 50_000  # rows per row group: the sink's default ATLAS_SINK_FLUSH_ROWS
TOPIC = "atlas.itest.orders.gold"


def _dataset() -> Any:
    return load_contracts(CONTRACT_DIR)[0].datasets[0]


async def sink_run(values: list[bytes], root: Path) -> float:
    """The sink: every message through SinkRouter.handle, as the agent calls it."""
    catalog = load_catalog(CONTRACT_DIR)
    lake = open_lake(root.as_uri())
    limits = Limits(flush_seconds=3600, flush_rows=WINDOW, rotate_seconds=3600, rotate_rows=10**9, rotate_bytes=10**12)
    committed: dict[tuple[str, int], int] = {}

    async def commit(offsets: dict[tuple[str, int], int]) -> None:
        committed.update(offsets)

    async def send(topic: str, key: bytes | None, value: bytes) -> None:
        raise AssertionError("nothing goes to a dead-letter topic here")

    sink = ParquetSink(lake, limits, root / "staging", lambda d, v: d.schema)
    router = SinkRouter(catalog, sinks=[sink], probe=Probe(["127.0.0.1:1"]), commit=commit, send=send)
    handle = router.handle
    t0 = time.perf_counter()
    for offset, value in enumerate(values):
        await handle(TOPIC, 0, offset, value)
    await router.flush_partition((TOPIC, 0), commit=True)
    await router.tick()  # commits the offsets
    elapsed = time.perf_counter() - t0
    assert committed == {(TOPIC, 0): len(values)}, committed
    rows = sum(pq.read_metadata(f).num_rows for f in root.rglob("*.parquet"))
    assert rows == len(values), rows
    return elapsed


def baseline_batches(values: list[bytes]) -> tuple[Any, list[Any]]:
    features = dataset_features(_dataset())
    schema = lake_schema(features)
    return schema, [rows_to_table([orjson.loads(v) for v in values[i:i + WINDOW]], features, schema)
                    for i in range(0, len(values), WINDOW)]


def baseline_write(schema: Any, batches: list[Any], root: Path) -> float:
    """(a) pyarrow alone: the same rows as ready record batches, written to one file."""
    t0 = time.perf_counter()
    with pq.ParquetWriter(str(root / "baseline.parquet"), schema, compression="snappy") as writer:
        for b in batches:
            writer.write_table(b)
    return time.perf_counter() - t0


def baseline_json(values: list[bytes], root: Path) -> float:
    """(b) pyarrow alone from the same bytes: read_json per window, then the same write."""
    ds = _dataset()
    features = dataset_features(ds)
    schema = lake_schema(features)
    t0 = time.perf_counter()
    with pq.ParquetWriter(str(root / "baseline-json.parquet"), schema, compression="snappy") as writer:
        for i in range(0, len(values), WINDOW):
            win = decode_window(values[i:i + WINDOW], lambda v: features)
            writer.write_table(win.lake_table(range(len(win.positions)), features, schema))
    return time.perf_counter() - t0


def throughput(rows: int) -> float:
    values = tier_messages(rows)
    schema, batches = baseline_batches(values)
    best = {"sink": float("inf"), "write": float("inf"), "json": float("inf")}
    for _ in range(3):
        with tempfile.TemporaryDirectory() as tmp:
            best["write"] = min(best["write"], baseline_write(schema, batches, Path(tmp)))
            best["json"] = min(best["json"], baseline_json(values, Path(tmp)))
            best["sink"] = min(best["sink"], asyncio.run(sink_run(values, Path(tmp) / "lake")))
    ratio = best["write"] / best["sink"]
    print(f"throughput, {rows:,} tier messages of {sum(map(len, values)) // rows} bytes, best of 3:")
    print(f"  (a) pyarrow writing ready record batches   {rows / best['write']:>11,.0f} rows/s")
    print(f"  (b) pyarrow read_json + the same write     {rows / best['json']:>11,.0f} rows/s")
    print(f"      Parquet sink (SinkRouter.handle)       {rows / best['sink']:>11,.0f} rows/s")
    print(f"  ratio sink/(a) {ratio:.2f} (goal >= 0.5); sink/(b) {best['json'] / best['sink']:.2f}; "
          f"JSON decoding alone costs {(best['json'] - best['write']) / best['write']:.1f}x (a)")
    return ratio


def latency(records: int, flush: str, rotate: str) -> None:
    sys.path.insert(0, str(ROOT / "tests"))
    from integration.harness import Worker, worker_env

    from atlas_stream.devbroker import choose_dev_broker, describe_broker, free_port, make_dev_broker

    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        kind, note = choose_dev_broker(None)
        if note:
            print(f"note: {note}", flush=True)
        broker = make_dev_broker(kind, free_port(), data_dir=tmp / "broker", log=open(tmp / "broker.log", "w"))
        broker.start()
        print(f"latency: worker on {describe_broker(kind)}", flush=True)
        meta = tmp / "metadata"
        meta.mkdir()
        (meta / "itest.json").write_bytes((CONTRACT_DIR / "itest.json").read_bytes())
        env = worker_env(broker.bootstrap, tmp, meta, "atlas-bench-sink", ATLAS_DEV_BROKER=kind,
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

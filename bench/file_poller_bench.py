"""Rows/s of a CSV file through the file poller to its raw topic, next to pyarrow alone.

    .venv/bin/python bench/file_poller_bench.py [--rows 1000000] [--broker kafka|noida|tansu]

Generates a CSV of ``--rows`` rows and 10 columns, then in the same run:
- baseline: ``pyarrow.csv.read_csv`` of the file (what reading alone costs);
- poller: ``python -m atlas_stream poll --once`` against a fresh development broker: reader
  choice, conversion to JSON, keyed produce with acks=all, a durable checkpoint per batch. Its
  rate is given twice: from the broker timestamps of the first and last raw message
  (publication), and over the whole command (start-up, settle check and the reader's first pass
  included). The raw topic is then read back to check that every row arrived exactly once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.devbroker import choose_dev_broker, describe_broker, free_port, make_dev_broker  # noqa: E402
from atlas_stream.kafka_admin import partitions_of  # noqa: E402

GROUP, DATASET = "bench_fs", "rows"
RAW = f"atlas.{GROUP}.{DATASET}.raw"
COLUMNS = ["transaction_id", "customer_id", "order_date", "amount", "currency", "quantity", "unit_price",
           "payment_method", "status", "country"]


def write_csv(path: Path, rows: int) -> None:
    rng = random.Random(7)
    currencies, methods = ["USD", "EUR", "GBP"], ["card", "paypal", "bank_transfer", "apple_pay"]
    statuses, countries = ["pending", "paid", "shipped", "delivered"], ["US", "DE", "GB", "FR", "NL"]
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        for i in range(rows):
            qty = rng.randint(1, 9)
            price = rng.randint(100, 99999) / 100
            f.write(f"TX-{i:010d},C{rng.randint(0, 9_999_999):07d},2024-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z,"
                    f"{qty * price:.2f},{rng.choice(currencies)},{qty},{price:.2f},{rng.choice(methods)},"
                    f"{rng.choice(statuses)},{rng.choice(countries)}\n")


def contract(landing: Path, batch_size: int) -> dict[str, object]:
    return {
        "ocs_group_name": GROUP, "source_type": "fs",
        "source_config": {"settle_seconds": 0.2, "batch_size": batch_size},
        "dataset_config": [{
            "source": {"name": DATASET, "path": str(landing / "*.csv"), "format": "csv", "key": "transaction_id",
                       "features": [{"name": c, "dtype": "string"} for c in COLUMNS]},
            "destination": {"path": "bench/rows"},
        }],
    }


async def raw_stats(bootstrap: str) -> tuple[int, int, float]:
    """(messages, distinct atlas-pos headers, seconds between first and last broker timestamp)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        tps = [TopicPartition(RAW, p) for p in sorted(await partitions_of(consumer, RAW))]
        if not tps:
            await consumer._client.force_metadata_update()  # aiokafka has no public refresh
            tps = [TopicPartition(RAW, p) for p in sorted(await partitions_of(consumer, RAW))]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        count, positions, first, last = 0, set(), float("inf"), 0.0
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for messages in (await consumer.getmany(timeout_ms=1000, max_records=50_000)).values():
                for m in messages:
                    count += 1
                    positions.add(dict(m.headers)["atlas-pos"])
                    first, last = min(first, m.timestamp), max(last, m.timestamp)
        return count, len(positions), max(last - first, 1) / 1000
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per published, checkpointed batch")
    parser.add_argument("--broker", choices=("kafka", "noida", "tansu"), default=None,
                        help="default: Apache Kafka when Java is there, else noida-db")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    import pyarrow.csv as pacsv

    tmp = Path(tempfile.mkdtemp(prefix="atlas-file-bench-"))
    landing, metadata = tmp / "landing", tmp / "metadata"
    landing.mkdir()
    metadata.mkdir()
    csv_path = landing / "rows.csv"
    print(f"writing {args.rows:,} rows x {len(COLUMNS)} columns ...", flush=True)
    write_csv(csv_path, args.rows)
    size = csv_path.stat().st_size
    print(f"  {csv_path} ({size / 1e6:.1f} MB)", flush=True)
    (metadata / f"{GROUP}.json").write_text(json.dumps(contract(landing, args.batch_size)))

    started = time.perf_counter()
    table = pacsv.read_csv(csv_path)
    base_seconds = time.perf_counter() - started
    assert table.num_rows == args.rows
    base = args.rows / base_seconds
    print(f"pyarrow.csv.read_csv: {base_seconds:.2f} s, {base:,.0f} rows/s", flush=True)
    del table

    try:
        args.broker, note = choose_dev_broker(args.broker)
        if note:
            print(f"note: {note}", flush=True)
        with make_dev_broker(args.broker, free_port(), data_dir=tmp / "broker") as broker:
            env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
            env.update({"ATLAS_BROKER": broker.url, "ATLAS_DEV_BROKER": args.broker,
                        "ATLAS_METADATA_DIR": str(metadata), "ATLAS_DATA_DIR": str(tmp / "data"),
                        "ATLAS_TOPIC_PARTITIONS": "4", "ATLAS_LOG_LEVEL": "warn", "PYTHONPATH": str(ROOT)})
            print(f"poller against a fresh {describe_broker(args.broker)} broker (batches of {args.batch_size}) ...", flush=True)
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-m", "atlas_stream", "poll", "--ocs", GROUP, "--once"],
                                    cwd=ROOT, env=env, capture_output=True, text=True, timeout=3600)
            wall = time.perf_counter() - started
            if result.returncode != 0:
                raise SystemExit(f"the poller exited with {result.returncode}:\n{result.stderr[-3000:]}")
            count, distinct, publish_seconds = asyncio.run(raw_stats(broker.bootstrap))
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"  {result.stdout.strip()}")
    print(f"  raw topic: {count:,} messages, {distinct:,} distinct positions "
          f"({'exactly once' if count == distinct == args.rows else 'MISMATCH'})")
    publish, whole = args.rows / publish_seconds, args.rows / wall
    print(f"poller: {publish:,.0f} rows/s while publishing ({publish_seconds:.1f} s), "
          f"{whole:,.0f} rows/s for the whole command ({wall:.1f} s)")
    print(f"ratio poller/pyarrow: {publish / base:.3f} publishing, {whole / base:.3f} whole command")


if __name__ == "__main__":
    main()

"""Database poller: rows/s from a PostgreSQL table to the raw topic, next to a plain loop.

    .venv/bin/python bench/db_poller_bench.py [--rows 1000000] [--fetch-size 1000]
        [--mode timestamp+incrementing] [--broker kafka|noida|tansu] [--verify]

Creates a throw-away PostgreSQL database (127.0.0.1:5432, user postgres) holding ``--rows``
orders and starts a fresh development broker (Tansu by default: it keeps data in memory; noida-db
rewrites a JSON snapshot of everything every second and becomes the bottleneck at this volume).
Then, in the same run, on the same broker and table:

1. baseline: a plain SQLAlchemy ``fetchmany`` loop in this process (streaming cursor, same fetch
   size), each row ``orjson``-encoded and sent with an aiokafka producer (acks=all, 512 KiB
   batches like the poller), every send awaited at the end; no ordering, no checkpoint.
2. poller: ``python -m atlas_stream poll --ocs <group> --once`` as a subprocess, timed from
   launch to exit (process start, topic creation and recovery included): ordered incremental
   SELECT, acks=all per batch, a durable checkpoint after every batch.

Prints rows/s of both and the ratio poller / baseline (goal >= 0.7).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.devbroker import choose_dev_broker, describe_broker, free_port, make_dev_broker  # noqa: E402
from atlas_stream.kafka_admin import ensure_topics  # noqa: E402

ADMIN = sa.engine.URL.create("postgresql+psycopg", username="postgres", host="127.0.0.1", port=5432,
                             database="postgres")
GROUP = "dbbench"
PARTITIONS = 4
FEATURES = [
    {"name": "id", "dtype": "bigint", "required": True},
    {"name": "order_number", "dtype": "string"},
    {"name": "customer_id", "dtype": "bigint"},
    {"name": "status", "dtype": "string"},
    {"name": "total_amount", "dtype": "decimal(12,2)"},
    {"name": "currency", "dtype": "string"},
    {"name": "order_date", "dtype": "timestamp"},
    {"name": "updated_at", "dtype": "timestamp"},
]


def fill_table(engine: sa.Engine, rows: int) -> None:
    with engine.begin() as conn:
        conn.exec_driver_sql("""
            CREATE TABLE orders (
                id bigint PRIMARY KEY, order_number text NOT NULL, customer_id bigint NOT NULL,
                status text NOT NULL, total_amount numeric(12,2) NOT NULL, currency text NOT NULL,
                order_date timestamp NOT NULL, updated_at timestamp NOT NULL)""")
        conn.exec_driver_sql("""
            INSERT INTO orders
            SELECT i, 'SO-' || lpad(i::text, 8, '0'), 1 + mod(i, 50000),
                   (ARRAY['pending','paid','shipped','delivered'])[1 + mod(i, 4)],
                   round(mod(i, 100000) / 7.0, 2), 'EUR',
                   timestamp '2025-01-01' + i * interval '1 second',
                   timestamp '2025-01-01' + i * interval '1 second' + interval '5 minutes'
            FROM generate_series(1, %(n)s) AS i""", {"n": rows})
        conn.exec_driver_sql("CREATE INDEX orders_updated ON orders (updated_at, id)")
        conn.exec_driver_sql("ANALYZE orders")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


async def baseline(engine: sa.Engine, bootstrap: str, fetch_size: int) -> tuple[int, float]:
    topic = "bench.baseline"
    await ensure_topics([bootstrap], [topic], PARTITIONS, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_batch_size=512 * 1024,
                                linger_ms=5)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        sent = 0
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=fetch_size).execute(
                sa.text("SELECT * FROM orders"))
            keys = list(result.keys())
            while rows := result.fetchmany(fetch_size):
                for row in rows:
                    value = orjson.dumps(dict(zip(keys, row)), default=_default)
                    futures.append(await producer.send(topic, value, key=str(row[0]).encode()))
                sent += len(rows)
        await asyncio.gather(*futures)
        return sent, time.perf_counter() - started
    finally:
        await producer.stop()


def run_poller(env: dict[str, str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "atlas_stream", "poll", "--ocs", GROUP, "--once"], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"poller failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return elapsed


async def count(bootstrap: str, topic: str, expected: int) -> int:
    """Read the topic through (ListOffsets of Tansu under-reports: count what arrives)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None, fetch_max_bytes=32 * 1024 * 1024)
    await consumer.start()
    seen = 0
    try:
        idle = 0
        while seen < expected and idle < 10:
            batch = await consumer.getmany(timeout_ms=1000, max_records=100_000)
            got = sum(len(v) for v in batch.values())
            seen += got
            idle = 0 if got else idle + 1
        return seen
    finally:
        await consumer.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--fetch-size", type=int, default=1000)
    ap.add_argument("--mode", default="timestamp+incrementing",
                    choices=["bulk", "incrementing", "timestamp", "timestamp+incrementing"])
    ap.add_argument("--broker", default=None, choices=["kafka", "tansu", "noida"],
                    help="default: Apache Kafka when Java is there, else noida-db")
    ap.add_argument("--verify", action="store_true", help="read both topics back and count the records")
    args = ap.parse_args()

    name = f"atlas_bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    engine = sa.create_engine(ADMIN.set(database=name), poolclass=sa.NullPool)
    tmp = Path(tempfile.mkdtemp(prefix="db-bench-"))
    args.broker, note = choose_dev_broker(args.broker)
    if note:
        print(f"note: {note}", flush=True)
    broker = make_dev_broker(args.broker, free_port(), data_dir=tmp / "broker", log=open(tmp / "broker.log", "w"))
    try:
        t0 = time.perf_counter()
        fill_table(engine, args.rows)
        print(f"table: {args.rows} rows in PostgreSQL {name} ({time.perf_counter() - t0:.1f} s to fill)")
        broker.start()
        incremental: dict[str, Any] = {"mode": args.mode}
        if "timestamp" in args.mode:
            incremental["timestamp_column"] = "updated_at"
        if "incrementing" in args.mode:
            incremental["incrementing_column"] = "id"
        contract = {"ocs_group_name": GROUP, "source_type": "rdbms",
                    "source_config": {"db_type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                                      "database": name},
                    "dataset_config": [{"source": {"name": "orders", "path": "public.orders", "key": "id",
                                                   "fetch_size": args.fetch_size, "incremental": incremental,
                                                   "features": FEATURES},
                                        "destination": {"path": "bench/orders"}}]}
        (tmp / "metadata").mkdir()
        (tmp / "metadata" / f"{GROUP}.json").write_text(json.dumps(contract))
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        env.update({"ATLAS_BROKER": broker.url, "ATLAS_DEV_BROKER": args.broker, "ATLAS_DATA_DIR": str(tmp / "data"),
                    "ATLAS_METADATA_DIR": str(tmp / "metadata"), "ATLAS_TOPIC_PARTITIONS": str(PARTITIONS),
                    "ATLAS_LOG_LEVEL": "warn"})
        print(f"broker: fresh {describe_broker(args.broker)} at {broker.bootstrap}; {PARTITIONS} partitions; fetch size "
              f"{args.fetch_size}; poller mode {args.mode}")

        sent, base_s = asyncio.run(baseline(engine, broker.bootstrap, args.fetch_size))
        base_rate = sent / base_s
        print(f"baseline  fetchmany + aiokafka: {sent} rows in {base_s:6.1f} s = {base_rate:9,.0f} rows/s")
        poll_s = run_poller(env)
        poll_rate = args.rows / poll_s
        print(f"poller    poll --once         : {args.rows} rows in {poll_s:6.1f} s = {poll_rate:9,.0f} rows/s")
        print(f"ratio poller / baseline: {poll_rate / base_rate:.2f} (goal >= 0.7)")
        if args.verify:
            for topic in ("bench.baseline", f"atlas.{GROUP}.orders.raw"):
                got = asyncio.run(count(broker.bootstrap, topic, args.rows))
                print(f"verify {topic}: {got} records (expected {args.rows})")
    finally:
        broker.stop()
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


if __name__ == "__main__":
    main()

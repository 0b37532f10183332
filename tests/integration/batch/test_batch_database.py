"""``batch`` on rdbms contracts against real PostgreSQL and MariaDB, the real CLI in a process:
rows per tier equal to the stream scorer's, reruns without duplicates, clear errors for a missing
column and an unreachable server, and ``--to-kafka`` as a backfill into the raw topics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL

from atlas_stream.contracts import load_contract
from atlas_stream.devbroker import DevBroker
from atlas_stream.messages import decode_raw
from atlas_stream.quality import DatasetScorer
from atlas_stream.sources.database.rows import encode_row

from ..databases import CONTRACT, ORDER_COLUMNS, contract_for, create_orders, fresh_database
from ..harness import ROOT, consume

def expected(rows: list[tuple[Any, ...]]) -> dict[int, tuple[str, list[str]]]:
    """order id -> (tier, failures) from the stream's scorer, on the JSON the poller publishes."""
    ds = load_contract(CONTRACT).datasets[0]
    scorer = DatasetScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    now = datetime.now(timezone.utc)
    out = {}
    for row in rows:
        report = scorer.process(decode_raw(encode_row(ORDER_COLUMNS, row)), now).report
        out[row[0]] = (report.tier, list(report.failures))
    return out


def batch_env(tmp_path: Path, url: URL, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_LAKE_URI": str(tmp_path / "lake"), "ATLAS_DATA_DIR": str(tmp_path / "data"),
                "ATLAS_RDBMS_URL": url.render_as_string(hide_password=False), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def batch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atlas_stream", "batch", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def lake_orders(lake: Path) -> dict[int, tuple[str, list[str]]]:
    rows = duckdb.sql(f"SELECT order_id, tier, _failures FROM read_parquet('{lake}/**/*.parquet', "
                      "hive_partitioning=true)").fetchall()
    out = {}
    for order_id, tier, failures in rows:
        assert order_id not in out, f"order {order_id} twice in the lake"
        out[order_id] = (tier, list(failures))
    return out


def test_tables_land_with_the_stream_tiers_and_reruns_replace(db: tuple[str, URL], tmp_path: Path) -> None:
    kind, url = db
    rows = create_orders(url, 12_000)
    env = batch_env(tmp_path, url, ATLAS_METADATA_DIR=str(contract_for(tmp_path, kind)))
    run = batch(env, "--ocs", "ecommerce_transactions_rdbms", "--fetch-size", "5000", "--json")
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    want = expected(rows)
    got = lake_orders(tmp_path / "lake")
    assert got == want
    assert summary["datasets"]["orders"]["tiers"] == dict(Counter(t for t, _ in want.values()))
    assert len(set(t for t, _ in want.values())) >= 3

    again = batch(env, "--ocs", "ecommerce_transactions_rdbms", "--dataset", "orders")
    assert again.returncode == 0, again.stderr
    assert "12,000 rows" in again.stdout
    assert lake_orders(tmp_path / "lake") == want
    offsets = duckdb.sql(f"SELECT min(_source_offset), max(_source_offset), count(DISTINCT _source_topic) FROM "
                         f"read_parquet('{tmp_path}/lake/**/*.parquet')").fetchone()
    assert offsets == (0, 11_999, 1)


def test_classic_invocation_reads_both_sample_tables(tmp_path: Path) -> None:
    with fresh_database("postgresql") as url:
        create_orders(url, 500)
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TABLE customers (id bigint primary key, email text, full_name text, country text, "
                "signup_date date, marketing_opt_in boolean, lifetime_value numeric(14,2), created_at timestamp, "
                "updated_at timestamp)")
            conn.exec_driver_sql(
                "INSERT INTO customers SELECT g, 'c' || g || '@example.com', ' Name ' || g, CASE WHEN g %% 10 = 0 "
                "THEN 'usa' ELSE 'us' END, DATE '2020-01-01', g %% 2 = 0, g * 1.5, (now() at time zone 'utc') - interval '2 hours', "
                "(now() at time zone 'utc') - interval '1 hour' FROM generate_series(1, 300) g")
        engine.dispose()
        env = batch_env(tmp_path, url, ATLAS_METADATA_DIR=str(ROOT / "metadata"))
        run = batch(env, "--ocs", "ecommerce_transactions_rdbms", "--fetch-size", "5000", "--json")
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert summary["datasets"]["orders"]["rows"] == 500
        assert summary["datasets"]["customers"]["tiers"] == {"gold": 270, "silver": 30}
        columns = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path}/lake/ecommerce/customers/**/*.parquet',"
                             " hive_partitioning=true)").fetchall()
        assert [c[0] for c in columns][:7] == ["customer_id", "email", "country", "signup_date", "marketing_opt_in",
                                              "lifetime_value", "updated_at"]


def test_missing_column_and_unreachable_database(db: tuple[str, URL], tmp_path: Path) -> None:
    kind, url = db
    create_orders(url, 10)
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    with engine.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE orders DROP COLUMN currency")
    engine.dispose()
    env = batch_env(tmp_path, url, ATLAS_METADATA_DIR=str(contract_for(tmp_path, kind)))
    run = batch(env, "--ocs", "ecommerce_transactions_rdbms")
    assert run.returncode == 2
    assert "column 'currency' does not exist" in run.stderr and run.stderr.strip().count("\n") == 0
    assert not (tmp_path / "lake").exists() or not list((tmp_path / "lake").rglob("*.parquet"))

    gone = url.set(port=1)
    run = batch(batch_env(tmp_path, gone, ATLAS_METADATA_DIR=str(contract_for(tmp_path, kind))),
                "--ocs", "ecommerce_transactions_rdbms")
    assert run.returncode == 2
    assert "unreachable" in run.stderr and run.stderr.strip().count("\n") == 0


def test_to_kafka_publishes_the_rows_to_the_raw_topic(kafka: DevBroker, tmp_path: Path) -> None:
    with fresh_database("postgresql") as url:
        rows = create_orders(url, 1000)
        env = batch_env(tmp_path, url, ATLAS_METADATA_DIR=str(contract_for(tmp_path, "postgresql")),
                        ATLAS_BROKER=kafka.url, ATLAS_TOPIC_PARTITIONS="2")
        run = batch(env, "--ocs", "ecommerce_transactions_rdbms", "--to-kafka")
        assert run.returncode == 0, run.stderr
        assert "published to the raw topics" in run.stdout
        topic = "atlas.ecommerce_transactions_rdbms.orders.raw"
        messages = asyncio.run(consume(kafka.bootstrap, [topic], lambda m: len(m) >= 1000, timeout=60))
        assert len(messages) == 1000
        published = {orjson.loads(m.value)["id"]: orjson.loads(m.value) for m in messages}
        for row in rows[:50]:
            assert published[row[0]] == decode_raw(encode_row(ORDER_COLUMNS, row))
        assert {m.key for m in messages[:5]} <= {str(r[0]).encode() for r in rows}
        assert not (tmp_path / "lake").exists()

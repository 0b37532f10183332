"""Database poller end to end: real SQLite, PostgreSQL and MariaDB, a real broker, the real CLI.

PostgreSQL (127.0.0.1:5432, user postgres, trust) and MariaDB (127.0.0.1:3306, root, no
password) must be running; every test creates its own database and drops it afterwards.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, TopicPartition

from atlas_stream.kafka_admin import partitions_of
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL

from atlas_stream.devbroker import DevBroker, free_port

from ..databases import fresh_database
from ..harness import ROOT, consume, poller_env

TS = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
BASE = datetime(2025, 6, 1, 12, 0, 0)
MODES = {"inc": "incrementing", "ts": "timestamp", "tsinc": "timestamp+incrementing", "bulk": "bulk"}


@dataclass
class Db:
    kind: str
    engine: sa.Engine
    name: str
    #: source_config of the contract (classic keys or an SQLAlchemy URL behind a placeholder).
    config: dict[str, Any]
    env: dict[str, str]


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    yield from _database(request.param, tmp_path)


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Db]:
    yield from _database("postgresql", tmp_path)


def _database(kind: str, tmp_path: Path) -> Iterator[Db]:
    if kind == "sqlite":
        name = f"atlas_it_{uuid.uuid4().hex[:12]}"
        path = tmp_path / f"{name}.db"
        url = URL.create("sqlite", database=str(path))
        engine = sa.create_engine(url)
        yield Db(kind, engine, name, {"url": "${DBIT_URL}"}, {"DBIT_URL": url.render_as_string()})
        engine.dispose()
        return
    with fresh_database(kind) as url:
        name = str(url.database)
        if kind == "postgresql":
            config: dict[str, Any] = {"db_type": "postgres", "host": "127.0.0.1", "port": 5432, "user": "postgres",
                                      "database": name, "connect_timeout": "PT5S"}
            env: dict[str, str] = {}
        else:
            config = {"url": "${DBIT_URL}"}
            env = {"DBIT_URL": url.render_as_string()}
        engine = sa.create_engine(url, poolclass=sa.NullPool)
        try:
            yield Db(kind, engine, name, config, env)
        finally:
            engine.dispose()


def orders_table(engine: sa.Engine) -> sa.Table:
    md = sa.MetaData()
    table = sa.Table(
        "orders", md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("customer", sa.String(40)),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("payload", sa.LargeBinary),
        sa.Column("ordered_on", sa.Date),
        sa.Column("updated_at", TS, nullable=False, index=True),
    )
    md.create_all(engine)
    return table


def order(i: int, ts: datetime) -> dict[str, Any]:
    return {"id": i, "customer": f"c{i % 7}", "amount": Decimal(i) / 4, "payload": bytes([i % 256, 0, 255]),
            "ordered_on": BASE.date(), "updated_at": ts}


def write_contract(directory: Path, group: str, db: Db, datasets: dict[str, dict[str, Any]],
                   poll_interval: str = "PT1S") -> None:
    features = [{"name": "id", "dtype": "bigint", "required": True}, {"name": "customer", "dtype": "string"},
                {"name": "amount", "dtype": "decimal(12,2)"}, {"name": "payload", "dtype": "string"},
                {"name": "ordered_on", "dtype": "date"}, {"name": "updated_at", "dtype": "timestamp"}]
    entries = []
    for name, source in datasets.items():
        entries.append({
            "source": {"name": name, "path": "orders", "key": "order_id", "features": features, **source},
            "transformations": [{"type": "rename", "from": "id", "to": "order_id"}],
            "destination": {"path": f"{group}/{name}"},
        })
    doc = {"ocs_group_name": group, "source_type": "rdbms",
           "source_config": {**db.config, "poll_interval": poll_interval}, "dataset_config": entries}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{group}.json").write_text(json.dumps(doc, indent=1))


def incremental(mode: str, delay: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"mode": mode}
    if mode in ("timestamp", "timestamp+incrementing"):
        spec["timestamp_column"] = "updated_at"
    if mode in ("incrementing", "timestamp+incrementing"):
        spec["incrementing_column"] = "id"
    if delay:
        spec["timestamp_delay"] = delay
    return spec


def _env(broker: DevBroker, tmp_path: Path, db: Db) -> dict[str, str]:
    return poller_env(broker.url, tmp_path, ATLAS_METADATA_DIR=str(tmp_path / "metadata"),
                      ATLAS_DEV_BROKER=broker.kind, **db.env)


def poll_once(env: dict[str, str], group: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atlas_stream", "poll", "--ocs", group, "--once"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


async def _sizes(bootstrap: str, topics: list[str]) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in sorted(await partitions_of(consumer, t))]
        ends = await consumer.end_offsets(tps) if tps else {}
        return {t: sum(o for tp, o in ends.items() if tp.topic == t) for t in topics}
    finally:
        await asyncio.sleep(0.01)  # aiokafka: stop() right after start() can raise CancelledError
        await consumer.stop()


def topic_size(bootstrap: str, topic: str) -> int:
    return asyncio.run(_sizes(bootstrap, [topic]))[topic]


def read_topic(bootstrap: str, topic: str) -> list[Any]:
    """Every message of ``topic`` (its size is taken first: nothing is left unread)."""
    size = topic_size(bootstrap, topic)
    return asyncio.run(consume(bootstrap, [topic], lambda m: len(m) >= size, timeout=60))


def versions(messages: list[Any]) -> list[tuple[int, str]]:
    out = []
    for m in messages:
        value = json.loads(m.value)
        out.append((value["id"], value["updated_at"]))
    return out


def iso(ts: datetime) -> str:
    return ts.isoformat()


# ---------------------------------------------------------------------------------- every mode


def test_new_and_updated_rows_each_mode_exactly_once(database: Db, kafka: DevBroker, tmp_path: Path) -> None:
    db, group = database, f"dbit_{database.kind}"
    table = orders_table(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [order(i, BASE + timedelta(seconds=i // 2)) for i in range(1, 21)])
    datasets = {name: {"incremental": incremental(mode), "fetch_size": 7} for name, mode in MODES.items()}
    if db.kind == "postgresql":
        datasets["tsinc"]["path"] = "public.orders"  # schema.table
    datasets["query"] = {"incremental": incremental("timestamp+incrementing"), "fetch_size": 4,
                         "query": "SELECT id, customer, amount, payload, ordered_on, updated_at FROM orders "
                                  "WHERE customer <> 'c0'"}
    write_contract(tmp_path / "metadata", group, db, datasets)
    env = _env(kafka, tmp_path, db)

    first = poll_once(env, group)
    assert first.returncode == 0, first.stderr[-3000:]
    topics = {name: f"atlas.{group}.{name}.raw" for name in MODES}
    for name in MODES:
        got = versions(read_topic(kafka.bootstrap, topics[name]))
        assert sorted(got) == [(i, iso(BASE + timedelta(seconds=i // 2))) for i in range(1, 21)], name

    sample = json.loads(read_topic(kafka.bootstrap, topics["inc"])[0].value)
    i = sample["id"]
    assert sample == {"id": i, "customer": f"c{i % 7}", "amount": str((Decimal(i) / 4).quantize(Decimal("0.01"))),
                      "payload": base64.b64encode(bytes([i % 256, 0, 255])).decode(),
                      "ordered_on": BASE.date().isoformat(), "updated_at": iso(BASE + timedelta(seconds=i // 2))}
    keyed = read_topic(kafka.bootstrap, topics["tsinc"])
    assert all(m.key == str(json.loads(m.value)["id"]).encode() for m in keyed)  # key 'order_id' -> column id

    later = BASE + timedelta(hours=1)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [order(i, later + timedelta(seconds=i)) for i in range(21, 26)])
        for i in (3, 8, 15):
            conn.execute(table.update().where(table.c.id == i).values(customer="changed",
                                                                      updated_at=later + timedelta(minutes=i)))
    second = poll_once(env, group)
    assert second.returncode == 0, second.stderr[-3000:]

    original = {(i, iso(BASE + timedelta(seconds=i // 2))) for i in range(1, 21)}
    new = {(i, iso(later + timedelta(seconds=i))) for i in range(21, 26)}
    updated = {(i, iso(later + timedelta(minutes=i))) for i in (3, 8, 15)}
    for name in ("ts", "tsinc"):
        got = versions(read_topic(kafka.bootstrap, topics[name]))
        assert len(got) == len(set(got)), f"{name}: duplicates"
        assert set(got) == original | new | updated, name
    got = versions(read_topic(kafka.bootstrap, topics["inc"]))
    assert sorted(got) == sorted(original | new), "incrementing: new rows once, updates not seen"
    got = versions(read_topic(kafka.bootstrap, f"atlas.{group}.query.raw"))
    assert sorted(got) == sorted(v for v in original | new | updated if v in updated or v[0] % 7), "query"
    bulk = read_topic(kafka.bootstrap, topics["bulk"])
    passes: dict[bytes, list[int]] = {}
    for m in bulk:
        pos = dict(m.headers)["atlas-pos"]
        passes.setdefault(pos.split(b":")[0], []).append(json.loads(m.value)["id"])
    assert sorted(passes) == [b"bulk0", b"bulk1"]
    assert sorted(passes[b"bulk0"]) == list(range(1, 21))
    assert sorted(passes[b"bulk1"]) == list(range(1, 26))  # the whole table again, once


# ---------------------------------------------------------------------------------- kill -9


def test_kill_9_three_times_loses_and_duplicates_nothing(postgres: Db, kafka: DevBroker, tmp_path: Path) -> None:
    db, group = postgres, "dbit_kill"
    table = orders_table(db.engine)
    written: set[tuple[int, str]] = set()

    def insert(ids: range, ts: datetime) -> None:
        rows = [order(i, ts + timedelta(milliseconds=i)) for i in ids]
        with db.engine.begin() as conn:
            conn.execute(table.insert(), rows)
        written.update((r["id"], iso(r["updated_at"])) for r in rows)

    insert(range(1, 20_001), BASE)
    write_contract(tmp_path / "metadata", group, db,
                   {"orders": {"incremental": incremental("timestamp+incrementing"), "fetch_size": 500}},
                   poll_interval="PT0.5S")
    env = _env(kafka, tmp_path, db)
    topic = f"atlas.{group}.orders.raw"
    log = open(tmp_path / "poller.log", "ab")

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "atlas_stream", "poll", "--ocs", group], cwd=ROOT, env=env,
                                stdout=log, stderr=subprocess.STDOUT)

    rng = random.Random()
    next_id = 20_001
    for round_ in range(3):
        proc = start()
        before = topic_size(kafka.bootstrap, topic) if round_ else 0
        target = before + rng.randint(1, 5_000)  # a random moment of the stream
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and topic_size(kafka.bootstrap, topic) < target:
            assert proc.poll() is None, (tmp_path / "poller.log").read_text()[-3000:]
            time.sleep(rng.uniform(0.01, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        log.write(f"test: SIGKILL with {topic_size(kafka.bootstrap, topic)} records in the topic\n".encode())
        log.flush()
        # While it is down: new rows, and updates of rows already published or not. Their
        # timestamps are newer than every earlier write: a timestamp cursor (Kafka Connect's
        # semantics) never goes back for a row written with an older timestamp than it has passed.
        insert(range(next_id, next_id + 500), BASE + timedelta(hours=10 + 2 * round_))
        next_id += 500
        with db.engine.begin() as conn:
            for i in rng.sample(range(1, next_id), 100):
                ts = BASE + timedelta(hours=11 + 2 * round_, milliseconds=i)
                conn.execute(table.update().where(table.c.id == i).values(updated_at=ts))
                written.add((i, iso(ts)))
    with db.engine.connect() as conn:
        final = {(r.id, iso(r.updated_at)) for r in conn.execute(sa.select(table.c.id, table.c.updated_at))}

    proc = start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            got = versions(read_topic(kafka.bootstrap, topic))
            if final <= set(got):
                break
            time.sleep(1)
        time.sleep(2)  # anything published twice would land now
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        log.close()
    got = versions(read_topic(kafka.bootstrap, topic))
    missing = final - set(got)
    twice = len(got) - len(set(got))
    assert not missing, f"{len(missing)} row versions missing, e.g. {sorted(missing)[:5]}"
    assert twice == 0, f"{twice} duplicates"
    assert set(got) <= written


# ---------------------------------------------------------------------------------- delay


def test_timestamp_delay_holds_rows_back_until_old_enough(postgres: Db, kafka: DevBroker, tmp_path: Path) -> None:
    db, group = postgres, "dbit_delay"
    table = orders_table(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [order(1, BASE)])
        conn.execute(table.insert().values(**{**order(2, BASE), "updated_at": sa.func.localtimestamp()}))
    write_contract(tmp_path / "metadata", group, db,
                   {"orders": {"incremental": incremental("timestamp+incrementing", delay="PT8S")}})
    env = _env(kafka, tmp_path, db)
    inserted = time.monotonic()
    topic = f"atlas.{group}.orders.raw"

    run = poll_once(env, group)
    assert run.returncode == 0, run.stderr[-3000:]
    assert time.monotonic() - inserted < 7, "the first pass came too late to test the delay"
    assert [v[0] for v in versions(read_topic(kafka.bootstrap, topic))] == [1]
    time.sleep(max(0.0, inserted + 8.5 - time.monotonic()))
    run = poll_once(env, group)
    assert run.returncode == 0, run.stderr[-3000:]
    assert sorted(v[0] for v in versions(read_topic(kafka.bootstrap, topic))) == [1, 2]


# ---------------------------------------------------------------------------------- names


@pytest.mark.parametrize("field, name", [
    ("path", "orders; DROP TABLE orders"),
    ("incrementing_column", 'id" OR 1=1 --'),
    ("feature", "customer`; DELETE FROM orders; --"),
])
def test_injection_names_are_refused_and_nothing_runs(postgres: Db, kafka: DevBroker, tmp_path: Path,
                                                      field: str, name: str) -> None:
    db, group = postgres, "dbit_names"
    table = orders_table(db.engine)
    with db.engine.begin() as conn:
        conn.execute(table.insert(), [order(i, BASE) for i in range(1, 4)])
    source: dict[str, Any] = {"incremental": incremental("incrementing")}
    if field == "path":
        source["path"] = name
    elif field == "incrementing_column":
        source["incremental"]["incrementing_column"] = name
    write_contract(tmp_path / "metadata", group, db, {"orders": source})
    if field == "feature":
        doc = json.loads((tmp_path / "metadata" / f"{group}.json").read_text())
        doc["dataset_config"][0]["source"]["features"].append({"name": name, "dtype": "string"})
        (tmp_path / "metadata" / f"{group}.json").write_text(json.dumps(doc))
    run = poll_once(_env(kafka, tmp_path, db), group)
    assert run.returncode != 0
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and repr(name) in last and "does not exist" in last, run.stderr[-3000:]
    with db.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one() == 3
    assert topic_size(kafka.bootstrap, f"atlas.{group}.orders.raw") == 0


# ---------------------------------------------------------------------------------- unreachable


def test_unreachable_database_is_one_clear_line_retried_with_backoff(kafka: DevBroker, tmp_path: Path) -> None:
    group = "dbit_down"
    port = free_port()  # nothing listens there
    db = Db("postgresql", sa.create_engine("sqlite://"), "none",
            {"db_type": "postgresql", "host": "127.0.0.1", "port": port, "user": "atlas",
             "password": "${DBIT_PASSWORD}", "database": "shop"}, {"DBIT_PASSWORD": "s3cret-Pw0rd"})
    write_contract(tmp_path / "metadata", group, db, {"orders": {"incremental": incremental("incrementing")}})
    proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "poll", "--ocs", group], cwd=ROOT,
                            env=_env(kafka, tmp_path, db), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    text = out.decode()
    assert proc.returncode == 0, text[-3000:]
    assert "s3cret-Pw0rd" not in text
    lines = [ln for ln in text.splitlines() if "unreachable" in ln]
    assert len(lines) >= 2, text[-3000:]  # retried, not a crash
    assert f"127.0.0.1:{port}" in lines[0] and "check that the server runs" in lines[0] and "retrying in" in lines[0]
    status = asyncio.run(consume(kafka.bootstrap, ["atlas.sources.status"], lambda m: len(m) >= 1, timeout=20))
    docs = [json.loads(m.value) for m in status]
    errors = [d for d in docs if d["source"] == f"db:{group}.orders" and d["state"] == "error"]
    assert errors and "unreachable" in errors[0]["last_error"]
    assert all("s3cret-Pw0rd" not in json.dumps(d) for d in docs)

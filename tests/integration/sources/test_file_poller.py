"""The file poller against a real broker: every row exactly once, dead letters, archive, kill -9."""

from __future__ import annotations

import asyncio
import codecs
import csv
import datetime as dt
import io
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from atlas_stream.kafka_admin import partitions_of

from atlas_stream.contracts import load_contracts
from atlas_stream.devbroker import DevBroker
from atlas_stream.settings import Settings
from atlas_stream.sources import checkpoint as checkpoint_module
from atlas_stream.sources.publisher import Publisher
from atlas_stream.sources.runner import SourceRunner
from atlas_stream.sources.files import build_file_sources

from ..harness import ROOT, poller_env

HERE = Path(__file__).resolve().parents[1]
GROUP = "itest_fs"
RAW = {name: f"atlas.{GROUP}.{name}.raw" for name in ("orders", "events", "metrics")}
DLQ = f"atlas.{GROUP}.dlq"
STATUS = "atlas.sources.status"


# ---------------------------------------------------------------------- helpers

def _env(broker: DevBroker, tmp: Path, metadata: Path = HERE / "contracts_fs") -> dict[str, str]:
    return poller_env(broker.url, tmp, ATLAS_METADATA_DIR=str(metadata), ATLAS_LANDING_DIR=str(tmp / "landing"))


def _poll(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "atlas_stream", "poll", "--ocs", GROUP, *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


async def _read_all(bootstrap: str, topics: list[str]) -> list[Any]:
    """Every message of ``topics`` from the beginning to the current end (no consumer group)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                max_partition_fetch_bytes=8 << 20, fetch_max_bytes=32 << 20)
    await consumer.start()
    try:
        tps = []
        for topic in topics:
            tps += [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
        if not tps:
            return []
        ends = await consumer.end_offsets(tps)
        todo = [tp for tp in tps if ends[tp] > 0]
        if not todo:
            return []
        consumer.assign(todo)
        await consumer.seek_to_beginning(*todo)
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while any([await consumer.position(tp) < ends[tp] for tp in todo]):
            assert time.monotonic() < deadline, "reading the topics took too long"
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(messages)
        return out
    finally:
        await consumer.stop()


def _read(broker: DevBroker, *topics: str) -> list[Any]:
    return asyncio.run(_read_all(broker.bootstrap, list(topics)))


def _pos(message: Any) -> str:
    return dict(message.headers)["atlas-pos"].decode()


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


# ---------------------------------------------------------------------- the whole contract, once

def _land(landing: Path) -> dict[str, Any]:
    """Files for the three datasets; returns what must come out."""
    orders, events, metrics = landing / "orders", landing / "events", landing / "metrics" / "eu"
    for d in (orders, events, metrics):
        d.mkdir(parents=True)
    # A clean CSV (fast path, several batches of 500) ...
    clean = [["order_id", "amount", "note"]] + [[f"C-{i}", f"{i}.25", f"note {i}"] for i in range(1200)]
    (orders / "clean.csv").write_text(_csv_text(clean))
    # ... and one with every kind of trouble (line-tracking path).
    messy = b"".join([
        codecs.BOM_UTF8 + b"order_id,amount,note\n",                   # 1  header after a BOM
        b"M-1,1.5,plain\n",                                            # 2
        b'M-2,2.5,"two\nlines, with a comma"\n',                       # 3-4 quoted newline
        b"M-3,3.5\n",                                                  # 5  too few fields
        b'M-4,4.5,"never closed\n',                                    # 6  broken quoting
        b"M-5,5.5,caf\xe9 latin-1\n",                                  # 7  not UTF-8
        b"M-6,6.5," + b"x" * (1 << 20) + b"\n",                        # 8  a 1 MB line
        b"M-7,7.5,a,b\n",                                              # 9  too many fields
        b"M-8,,\n",                                                    # 10 empty fields stay ""
        b'M-9,9.5,"quoted ""inner"" quotes"\n',                        # 11
    ])
    (orders / "messy.csv").write_bytes(messy)
    (orders / "ignored.csv.part").write_text("order_id\nX-1\n")  # an upload in progress
    lines = [json.dumps({"event_id": f"E-{i}", "kind": "click", "value": i}) for i in range(30)]
    lines[3] = "{not json"
    lines[7] = "[1, 2]"
    lines[11] = ""
    (events / "e.jsonl").write_bytes(codecs.BOM_UTF8 + ("\n".join(lines) + "\n").encode())
    table = pa.table({"host": [f"h{i % 3}" for i in range(250)], "seq": list(range(250)),
                      "cpu": [i / 250 for i in range(250)],
                      "at": [dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(minutes=i) for i in range(250)]})
    pq.write_table(table, metrics / "m.parquet", row_group_size=100)
    return {
        "orders": {f"C-{i}" for i in range(1200)} | {"M-1", "M-2", "M-8", "M-9"},
        "events": {f"E-{i}" for i in range(30)} - {"E-3", "E-7", "E-11"},
        "metrics": 250,
        "dlq": {("messy.csv", 5), ("messy.csv", 6), ("messy.csv", 7), ("messy.csv", 8), ("messy.csv", 9),
                ("e.jsonl", 4), ("e.jsonl", 8)},
    }


def test_poll_once_publishes_each_row_once_with_dead_letters_and_archive(kafka: DevBroker, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    expected = _land(landing)
    env = _env(kafka, tmp_path)
    result = _poll(env, "--once")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "clean.csv: 1200 rows published, 0 to the DLQ" in result.stdout
    assert "messy.csv: 4 rows published, 5 to the DLQ" in result.stdout

    orders = _read(kafka, RAW["orders"])
    values = {orjson.loads(m.value)["order_id"]: orjson.loads(m.value) for m in orders}
    assert set(values) == expected["orders"] and len(orders) == len(expected["orders"])
    assert values["M-2"]["note"] == "two\nlines, with a comma"
    assert values["M-8"] == {"order_id": "M-8", "amount": "", "note": ""}
    assert values["M-9"]["note"] == 'quoted "inner" quotes'
    assert values["C-7"] == {"order_id": "C-7", "amount": "7.25", "note": "note 7"}  # text, as in the file
    assert all(m.key == orjson.loads(m.value)["order_id"].encode() for m in orders)
    assert {dict(m.headers)["atlas-source"] for m in orders} == {b"file:itest_fs.orders"}
    assert len({_pos(m) for m in orders}) == len(orders)

    events = _read(kafka, RAW["events"])
    assert sorted(orjson.loads(m.value)["event_id"] for m in events) == sorted(expected["events"])
    metrics = _read(kafka, RAW["metrics"])
    assert len(metrics) == 250 and len({_pos(m) for m in metrics}) == 250
    first = next(orjson.loads(m.value) for m in metrics if orjson.loads(m.value)["seq"] == 0)
    assert first["at"].startswith("2024-01-01T00:00:00") and first["host"] == "h0"
    assert {m.key for m in metrics if orjson.loads(m.value)["seq"] == 4} == {b'["h1",4]'}

    dead = [orjson.loads(m.value) for m in _read(kafka, DLQ)]
    where = {(Path(d["source"]["file"]).name, d["source"]["line"]) for d in dead}
    assert where == expected["dlq"] and len(dead) == len(expected["dlq"])
    for d in dead:
        assert d["stage"] == "source" and f"line {d['source']['line']}" in d["error"]
        assert Path(d["source"]["file"]).name in d["error"]
    by_line = {d["source"]["line"]: d for d in dead if d["dataset"] == "orders"}
    assert "expected 3 fields, got 2" in by_line[5]["error"] and "broken quoting" in by_line[6]["error"]
    assert "not valid utf-8" in by_line[7]["error"] and "byte 0xe9" in by_line[7]["error"]
    assert f"{(1 << 20) + 9} bytes, longer than" in by_line[8]["error"] and by_line[8]["truncated"] is True

    # Archived (CSV, Parquet) or recorded as done (JSON lines, archive_dir: null).
    assert sorted(p.name for p in (landing / "orders").iterdir()) == ["archive", "ignored.csv.part"]
    assert sorted(p.name for p in (landing / "orders" / "archive").iterdir()) == ["clean.csv", "messy.csv"]
    assert (landing / "metrics" / "archive" / "eu" / "m.parquet").exists()
    assert (landing / "events" / "e.jsonl").exists()

    statuses = [orjson.loads(m.value) for m in _read(kafka, STATUS)]
    last = {s["source"]: s for s in statuses}
    assert last["file:itest_fs.orders"]["state"] == "stopped" and last["file:itest_fs.orders"]["rows"] == 1204
    assert last["file:itest_fs.events"]["kind"] == "file" and last["file:itest_fs.events"]["rows"] == 27

    # A second run finds nothing new: the JSON lines file is done, the rest was archived.
    again = _poll(env, "--once")
    assert again.returncode == 0, again.stderr[-3000:]
    assert len(_read(kafka, RAW["orders"], RAW["events"], RAW["metrics"])) == len(orders) + len(events) + 250


def test_a_running_poller_picks_up_new_files_and_stops_cleanly(kafka: DevBroker, tmp_path: Path) -> None:
    orders = tmp_path / "landing" / "orders"
    orders.mkdir(parents=True)
    (orders / "1.csv").write_text("order_id,amount,note\nA-1,1,x\nA-2,2,y\n")
    env = _env(kafka, tmp_path)
    log_path = tmp_path / "poller.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "poll", "--ocs", GROUP, "--dataset", "orders",
                                 "--interval", "0.2"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            for name in ("1.csv", "2.csv"):
                if name == "2.csv":
                    with open(orders / name, "w") as f:  # written in two steps: read only once settled
                        f.write("order_id,amount,note\nB-1,1,x\n")
                        f.flush()
                        time.sleep(0.15)
                        f.write("B-2,2,y\n")
                deadline = time.monotonic() + 30
                while not (orders / "archive" / name).exists():
                    assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-3000:]
                    time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(30)
    assert code == 0, log_path.read_text()[-3000:]
    ids = sorted(orjson.loads(m.value)["order_id"] for m in _read(kafka, RAW["orders"]))
    assert ids == ["A-1", "A-2", "B-1", "B-2"]
    statuses = [orjson.loads(m.value) for m in _read(kafka, STATUS) if m.key == b"file:itest_fs.orders"]
    assert statuses[-1]["state"] == "stopped" and statuses[-1]["rows"] == 4
    assert {"running", "idle"} <= {s["state"] for s in statuses}
    assert "1.csv: 2 rows published" in log_path.read_text()


# ---------------------------------------------------------------------- crash windows, deterministically

async def _run_in_process(settings: Settings) -> None:
    contract = next(c for c in load_contracts(settings.metadata_dir) if c.group == GROUP)
    (source, _), = build_file_sources(contract, settings, "orders", once=True)
    publisher = Publisher(settings)
    await publisher.start(source.topics())
    try:
        runner = SourceRunner(source, publisher, settings.data_dir / "checkpoints", asyncio.Event(), once=True,
                              interval=1)
        await runner.run()
    finally:
        await publisher.stop()


def test_restart_after_publish_before_checkpoint_and_after_archive_repeats_nothing(
        kafka: DevBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    landing = tmp_path / "landing" / "orders"
    landing.mkdir(parents=True)
    rows = [["order_id", "amount", "note"]] + [[f"R-{i}", str(i), "n"] for i in range(1700)]
    (landing / "r.csv").write_text(_csv_text(rows))
    env = _env(kafka, tmp_path)
    monkeypatch.setenv("ATLAS_LANDING_DIR", env["ATLAS_LANDING_DIR"])
    settings = Settings.from_env(env)
    monkeypatch.chdir(tmp_path)

    saved: list[bytes] = []  # every checkpoint version, in order
    real_save = checkpoint_module.SourceState.save

    def spy(self: checkpoint_module.SourceState) -> None:
        real_save(self)
        saved.append(self.path.read_bytes())

    monkeypatch.setattr(checkpoint_module.SourceState, "save", spy)
    asyncio.run(_run_in_process(settings))
    assert len(_read(kafka, RAW["orders"])) == 1700
    versions = [json.loads(v) for v in saved]
    ckpt = settings.data_dir / "checkpoints" / "file:itest_fs.orders.json"

    # 1. The broker acknowledged batches 2 to 4 but the poller died before checkpointing them:
    #    put back the checkpoint written after batch 1 and the file where it was.
    after_first = next(i for i, v in enumerate(versions)
                       if v["position"] and any(e["next"] == 500 for e in v["position"]["files"].values()))
    ckpt.write_bytes(saved[after_first])
    shutil.move(landing / "archive" / "r.csv", landing / "r.csv")
    asyncio.run(_run_in_process(settings))
    orders = _read(kafka, RAW["orders"])
    assert len(orders) == 1700 and len({_pos(m) for m in orders}) == 1700
    assert (landing / "archive" / "r.csv").exists() and not (landing / "r.csv").exists()

    # 2. The file was moved to the archive, but the poller died before recording it.
    complete = max(i for i, v in enumerate(json.loads(s) for s in saved)
                   if v["position"] and any(e["complete"] for e in v["position"]["files"].values()))
    ckpt.write_bytes(saved[complete])
    asyncio.run(_run_in_process(settings))
    assert len(_read(kafka, RAW["orders"])) == 1700
    assert json.loads(ckpt.read_bytes())["position"]["files"] == {}


# ---------------------------------------------------------------------- kill -9

def _checkpointed_rows(ckpt: Path) -> int:
    try:
        return int(json.loads(ckpt.read_bytes())["counters"].get("rows", 0))
    except (FileNotFoundError, ValueError, KeyError):  # not written yet, or mid-rename
        return 0


def test_kill_9_at_random_moments_loses_and_repeats_nothing(kafka: DevBroker, tmp_path: Path) -> None:
    landing = tmp_path / "landing" / "orders"
    landing.mkdir(parents=True)
    n = 20_000
    rows = [["order_id", "amount", "note"]] + [[f"K-{i}", f"{i}.5", f"row {i}"] for i in range(n)]
    (landing / "big.csv").write_text(_csv_text(rows))
    # Small batches: more checkpoints, and a file that takes a few seconds, so kills land inside.
    metadata = tmp_path / "metadata"
    metadata.mkdir()
    contract = json.loads((HERE / "contracts_fs" / "itest_fs.json").read_text())
    contract["dataset_config"][0]["source"]["batch_size"] = 100
    (metadata / "itest_fs.json").write_text(json.dumps(contract))
    env = _env(kafka, tmp_path, metadata)
    ckpt = tmp_path / "data" / "checkpoints" / "file:itest_fs.orders.json"
    archived = landing / "archive" / "big.csv"
    rng = random.Random()
    log_path = tmp_path / "poller.log"
    cmd = [sys.executable, "-m", "atlas_stream", "poll", "--ocs", GROUP, "--dataset", "orders", "--interval", "0.3"]
    kills: list[tuple[float, int]] = []
    with open(log_path, "ab") as log:
        for _ in range(3):
            done_before = _checkpointed_rows(ckpt)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            # Kill once this run has checkpointed progress of its own, a random moment later, so
            # that every kill lands while the file is being published (not before, not after).
            deadline = time.monotonic() + 60
            while _checkpointed_rows(ckpt) <= done_before and not archived.exists():
                assert time.monotonic() < deadline and proc.poll() is None, log_path.read_text()[-3000:]
                time.sleep(0.005)
            delay = rng.uniform(0.0, 0.3)
            time.sleep(delay)
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            kills.append((round(delay, 2), _checkpointed_rows(ckpt)))
        # Then let it finish what is left.
        final = subprocess.run([*cmd, "--once"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=120)
        assert final.returncode == 0, log_path.read_text()[-3000:]
    assert archived.exists() and json.loads(ckpt.read_bytes())["position"]["files"] == {}
    messages = _read(kafka, RAW["orders"])
    ids = Counter(orjson.loads(m.value)["order_id"] for m in messages)
    missing = {f"K-{i}" for i in range(n)} - set(ids)
    repeated = {k: c for k, c in ids.items() if c > 1}
    assert not missing and not repeated, (len(missing), len(repeated), kills)
    assert len(messages) == n and len({_pos(m) for m in messages}) == n
    assert any(0 < rows < n for _, rows in kills), kills  # at least one kill landed inside the file

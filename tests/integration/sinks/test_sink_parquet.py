"""The Parquet sink against a real broker and worker: layout, columns, counts, exactly once."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from atlas_stream.kafka_admin import ensure_topics
from atlas_stream.lake import parse_committed_name

from ..harness import produce, produce_fast
from ..itest_orders import RAW, TOPICS
from ..sinkcheck import TIERS, committed_files, duplicates, lake_rows, mixed, tier_positions, wait_for

# Short windows, and a crashed worker's partitions handed on after 8 s (the default is 45 s).
FAST = {"ATLAS_SINK_FLUSH_SECONDS": "1", "ATLAS_SINK_ROTATE_SECONDS": "2", "ATLAS_BROKER_SESSION_TIMEOUT": "8"}


def test_lake_layout_columns_and_counts(kafka, metadata_dir: Path, start_worker, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    worker = start_worker(kafka, metadata_dir, ATLAS_LAKE_URI=str(lake), **FAST)
    asyncio.run(produce(kafka.bootstrap, RAW, [mixed(i) for i in range(400)]))

    rows = wait_for("400 rows in committed files", lambda: len(lake_rows(lake)) >= 400 and lake_rows(lake), 120,
                    log=worker.log)
    assert len(rows) == 400 and not duplicates(rows)
    expected = tier_positions(kafka.bootstrap, TOPICS)
    for tier in TIERS:
        got = {(r[1], r[2], r[3]) for r in rows if r[0] == tier}
        assert got == expected[tier], tier
        assert got, f"no {tier} records: the test data should reach every tier"

    files = committed_files(lake)
    for f in files:
        rel = f.relative_to(lake).parts
        assert rel[:2] == ("itest", "orders") and rel[2].startswith("tier=") and rel[3].startswith("ingest_date=")
        name = parse_committed_name(f.name)
        assert name is not None and name.topic == f"atlas.itest.orders.{rel[2][5:]}"
        assert f.name.split("+")[2].isdigit() and len(f.name.split("+")[2]) == 19  # zero-padded
    schema = pq.read_schema(files[0])
    assert schema.field("amount").type == pa.float64() and schema.field("quantity").type == pa.int64()
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("_failures").type == pa.list_(pa.string())
    assert [n for n in schema.names if n.startswith("_")] == [
        "_tier", "_score", "_failures", "_ingested_at", "_source_topic", "_source_partition", "_source_offset"]

    # pyarrow reads it as a hive-partitioned dataset too.
    ds = pads.dataset(str(lake / "itest" / "orders"), format="parquet", partitioning="hive")
    table = ds.to_table(columns=["tier", "_tier", "_score", "order_id"])
    assert table.num_rows == 400
    assert table.column("tier").to_pylist() == table.column("_tier").to_pylist()


def test_a_new_consumer_group_starts_where_the_lake_ends(kafka, metadata_dir: Path, start_worker,
                                                        tmp_path: Path) -> None:
    """Kafka Connect's recovery: on assignment the next offset comes from the committed file
    names and the consumer seeks there, instead of reading what the lake holds again. A second
    consumer group over the same lake (as after a group's offsets expired) shows it: it has no
    committed offsets, so without the seek it would read every tier topic from offset 0."""
    lake = tmp_path / "lake"
    first = start_worker(kafka, metadata_dir, app_id="atlas-it-lake-a", ATLAS_LAKE_URI=str(lake), **FAST)
    asyncio.run(produce(kafka.bootstrap, RAW, [mixed(i) for i in range(300)]))
    wait_for("300 rows in committed files", lambda: len(lake_rows(lake)) >= 300, 120, log=first.log)
    first.stop()
    ends: dict[tuple[str, int], int] = {}
    for f in committed_files(lake):
        name = parse_committed_name(f.name)
        assert name is not None
        ends[(name.topic, name.partition)] = max(ends.get((name.topic, name.partition), 0), name.end + 1)

    second = start_worker(kafka, metadata_dir, app_id="atlas-it-lake-b", ATLAS_LAKE_URI=str(lake), **FAST)
    # Group b committed exactly where the lake ends before it read anything (it re-scores the raw
    # topic from its start, so later commits only move these forward).
    wait_for("group b's offsets at the lake's ends",
             lambda: all(off >= ends[tp] for tp, off in committed(kafka.bootstrap, "atlas-it-lake-b", ends).items()),
             60, log=second.log)
    assert "seeking" in second.log() and all(f"{t}[{p}] -> {off}" in second.log() for (t, p), off in ends.items())
    asyncio.run(produce(kafka.bootstrap, RAW, [mixed(i) for i in range(300, 400)]))
    rows = wait_for("400 rows", lambda: len(lake_rows(lake)) >= 400 and lake_rows(lake), 120, log=second.log)
    time.sleep(3)  # anything written twice would land now
    rows = lake_rows(lake)
    assert len(rows) == 400 and not duplicates(rows)
    # No record the lake held reached the sink again: nothing below the recovered offsets was read.
    assert "already written; skipping" not in second.log()


def committed(bootstrap: str, group: str, tps: dict[tuple[str, int], int]) -> dict[tuple[str, int], int]:
    """The group's committed offsets (read without joining it); -1 where it has none."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def read() -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            out = {}
            for t, p in tps:
                off = await consumer.committed(TopicPartition(t, p))
                out[(t, p)] = -1 if off is None else off
            return out
        finally:
            await consumer.stop()

    return asyncio.run(read())


@pytest.mark.timeout(1200)
def test_kill_9_five_times_every_record_once(kafka, noida_es, metadata_dir: Path, start_worker, tmp_path: Path) -> None:
    """The issue's proof: 100k records, SIGKILL at least 5 times, then 0 missing, 0 duplicated,
    in the lake and in Elasticsearch."""
    n = 100_000
    lake = tmp_path / "lake"
    env = dict(FAST, ATLAS_LAKE_URI=str(lake), ATLAS_SINK_ROTATE_SECONDS="3", ATLAS_APP_ID="atlas-kill",
               ATLAS_ES_URL=noida_es.url, ATLAS_ES_BULK_DOCS="2000")
    asyncio.run(ensure_topics([kafka.bootstrap], [RAW], partitions=2, replication=1))
    asyncio.run(produce_fast(kafka.bootstrap, RAW, [mixed(i) for i in range(n)]))
    rng = random.Random(7)
    before = 0
    for kill in range(5):
        worker = start_worker(kafka, metadata_dir, **env)
        # Kill while files are being written: after this run has committed something.
        before = wait_for("the lake to grow", lambda b=before: (len(lake_rows(lake)) > b) and len(lake_rows(lake)),
                          180, every=0.5, log=worker.log)
        time.sleep(rng.uniform(0, 3))
        worker.stop(signal.SIGKILL)
        before = len(lake_rows(lake))
        print(f"kill {kill + 1}: SIGKILL with {before} rows committed")
        assert len(lake_rows(lake)) < n, "the run ended before the kills: make it longer"
    worker = start_worker(kafka, metadata_dir, **env)
    rows = wait_for(f"{n} rows in the lake", lambda: len(lake_rows(lake)) >= n and lake_rows(lake), 600, every=5,
                    log=worker.log)
    time.sleep(5)  # anything written twice would land now
    rows = lake_rows(lake)
    positions = {(r[1], r[2], r[3]) for r in rows}
    missing = n - len(positions)
    assert missing == 0, f"{missing} raw records missing"
    assert not duplicates(rows), f"duplicated: {duplicates(rows)[:5]}"
    expected = tier_positions(kafka.bootstrap, TOPICS)
    for tier in TIERS:
        assert {(r[1], r[2], r[3]) for r in rows if r[0] == tier} == expected[tier], tier

    # Elasticsearch: every gold and silver record once (the _id is the raw position).
    want = {f"{t}+{p}+{o}" for tier in ("gold", "silver") for (t, p, o) in expected[tier]}
    seen: list[int] = []

    def all_indexed() -> int:
        seen.append(es_count(noida_es.url))
        return seen[-1] if seen[-1] >= len(want) else 0

    try:
        count = wait_for(f"{len(want)} gold and silver documents", all_indexed, 300, every=5)
    except AssertionError:
        raise AssertionError(f"Elasticsearch holds {seen[-1:]} of {len(want)} documents\n{worker.log()[-3000:]}") from None
    assert count == len(want)
    assert es_ids_match(noida_es.url, want)


def es_count(url: str) -> int:
    import json
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{url}/_refresh", method="POST"), timeout=30).close()
    with urllib.request.urlopen(f"{url}/atlas-itest-orders-*/_count", timeout=30) as resp:
        return int(json.loads(resp.read())["count"])


def es_ids_match(url: str, want: set[str]) -> bool:
    """Every expected _id is there (checked in slices through the ids query)."""
    import json
    import urllib.request

    ids = sorted(want)
    for i in range(0, len(ids), 5000):
        chunk = ids[i:i + 5000]
        body = json.dumps({"query": {"ids": {"values": chunk}}}).encode()
        req = urllib.request.Request(f"{url}/atlas-itest-orders-*/_count", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            got = int(json.loads(resp.read())["count"])
        assert got == len(chunk), f"ids {chunk[0]}..{chunk[-1]}: {got} of {len(chunk)} found"
    return True

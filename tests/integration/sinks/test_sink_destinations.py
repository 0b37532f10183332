"""Sinks through a real worker to S3 (moto), WebHDFS (tests/webhdfs_server.py) and Elasticsearch
(noida-db): every record once, and nothing acknowledged while a destination is down."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from aiokafka import AIOKafkaConsumer, TopicPartition

from atlas_stream.lake import parse_committed_name
from atlas_stream.sinks.lakefs import open_lake

from ..harness import consume, parse, produce
from ..itest_orders import RAW, TOPICS
from ..lake_fixtures import TcpProxy
from ..sinkcheck import TIERS, lake_rows, mixed, tier_positions, wait_for

FAST = {"ATLAS_SINK_FLUSH_SECONDS": "1", "ATLAS_SINK_ROTATE_SECONDS": "2", "ATLAS_ES_LINGER_SECONDS": "0.5"}


def s3_files(moto: Any) -> list[tuple[str, int, int]]:
    """(tier, start, end) of every committed file in the S3 lake, read straight from moto."""
    lake = open_lake(moto.lake_uri, s3_endpoint=moto.endpoint)
    out = []
    for entry in lake.list_files(""):
        name = parse_committed_name(entry.path.rsplit("/", 1)[-1])
        if name:
            out.append((entry.path, name.start, name.end))
    return out


def s3_rows(moto: Any) -> list[tuple[str, str, int, int]]:
    lake = open_lake(moto.lake_uri, s3_endpoint=moto.endpoint)
    rows = []
    for path, _, _ in s3_files(moto):
        tier = path.split("tier=")[1].split("/")[0]
        with lake.fs.open_input_file(lake.full(path)) as f:
            t = pq.read_table(f, columns=["_source_topic", "_source_partition", "_source_offset"])
        for topic, part, off in zip(*(t.column(i).to_pylist() for i in range(3))):
            rows.append((tier, topic, part, off))
    return rows


def es_ids(url: str) -> list[str]:
    urllib.request.urlopen(urllib.request.Request(f"{url}/_refresh", method="POST"), timeout=10).close()
    req = urllib.request.Request(f"{url}/atlas-itest-orders-*/_search", method="POST",
                                 data=json.dumps({"size": 10000, "_source": False}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        hits = json.loads(resp.read())["hits"]["hits"]
    return [h["_id"] for h in hits]


def committed_offsets(bootstrap: str, group: str, topics: list[str]) -> dict[tuple[str, int], int | None]:
    async def read() -> dict[tuple[str, int], int | None]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await consumer.start()
        try:
            return {(t, p): await consumer.committed(TopicPartition(t, p)) for t in topics for p in (0, 1)}
        finally:
            await consumer.stop()
    return asyncio.run(read())


def test_s3_and_elasticsearch_down_for_10s(kafka, noida_es, moto_s3, metadata_dir: Path, start_worker) -> None:
    s3_port = int(moto_s3.endpoint.rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", s3_port) as s3_proxy, TcpProxy("127.0.0.1", noida_es.port) as es_proxy:
        worker = start_worker(kafka, metadata_dir, app_id="atlas-down", ATLAS_LAKE_URI=moto_s3.lake_uri,
                              ATLAS_ES_URL=es_proxy.url, **{**moto_s3.env, "ATLAS_S3_ENDPOINT": s3_proxy.url}, **FAST)
        asyncio.run(produce(kafka.bootstrap, RAW, [mixed(i) for i in range(200)]))
        wait_for("200 rows in S3", lambda: len(s3_rows(moto_s3)) >= 200, 120, log=worker.log)

        s3_proxy.pause()
        es_proxy.pause()
        paused_at = time.monotonic()
        files_before = s3_files(moto_s3)
        asyncio.run(produce(kafka.bootstrap, RAW, [mixed(i) for i in range(200, 400)]))
        while time.monotonic() - paused_at < 10:
            time.sleep(1)
            # Nothing acknowledged before it is written: each tier partition's committed offset
            # stays within what the committed files hold.
            ends: dict[tuple[str, int], int] = {}
            for path, _, end in s3_files(moto_s3):
                name = parse_committed_name(path.rsplit("/", 1)[-1])
                assert name is not None
                ends[(name.topic, name.partition)] = max(ends.get((name.topic, name.partition), -1), end)
            for tp, off in committed_offsets(kafka.bootstrap, "atlas-down", list(TOPICS.values())).items():
                assert off is None or off <= ends.get(tp, -1) + 1, (tp, off, ends.get(tp))
        assert s3_files(moto_s3) == files_before, "a file was committed while S3 was unreachable"
        assert "Nothing is acknowledged" in worker.log()  # the outage is reported, with what to check
        s3_proxy.resume()
        es_proxy.resume()

        rows = wait_for("400 rows in S3", lambda: len(s3_rows(moto_s3)) >= 400 and s3_rows(moto_s3), 180,
                        log=worker.log)
        time.sleep(3)
        rows = s3_rows(moto_s3)
        positions = Counter((r[1], r[2], r[3]) for r in rows)
        assert len(positions) == 400 and max(positions.values()) == 1
        expected = tier_positions(kafka.bootstrap, TOPICS)
        for tier in TIERS:
            assert {(r[1], r[2], r[3]) for r in rows if r[0] == tier} == expected[tier], tier

        want = {f"{t}+{p}+{o}" for tier in ("gold", "silver") for (t, p, o) in expected[tier]}
        ids = wait_for("gold and silver documents", lambda: set(es_ids(noida_es.url)) >= want and es_ids(noida_es.url),
                       120, log=worker.log)
        assert sorted(ids) == sorted(want)  # each once, nothing else
        # The commits were announced on the event log.
        events = parse(asyncio.run(consume(kafka.bootstrap, ["atlas.events"],
                                           lambda ms: any(b'"sink.commit"' in m.value for m in ms), timeout=30)))
        assert any(e["type"] == "sink.commit" and e["source"] == "itest.orders" for _, e in events)


def test_webhdfs_lake(kafka, webhdfs, metadata_dir: Path, start_worker, tmp_path: Path) -> None:
    worker = start_worker(kafka, metadata_dir, ATLAS_LAKE_URI=webhdfs, **FAST)
    asyncio.run(produce(kafka.bootstrap, RAW, [mixed(i) for i in range(150)]))
    # The WebHDFS server keeps its files in a local folder: read them as analysts would.
    root = Path(webhdfs_root(tmp_path))
    rows = wait_for("150 rows over WebHDFS", lambda: len(lake_rows(root)) >= 150 and lake_rows(root), 120,
                    log=worker.log)
    assert len({(r[1], r[2], r[3]) for r in rows}) == 150 == len(rows)
    assert all("tier=" in r[4] and "ingest_date=" in r[4] for r in rows)


def webhdfs_root(tmp_path: Path) -> Path:
    """Where tests/webhdfs_server.py (started by the ``webhdfs`` fixture) keeps the lake's files."""
    return tmp_path / "webhdfs-root" / "lake"

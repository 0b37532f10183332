"""Guarantees that only a real Apache Kafka can prove: transactions across crashes, consumer-group
failover, a replicated cluster losing a broker, and table recovery after a restart.

Each test starts fresh Kafka broker(s) (``kafka``, ``kafka_cluster``); without Java they are
skipped or fall back as conftest.py says.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from atlas_stream.topics import dlq_topic, raw_topic, tier_topic

from ..harness import ROOT, Feeder, changelog_totals, consume, poller_env, read_to_end
from ..itest_orders import DLQ, RAW, TOPICS
from ..sinkcheck import KIND_TIER, duplicates, lake_rows, mixed, wait_for
from ..gateway_process import GatewayProcess
from ..web_client import base_url, tier_counts

HERE = Path(__file__).resolve().parents[1]  # tests/integration, where the contracts folders are
OUTPUTS = [*TOPICS.values(), DLQ]


#: A crashed worker's partitions move on after 8 s instead of 45 s (ATLAS_BROKER_SESSION_TIMEOUT).
FAST_FAILOVER = {"ATLAS_BROKER_SESSION_TIMEOUT": "8"}


def _processing(worker: Any, timeout: float = 90) -> None:
    """Wait until ``worker`` has been assigned the raw partitions."""
    wait_for("the worker to be assigned raw partitions", lambda: _holds_raw(worker), timeout=timeout, every=0.5,
             log=worker.log)


def _holds_raw(worker: Any) -> bool:
    """True when the worker's latest assignment (Faust logs it as a table) has raw partitions."""
    text = worker.log()
    return "Setting newly assigned partitions" in text and \
        RAW in text.split("Setting newly assigned partitions")[-1].split("Executing")[0]


def _require_kafka(broker: Any) -> None:
    if broker.kind != "kafka":
        pytest.skip("needs Apache Kafka (Java 17+ and Maven): see docs/brokers.md")


def _positions(messages: list[Any]) -> Counter[tuple[str, int, int]]:
    out: Counter[tuple[str, int, int]] = Counter()
    for m in messages:
        src = orjson.loads(m.value)["source"]
        out[(src["topic"], src["partition"], src["offset"])] += 1
    return out


def _expected_tiers(positions: list[tuple[int, int]]) -> dict[tuple[str, int, int], str]:
    return {(RAW, p, o): KIND_TIER.get(i % 10, "gold") for i, (p, o) in enumerate(positions)}


def _missing(expected: dict[tuple[str, int, int], str], rows: list[Any]) -> str:
    """Which raw positions the lake lacks, per partition as offset ranges: where a stall stopped."""
    got = {(r[1], r[2], r[3]) for r in rows}
    by_partition: dict[int, list[int]] = {}
    for _topic, partition, offset in sorted(set(expected) - got):
        by_partition.setdefault(partition, []).append(offset)
    parts = [f"partition {p}: {len(offs)} missing, offsets {offs[0]}..{offs[-1]}" for p, offs in by_partition.items()]
    return "lake lacks " + ("; ".join(parts) or "nothing")


def test_exactly_once_survives_kill_9_and_read_committed_sees_each_record_once(kafka, metadata_dir: Path,
                                                                               start_worker) -> None:
    """ATLAS_PROCESSING_GUARANTEE=exactly_once: a worker SIGKILLed three times while records
    arrive; a read_committed consumer of the tier topics sees every raw record exactly once, in
    the right tier, and the statistics changelog counts each once."""
    _require_kafka(kafka)
    env = {"ATLAS_PROCESSING_GUARANTEE": "exactly_once", "ATLAS_SINK_ENABLED": "0", **FAST_FAILOVER}
    worker = start_worker(kafka, metadata_dir, app_id="atlas-eos", **env)
    feeder = Feeder(kafka.bootstrap, RAW, [mixed(i) for i in range(6000)], chunk=100, pause=0.5)
    feeder.start()
    for _ in range(3):
        _processing(worker)
        time.sleep(2)  # in the middle of transactions
        worker.stop(signal.SIGKILL)
        worker = start_worker(kafka, metadata_dir, app_id="atlas-eos", **env)
    expected = _expected_tiers(feeder.result())

    def all_there(ms: list[Any]) -> bool:
        return len(_positions(ms)) >= len(expected)

    asyncio.run(consume(kafka.bootstrap, OUTPUTS, all_there, timeout=240, isolation_level="read_committed"))
    committed = asyncio.run(read_to_end(kafka.bootstrap, OUTPUTS, isolation_level="read_committed"))
    seen = _positions(committed)
    assert set(seen) == set(expected), f"missing {len(set(expected) - set(seen))}, extra {len(set(seen) - set(expected))}"
    assert [pos for pos, n in seen.items() if n > 1] == [], "a raw record was committed twice"
    tiers = {TOPICS[t]: t for t in TOPICS}
    got = {(src["topic"], src["partition"], src["offset"]): tiers[m.topic]
           for m in committed if (src := orjson.loads(m.value)["source"])}
    assert got == expected

    # The statistics are part of the same transactions: recovering them gives exact counts
    # (agents/scoring.py writes them and drains Faust's send buffer under the commit gate).
    want = Counter(f"itest.orders|{tier}" for tier in expected.values())
    changelog = asyncio.run(consume(kafka.bootstrap, ["atlas-eos-tier_counts-changelog"],
                                    lambda ms: changelog_totals(ms) == want, timeout=60,
                                    isolation_level="read_committed"))
    assert changelog_totals(changelog) == want
    assert tier_counts(f"{base_url(worker)}/stats/itest/orders/") == {t.split("|")[1]: n for t, n in want.items()}



def test_a_killed_worker_hands_its_partitions_over_and_the_lake_holds_every_record_once(
        kafka, metadata_dir: Path, start_worker, tmp_path: Path) -> None:
    """Two workers in one group; one is SIGKILLed mid-stream. The other takes its partitions
    after the session timeout and the lake ends with every raw record exactly once."""
    _require_kafka(kafka)
    sink = {"ATLAS_SINK_FLUSH_SECONDS": "1", "ATLAS_SINK_ROTATE_SECONDS": "2", **FAST_FAILOVER}
    a = start_worker(kafka, metadata_dir, app_id="atlas-failover", **sink)
    b = start_worker(kafka, metadata_dir, app_id="atlas-failover", **sink)
    _processing(a)
    _processing(b)
    feeder = Feeder(kafka.bootstrap, RAW, [mixed(i) for i in range(4000)], chunk=200, pause=0.3)
    feeder.start()
    time.sleep(3)
    a.stop(signal.SIGKILL)
    expected = _expected_tiers(feeder.result())
    lake = tmp_path / "lake"

    def landed() -> bool:
        return {(r[1], r[2], r[3]) for r in lake_rows(lake)} >= set(expected)

    try:
        wait_for("every record in the lake", landed, timeout=240, every=2.0, log=b.log)
    except AssertionError as e:
        b.request_task_dump()
        raise AssertionError(f"{_missing(expected, lake_rows(lake))}\n--- stream tasks of the worker that "
                             f"took over ---\n{b.stuck_tasks()}\n{e}") from None
    time.sleep(3)  # anything written twice would land now
    rows = lake_rows(lake)
    assert duplicates(rows) == []
    assert {(r[1], r[2], r[3]): r[0] for r in rows} == expected
    assert _holds_raw(b)


def test_a_broker_killed_in_a_replicated_cluster_loses_no_acknowledged_record(kafka_cluster, start_worker,
                                                                               tmp_path: Path) -> None:
    """Three brokers, replication 3, min.insync.replicas 2: one broker is SIGKILLed while a
    WebSocket producer and a file poller publish. Every record the gateway acknowledged and every
    row of every file reaches its raw topic once and is scored."""
    cluster = kafka_cluster
    metadata = tmp_path / "metadata-rf3"
    metadata.mkdir()
    shutil.copy(HERE / "contracts" / "itest.json", metadata)
    shutil.copy(HERE / "contracts_fs" / "itest_fs.json", metadata)
    landing = tmp_path / "landing"
    (landing / "orders").mkdir(parents=True)
    rf3 = {"ATLAS_TOPIC_REPLICATION": "3", "ATLAS_METADATA_DIR": str(metadata)}
    start_worker(cluster, metadata, app_id="atlas-rf3", ATLAS_SINK_ENABLED="0", **rf3)
    gateway = GatewayProcess(cluster, tmp_path, **rf3).start()
    env = poller_env(cluster.url, tmp_path, ATLAS_LANDING_DIR=str(landing), **rf3)
    poller = subprocess.Popen([sys.executable, "-m", "atlas_stream", "poll", "--ocs", "itest_fs"], cwd=ROOT, env=env,
                              stdout=open(tmp_path / "poller.log", "wb"), stderr=subprocess.STDOUT)
    csv_ids: set[str] = set()

    def land_file(n: int) -> None:
        ids = [f"F{n}-{i}" for i in range(200)]
        text = "order_id,amount,note\n" + "".join(f"{i},{j}.5,n\n" for j, i in enumerate(ids))
        part = landing / "orders" / f"{n}.csv.part"
        part.write_text(text)
        part.rename(part.with_suffix(""))  # appear whole
        csv_ids.update(ids)

    async def stream() -> set[str]:
        acked: set[str] = set()
        async with connect(gateway.url("itest", "orders"), ping_interval=None) as ws:
            for frame in range(60):
                if frame == 20:
                    await asyncio.to_thread(cluster.kill_node, 1)  # SIGKILL: leader of some partitions
                if frame % 6 == 0:
                    land_file(frame // 6)
                ids = [f"G{frame}-{i}" for i in range(50)]
                await ws.send(orjson.dumps([orjson.loads(mixed(i)) | {"order_id": f} for i, f in enumerate(ids)]).decode())
                reply = orjson.loads(await asyncio.wait_for(ws.recv(), 60))
                if reply["ok"]:
                    acked.update(ids)
                await asyncio.sleep(0.1)
        return acked

    try:
        acked = asyncio.run(stream())
        assert not cluster.node_running(1)
        assert len(acked) >= 2000, f"only {len(acked)} of 3000 records acknowledged with two brokers up"
        survivor = ",".join(f"{cluster.host}:{n.port}" for n in cluster.nodes[1:])
        fs_raw = raw_topic("itest_fs", "orders")

        def published() -> bool:
            return not list((landing / "orders").glob("*.csv"))  # every file archived after publishing

        wait_for("the poller to publish and archive every file", published, timeout=120,
                 log=lambda: (tmp_path / "poller.log").read_text(errors="replace"))
    finally:
        poller.terminate()
        poller.wait(30)
        gateway.stop()
    raw = asyncio.run(read_to_end(survivor, [RAW, fs_raw]))
    gw_ids = Counter(orjson.loads(m.value)["order_id"] for m in raw if m.topic == RAW)
    file_ids = Counter(orjson.loads(m.value)["order_id"] for m in raw if m.topic == fs_raw)
    assert acked <= set(gw_ids), f"{len(acked - set(gw_ids))} acknowledged records lost"
    assert set(file_ids) == csv_ids and max(file_ids.values()) == 1
    assert max(gw_ids[i] for i in acked) == 1, "an acknowledged record was published twice"

    # Processing went on: every raw record of both topics reached a tier or the DLQ.
    want = {(m.topic, m.partition, m.offset) for m in raw}
    outputs = [*OUTPUTS, *(tier_topic("itest_fs", "orders", t) for t in TOPICS), dlq_topic("itest_fs")]
    scored = asyncio.run(consume(survivor, outputs, lambda ms: set(_positions(ms)) >= want, timeout=180))
    assert set(_positions(scored)) >= want


def test_statistics_are_exact_after_a_worker_restart(kafka, metadata_dir: Path, start_worker) -> None:
    """A worker stopped and started again recovers its tables from the changelog: the stats
    endpoint counts every record once, before and after the restart."""
    _require_kafka(kafka)
    worker = start_worker(kafka, metadata_dir, app_id="atlas-restart")
    first = Feeder(kafka.bootstrap, RAW, [mixed(i) for i in range(1000)], chunk=250, pause=0.0)
    first.start()
    want = Counter(_expected_tiers(first.result()).values())
    url = f"{base_url(worker)}/stats/itest/orders/"
    wait_for("stats of the first 1000", lambda: tier_counts(url) == dict(want), timeout=90, log=worker.log)
    worker.stop()
    worker = start_worker(kafka, metadata_dir, app_id="atlas-restart")
    url = f"{base_url(worker)}/stats/itest/orders/"
    assert tier_counts(url) == dict(want), "the restarted worker did not recover its statistics exactly"
    second = Feeder(kafka.bootstrap, RAW, [mixed(i) for i in range(1000, 1500)], chunk=250, pause=0.0)
    second.start()
    second.result()
    want += Counter(KIND_TIER.get(i % 10, "gold") for i in range(1000, 1500))
    wait_for("stats after the restart", lambda: tier_counts(url) == dict(want), timeout=90, log=worker.log)
    time.sleep(2)
    assert tier_counts(url) == dict(want)

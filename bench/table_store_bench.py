"""Worker restart cost with memory:// and rocksdb:// tables, on a real Kafka broker.

    .venv/bin/python bench/table_store_bench.py [--updates 300000] [--keys 30000]

Writes ``--updates`` table updates (over ``--keys`` statistics keys of the real ``failure_counts``
table, one check name per key, spread over ATLAS_TOPIC_PARTITIONS partitions) into the table's changelog topic, as a
worker's commits would, then for each store starts the real worker (``python -m atlas_stream
worker``) twice on the same data dir: the first start loads the table from the changelog, the
second is the restart being measured. Prints per start: seconds to ``Worker ready``, changelog
messages recovery read (highwater - start offset of every active changelog partition, from the
tables Faust logs), the worker's resident memory, and a check that the stats endpoint sums the
updates exactly. The memory run is the baseline of the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaProducer  # noqa: E402

from atlas_stream.devbroker import choose_dev_broker, free_port  # noqa: E402
from atlas_stream.devkafka import KafkaCluster  # noqa: E402
from atlas_stream.kafka_admin import ensure_topics  # noqa: E402
from tests.integration.harness import changelog_reads, worker_env  # noqa: E402

APP = "atlas-bench-tables"
PARTITIONS = 4
SUBJECT = "itest.orders"


async def _write_changelog(bootstrap: str, updates: int, keys: int) -> int:
    """``updates`` increments over ``keys`` keys; returns the expected total of the failure counts."""
    topic = f"{APP}-failure_counts-changelog"
    await ensure_topics([bootstrap], [topic], PARTITIONS, 1)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20)
    await producer.start()
    counts = [0] * keys
    try:
        for i in range(updates):
            k = i % keys
            counts[k] += 1
            partition = k % PARTITIONS
            key = orjson.dumps(f"{partition}|{SUBJECT}|rule:bench{k}")
            await producer.send(topic, orjson.dumps(counts[k]), key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()
    return sum(counts)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _start(env: dict[str, str], log: Path) -> tuple[float, int, float, int]:
    """(seconds to ready, changelog messages read, RSS MiB, failure total the stats endpoint shows)."""
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "worker", "-l", "info"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        while "[^Worker]: Ready" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() - started > 900:
                raise SystemExit(f"worker did not get ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        ready = time.monotonic() - started
        rss = _rss_mb(proc.pid)
        url = f"http://127.0.0.1:{env['ATLAS_WEB_PORT']}/stats/itest/orders/"
        with urllib.request.urlopen(url, timeout=120) as resp:
            failures = orjson.loads(resp.read())["failures"]
        return ready, changelog_reads(log.read_text(errors="replace")), rss, sum(failures.values())
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--updates", type=int, default=300_000)
    parser.add_argument("--keys", type=int, default=30_000)
    args = parser.parse_args()
    kind, note = choose_dev_broker(None)
    if kind != "kafka":
        print(f"needs Apache Kafka: {note}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="atlas-table-bench-") as tmp_name:
        tmp = Path(tmp_name)
        metadata = ROOT / "tests" / "integration" / "contracts"
        with open(tmp / "broker.log", "w") as blog, KafkaCluster(free_port(), data_dir=tmp / "broker", log=blog) as kafka:
            want = asyncio.run(_write_changelog(kafka.bootstrap, args.updates, args.keys))
            print(f"broker: Apache Kafka ({kafka.bootstrap}); changelog: {args.updates} updates over {args.keys} keys")
            results = {}
            for store in ("memory://", "rocksdb://"):
                env = worker_env(kafka.url, tmp, metadata, APP, ATLAS_DEV_BROKER="kafka", ATLAS_STORE=store,
                                 ATLAS_TOPIC_PARTITIONS=str(PARTITIONS), ATLAS_SINK_ENABLED="0",
                                 ATLAS_DATA_DIR=str(tmp / store.split(":")[0]))
                for run in ("first start", "restart"):
                    env["ATLAS_WEB_PORT"] = str(free_port())
                    ready, read, rss, total = _start(env, tmp / f"worker-{store.split(':')[0]}-{run[0]}.log")
                    results[(store, run)] = ready, read
                    exact = "exact" if total == want else f"WRONG ({total} != {want})"
                    print(f"{store:11} {run:11}: ready in {ready:6.1f} s, changelog messages read {read:7d}, "
                          f"RSS {rss:6.0f} MiB, stats {exact}")
            base = results[("memory://", "restart")][0]
            rocks = results[("rocksdb://", "restart")][0]
            print(f"restart: rocksdb:// takes {rocks / base:.2f}x the time of memory:// "
                  f"({rocks:.1f} s vs {base:.1f} s); cores: {os.cpu_count()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

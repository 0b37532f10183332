"""ATLAS_STORE=rocksdb:// on real Kafka: statistics are exact, a worker restarted on the data
dir it kept replays no changelog it already holds, and the data dir of another app id is not
mistaken for its own."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from atlas_stream.devbroker import free_port

from ..harness import ROOT, Feeder, changelog_reads
from ..itest_orders import RAW
from ..sinkcheck import KIND_TIER, mixed, wait_for
from ..web_client import base_url, tier_counts



def test_rocksdb_tables_are_exact_and_a_restart_replays_nothing(kafka, metadata_dir: Path, start_worker,
                                                                tmp_path: Path) -> None:
    if kafka.kind != "kafka":
        pytest.skip("needs Apache Kafka (Java 17+ and Maven): see docs/brokers.md")
    env = {"ATLAS_STORE": "rocksdb://", "ATLAS_DATA_DIR": str(tmp_path / "kept")}
    worker = start_worker(kafka, metadata_dir, app_id="atlas-rocks", **env)
    feed = Feeder(kafka.bootstrap, RAW, [mixed(i) for i in range(600)], chunk=200, pause=0.0)
    feed.start()
    feed.result()
    want = Counter(KIND_TIER.get(i % 10, "gold") for i in range(600))
    url = f"{base_url(worker)}/stats/itest/orders/"
    wait_for("stats of the first 600", lambda: tier_counts(url) == dict(want), timeout=90, log=worker.log)
    assert worker.stop() == 0 and "Traceback" not in worker.log()
    assert list((tmp_path / "kept" / "faust").rglob("*.db")), "no RocksDB database in the data dir"

    worker = start_worker(kafka, metadata_dir, app_id="atlas-rocks", **env)
    url = f"{base_url(worker)}/stats/itest/orders/"
    assert tier_counts(url) == dict(want), "the restarted worker did not keep its statistics"
    assert changelog_reads(worker.log()) == 0
    # A second worker on the same data dir, or a worker of another app id: one line, exit 2.
    for app_id, message in (("atlas-rocks", "is in use by another worker (pid "),
                            ("atlas-other", "holds the table data of app id 'atlas-rocks', not ATLAS_APP_ID")):
        other = {**worker.env, "ATLAS_APP_ID": app_id, "ATLAS_WEB_PORT": str(free_port())}
        out = subprocess.run([sys.executable, "-m", "atlas_stream", "worker"], cwd=ROOT, env=other,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and message in out.stderr and "ATLAS_DATA_DIR" in out.stderr, out.stderr[-2000:]
    more = Feeder(kafka.bootstrap, RAW, [mixed(i) for i in range(600, 800)], chunk=200, pause=0.0)
    more.start()
    more.result()
    want += Counter(KIND_TIER.get(i % 10, "gold") for i in range(600, 800))
    wait_for("stats after the restart", lambda: tier_counts(url) == dict(want), timeout=90, log=worker.log)
    assert "Traceback" not in worker.log()

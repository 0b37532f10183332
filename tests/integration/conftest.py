"""Fixtures that start real brokers (fresh data for every test) and workers.

``kafka`` is a real Apache Kafka broker (KRaft, one JVM); ``kafka_cluster`` three of them.
Without Java they fall back to noida-db, with a warning saying why (docs/brokers.md). ``noida``
and ``tansu`` are the PyPI fallbacks themselves, kept working by a few tests of their own.
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path
from typing import Callable, Iterator

import pytest

from atlas_stream.devbroker import DevBroker, choose_dev_broker, free_port
from atlas_stream.devkafka import KafkaCluster

from .harness import Worker, worker_env

HERE = Path(__file__).resolve().parent
_ids = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.integration)


def _broker(kind: str, tmp_path: Path) -> Iterator[DevBroker]:
    log = open(tmp_path / f"broker-{kind}.log", "w")
    broker = DevBroker(kind, free_port(), data_dir=tmp_path / f"broker-{kind}", log=log)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
        log.close()


def _kafka(tmp_path: Path, brokers: int) -> Iterator["KafkaCluster | DevBroker"]:
    kind, note = choose_dev_broker(None)
    if kind != "kafka":
        if brokers > 1:
            pytest.skip(f"a {brokers}-broker cluster needs Apache Kafka: {note}")
        import warnings

        warnings.warn(note or "no Apache Kafka", stacklevel=2)
        yield from _broker(kind, tmp_path)
        return
    log = open(tmp_path / "broker-kafka.log", "w")
    cluster = KafkaCluster(data_dir=tmp_path / "broker-kafka", log=log, brokers=brokers,
                           ports=[free_port() for _ in range(brokers)])
    cluster.start(timeout=120)  # a busy 2-core machine can take a while to start a JVM
    try:
        yield cluster
    finally:
        cluster.stop()
        log.close()


@pytest.fixture
def kafka(tmp_path: Path) -> Iterator["KafkaCluster | DevBroker"]:
    """A fresh Apache Kafka broker (KRaft, production semantics); noida-db without Java."""
    yield from _kafka(tmp_path, 1)


@pytest.fixture
def kafka_cluster(tmp_path: Path) -> Iterator["KafkaCluster | DevBroker"]:
    """Three fresh Apache Kafka brokers (replication 3, min.insync.replicas 2)."""
    yield from _kafka(tmp_path, 3)


@pytest.fixture
def noida(tmp_path: Path) -> Iterator[DevBroker]:
    """A fresh noida-db Kafka broker (correct offsets, persistence, transactions)."""
    yield from _broker("noida", tmp_path)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[DevBroker]:
    """A fresh Tansu broker (in memory; consumer-group failover works)."""
    yield from _broker("tansu", tmp_path)


@pytest.fixture
def metadata_dir(tmp_path: Path) -> Path:
    """A copy of tests/integration/contracts that a test may edit."""
    target = tmp_path / "metadata"
    shutil.copytree(HERE / "contracts", target)
    return target


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers against a broker; all are stopped at teardown."""
    workers: list[Worker] = []

    def start(broker: "DevBroker | KafkaCluster", metadata: Path, app_id: str | None = None, **env: str) -> Worker:
        n = next(_ids)
        app_id = app_id or f"atlas-it-{n}"
        extra = {"ATLAS_DEV_BROKER": broker.kind, **env}
        extra.setdefault("ATLAS_WEB_PORT", str(free_port()))
        extra.setdefault("ATLAS_DATA_DIR", str(tmp_path / f"data-{n}"))
        w = Worker(worker_env(broker.url, tmp_path, metadata, app_id, **extra), tmp_path / f"worker-{n}.log")
        workers.append(w.start())
        w.wait_ready()
        return w

    yield start
    for w in workers:
        w.stop()
from .es_fixtures import noida_es  # noqa: E402,F401
from .lake_fixtures import moto_s3, remote_lake, webhdfs, webhdfs_server  # noqa: E402,F401


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session when a secret a test used appears in any file the session wrote."""
    from .secrets_check import USED, leaks

    factory = getattr(session.config, "_tmp_path_factory", None)
    if not USED or factory is None:
        return
    found = leaks(factory.getbasetemp())
    if found:
        print("\nSECRETS LEAKED into logs:\n  " + "\n  ".join(found))
        session.exitstatus = 1

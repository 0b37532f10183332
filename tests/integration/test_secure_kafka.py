"""Atlas Stream on a Kafka that wants SASL_SSL: the worker, the gateway and a Kafka poller (whose
contract names its own cluster and credentials through placeholders) move records end to end,
and wrong credentials stop each process at start with one line naming the setting to fix."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from atlas_stream.kafka_admin import ensure_topics

from .conftest import HERE
from .harness import ROOT, Worker, consume, poller_env, produce, worker_env
from .secrets_check import leaks, secret
from .tls_fixtures import SecureKafka, secure_kafka  # noqa: F401

from atlas_stream.model import TIERS  # noqa: E402
EXTERNAL = "ext.secure.orders"


def _kafka_contract() -> dict[str, Any]:
    return {
        "ocs_group_name": "securekafka",
        "source_type": "kafka",
        "source_config": {"bootstrap_servers": "${SRC_SERVERS}", "security_protocol": "SASL_SSL",
                          "sasl_mechanism": "SCRAM-SHA-256", "sasl_username": "${SRC_USER}",
                          "sasl_password": "${SRC_PASSWORD}", "ssl_cafile": "${SRC_CA}"},
        "dataset_config": [{
            "source": {"name": "orders", "path": EXTERNAL, "key": "order_id", "batch_size": 10, "poll_interval": 0.2,
                       "features": [{"name": "order_id", "dtype": "string", "required": True},
                                    {"name": "amount", "dtype": "int"}]},
            "destination": {"path": "securekafka/orders"},
        }],
    }


def _metadata(tmp_path: Path) -> Path:
    metadata = tmp_path / "metadata"
    metadata.mkdir()
    shutil.copy(HERE / "contracts_gateway" / "gwopen.json", metadata)
    (metadata / "securekafka.json").write_bytes(orjson.dumps(_kafka_contract()))
    return metadata


def _tier_topics(group: str, dataset: str) -> list[str]:
    return [f"atlas.{group}.{dataset}.{t}" for t in TIERS]


def _run(args: list[str], env: dict[str, str], log: Path, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "atlas_stream", *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    log.write_text(out.stdout + out.stderr)
    return out


def _gateway(env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], str]:
    from atlas_stream.devbroker import free_port

    port = free_port()
    handle = open(log, "wb")  # noqa: SIM115  # open for the process lifetime
    proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "gateway", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if "atlas gateway ready" in log.read_text(errors="replace"):
            return proc, f"ws://127.0.0.1:{port}"
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited with {proc.returncode}:\n{log.read_text()}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"gateway not ready:\n{log.read_text()}")


def test_worker_gateway_and_poller_work_over_sasl_ssl(secure_kafka: SecureKafka, tmp_path: Path) -> None:  # noqa: F811
    sk = secure_kafka
    metadata = _metadata(tmp_path)
    env = worker_env(sk.secure, tmp_path, metadata, "atlas-secure", ATLAS_DEV_BROKER="kafka",
                     ATLAS_WEB_PORT=str(_port()), **sk.env(), **_source_env(sk))
    worker = Worker(env, tmp_path / "worker.log").start()
    gateway = None
    try:
        worker.wait_ready()
        gateway, base = _gateway(env, tmp_path / "gateway.log")

        async def send() -> list[Any]:
            async with connect(f"{base}/ingest/gwopen/clicks") as ws:
                await ws.send(orjson.dumps([{"page": f"/p{i}", "n": i} for i in range(3)]).decode())
                return [orjson.loads(await asyncio.wait_for(ws.recv(), 30))]

        assert asyncio.run(send()) == [{"ok": True, "count": 3, "frame": 1}]
        clicks = asyncio.run(consume(sk.bootstrap, _tier_topics("gwopen", "clicks"), lambda m: len(m) >= 3, 90))
        assert len(clicks) == 3

        # The poller's contract names the cluster and its credentials through placeholders.
        asyncio.run(ensure_topics([sk.bootstrap], [EXTERNAL], 2, 1))
        asyncio.run(produce(sk.bootstrap, EXTERNAL, [orjson.dumps({"order_id": f"O-{i}", "amount": i})
                                                      for i in range(5)]))
        poll_env = poller_env(f"kafka://{sk.secure}", tmp_path, None, ATLAS_METADATA_DIR=str(metadata),
                              **_source_env(sk), **{k: v for k, v in sk.env().items() if k != "ATLAS_BROKER"})
        out = _run(["poll", "--ocs", "securekafka", "--once"], poll_env, tmp_path / "poller.log")
        assert out.returncode == 0, out.stderr[-3000:]
        orders = asyncio.run(consume(sk.bootstrap, _tier_topics("securekafka", "orders"), lambda m: len(m) >= 5, 90))
        assert sorted(orjson.loads(m.value)["record"]["order_id"] for m in orders) == [f"O-{i}" for i in range(5)]
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(30)
        worker.stop()
    assert "Traceback" not in worker.log()
    assert leaks(tmp_path) == []  # worker, gateway and poller logs


def _source_env(sk: SecureKafka) -> dict[str, str]:
    """What the Kafka contract's placeholders name."""
    return {"SRC_SERVERS": sk.secure, "SRC_USER": "alice", "SRC_PASSWORD": sk.password, "SRC_CA": str(sk.cafile)}


def _port() -> int:
    from atlas_stream.devbroker import free_port

    return free_port()


@pytest.mark.parametrize(("override", "setting"), [
    ({"ATLAS_KAFKA_SASL_PASSWORD": secret("wrong-password-31337")}, "ATLAS_KAFKA_SASL_PASSWORD"),
    ({"ATLAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512"}, "ATLAS_KAFKA_SASL_MECHANISM"),
    ({"ATLAS_KAFKA_SSL_CAFILE": "other"}, "ATLAS_KAFKA_SSL_CAFILE"),
])
def test_bad_credentials_stop_every_process_at_start_with_one_line(secure_kafka: SecureKafka,  # noqa: F811
                                                                   tmp_path: Path, override: dict[str, str],
                                                                   setting: str) -> None:
    sk = secure_kafka
    if override.get("ATLAS_KAFKA_SSL_CAFILE") == "other":
        override = {"ATLAS_KAFKA_SSL_CAFILE": str(sk.other_cafile)}
    metadata = _metadata(tmp_path)
    env = worker_env(sk.secure, tmp_path, metadata, "atlas-secure-bad", ATLAS_DEV_BROKER="kafka",
                     ATLAS_WEB_PORT=str(_port()), **sk.env(**override), **_source_env(sk))
    for name, args in (("worker", ["worker", "-l", "info"]), ("gateway", ["gateway", "--port", str(_port())]),
                       ("sample", ["sample", "--count", "1"]), ("poller", ["poll", "--ocs", "securekafka", "--once"])):
        started = time.monotonic()
        out = _run(args, env, tmp_path / f"{name}-bad.log", timeout=60)
        errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
        assert out.returncode == 2, f"{name}: {out.returncode}\n{out.stderr[-3000:]}"
        assert len(errors) == 1 and setting in errors[0], f"{name}: {out.stderr[-3000:]}"
        assert "Traceback" not in out.stderr, name
        assert time.monotonic() - started < 45, name
        for password in (sk.password, "wrong-password-31337"):
            assert password not in out.stdout + out.stderr, name


def test_up_finds_a_running_secured_cluster(secure_kafka: SecureKafka) -> None:  # noqa: F811
    from atlas_stream.devbroker import wait_for_kafka
    from atlas_stream.errors import BrokerUnavailable
    from atlas_stream.settings import Settings

    settings = Settings.from_env(secure_kafka.env())
    wait_for_kafka(settings.bootstrap_servers[0], timeout=20, security=settings.kafka_security)  # what `up` asks
    with pytest.raises(BrokerUnavailable):
        wait_for_kafka(secure_kafka.secure, timeout=3)  # plaintext on the SASL_SSL listener gets no answer

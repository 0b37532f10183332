"""A real Apache Kafka broker (or a cluster of them) in KRaft combined mode, for development.

Each node is one JVM (``kafka.Kafka``) acting as broker and controller. Log directories live
under ``data_dir`` and are formatted once; a restart keeps topics, data and committed offsets.
Nothing here ever deletes a log directory: a foreign or corrupt one stops the start with a line
saying what to move away.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import BrokerUnavailable
from .jars import KAFKA_VERSION, LOG4J_CONFIG, classpath, resolve_jars

__all__ = ["KafkaCluster"]

_STATE = "atlas-cluster.json"  # which cluster id and node ids this data dir was formatted for


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _taken(host: str, port: int) -> bool:
    # A connect, not a bind: a port left in TIME_WAIT by our own last run is free for Kafka.
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class _Node:
    node_id: int
    port: int
    controller_port: int
    log_dir: Path
    process: "subprocess.Popen[bytes] | None" = None


class KafkaCluster:
    """``brokers`` Kafka nodes on ``host``; ``start()`` returns once every node serves metadata.

    Broker ports are ``ports`` (default ``port``, ``port+1``, ...); controller ports are picked
    free at each start (the quorum is static, so they need not stay the same). ``extra`` adds
    broker properties (for example the TLS key store of a secured listener). ``listeners`` adds
    listeners named by their security protocol (``{"SASL_SSL": 9094}``; one node only) beside
    PLAINTEXT, which stays the inter-broker and readiness listener. ``scram_users`` are
    ``(mechanism, name, password)`` SCRAM credentials written into the metadata when a log
    directory is formatted (``kafka-storage format --add-scram``).
    """

    kind = "kafka"

    def __init__(self, port: int = 9092, host: str = "127.0.0.1", data_dir: Path | None = None,
                 log: IO[str] | None = None, brokers: int = 1, ports: list[int] | None = None,
                 extra: dict[str, str] | None = None, heap: str | None = None,
                 listeners: dict[str, int] | None = None,
                 scram_users: list[tuple[str, str, str]] | None = None) -> None:
        if brokers < 1:
            raise BrokerUnavailable("--brokers must be at least 1")
        if listeners and brokers > 1:
            raise BrokerUnavailable("extra listeners are supported on a one-node cluster only")
        self.listeners = dict(listeners or {})
        self.scram_users = list(scram_users or [])
        self.host = host
        self.data_dir = (data_dir or Path(".atlas") / "broker-kafka").resolve()
        self.log = log
        self.extra = dict(extra or {})
        self.heap = heap or ("1g" if brokers == 1 else "512m")
        ports = list(ports or [port + i for i in range(brokers)])
        self.nodes = [_Node(i + 1, p, 0, self.data_dir / (f"node-{i + 1}" if brokers > 1 else "log"))
                      for i, p in enumerate(ports)]
        self._log_files: list[IO[str]] = []

    # -- addresses ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def bootstrap(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def url(self) -> str:
        return ";".join(f"kafka://{self.host}:{n.port}" for n in self.nodes)

    @property
    def process(self) -> "subprocess.Popen[bytes] | None":
        """The first node's process (the single broker's, for callers that watch one)."""
        return self.nodes[0].process

    # -- configuration --------------------------------------------------------------------
    def _properties(self, node: _Node) -> dict[str, str]:
        n = len(self.nodes)
        voters = ",".join(f"{m.node_id}@{self.host}:{m.controller_port}" for m in self.nodes)
        rf = str(min(3, n))
        more = "".join(f",{name}://{self.host}:{port}" for name, port in self.listeners.items())
        protocols = "".join(f",{name}:{name}" for name in self.listeners)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://{self.host}:{node.port},CONTROLLER://{self.host}:{node.controller_port}{more}",
            "advertised.listeners": f"PLAINTEXT://{self.host}:{node.port}{more}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": f"CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT{protocols}",
            "log.dirs": str(node.log_dir),
            "offsets.topic.replication.factor": rf,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": str(min(2, n)),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": str(min(2, n)),
            "min.insync.replicas": str(min(2, n)),
            "default.replication.factor": rf,
            # A development broker: the first member of a group need not wait 3 s for others.
            "group.initial.rebalance.delay.ms": "0",
        }
        props.update(self.extra)
        return props

    def _write_config(self, node: _Node) -> Path:
        path = self.data_dir / f"server-{node.node_id}.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self._properties(node).items()))
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        return ["java", "-Xms256m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", "-cp", classpath(), main, *args]

    # -- format once ----------------------------------------------------------------------
    def _cluster_id(self) -> str:
        """The id this data dir was formatted with; formats fresh node dirs; refuses foreign ones."""
        state_file = self.data_dir / _STATE
        state = json.loads(state_file.read_text()) if state_file.is_file() else None
        wanted = [n.node_id for n in self.nodes]
        if state is not None and state.get("nodes") != wanted:
            raise BrokerUnavailable(
                f"{self.data_dir} holds a Kafka cluster of nodes {state.get('nodes')}, not {wanted}: "
                "start it with the same --brokers, or use another --data-dir / ATLAS_DATA_DIR")
        cluster_id = state["cluster_id"] if state else _new_cluster_id()
        for node in self.nodes:
            meta = node.log_dir / "meta.properties"
            if meta.is_file():
                found = dict(line.split("=", 1) for line in meta.read_text().splitlines()
                             if "=" in line and not line.startswith("#"))
                if found.get("cluster.id") != cluster_id or found.get("node.id") != str(node.node_id):
                    raise BrokerUnavailable(
                        f"{node.log_dir} is a Kafka log directory of another cluster (cluster.id "
                        f"{found.get('cluster.id')}, node.id {found.get('node.id')}): move it away or "
                        "use another --data-dir / ATLAS_DATA_DIR; nothing was changed")
                continue
            if node.log_dir.exists() and any(node.log_dir.iterdir()):
                raise BrokerUnavailable(
                    f"{node.log_dir} is not empty and has no meta.properties, so it is not a formatted "
                    "Kafka log directory: move it away or use another --data-dir; nothing was changed")
            self._format(node, cluster_id)
        if state is None:
            state_file.write_text(json.dumps({"cluster_id": cluster_id, "nodes": wanted,
                                              "kafka": KAFKA_VERSION}) + "\n")
        return cluster_id

    def _format(self, node: _Node, cluster_id: str) -> None:
        config = self._write_config(node)
        scram = [arg for mechanism, name, password in self.scram_users
                 for arg in ("--add-scram", f"{mechanism}=[name={name},password={password}]")]
        # "--cluster-id=ID": an id of an earlier run may start with "-", which a separate
        # argument would turn into an option.
        out = subprocess.run(self._java("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c",
                                        str(config), *scram), capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if out.returncode != 0:
            detail = (out.stderr or out.stdout).strip().splitlines()[-1:] or ["no output"]
            raise BrokerUnavailable(f"formatting {node.log_dir} failed: {detail[0]}")

    # -- run ------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> "KafkaCluster":
        resolve_jars(self.log)
        for node in self.nodes:
            if _taken(self.host, node.port):
                raise BrokerUnavailable(
                    f"port {node.port} on {self.host} is already taken: stop what runs there, or choose "
                    "another with --port (and set ATLAS_BROKER to match)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.controller_port = _free_port(self.host)
        self._cluster_id()
        for node in self.nodes:
            config = self._write_config(node)
            log_file = open(self.data_dir / f"server-{node.node_id}.log", "a")
            self._log_files.append(log_file)
            node.process = subprocess.Popen(self._java("kafka.Kafka", str(config)), stdout=subprocess.PIPE,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            threading.Thread(target=_pump, args=(node.process.stdout, log_file, self.log), daemon=True).start()
        try:
            self._wait_ready(timeout)
        except BrokerUnavailable:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        from ..devbroker import metadata_brokers

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in self.nodes:
                assert node.process is not None
                if node.process.poll() is not None:
                    raise BrokerUnavailable(
                        f"Kafka node {node.node_id} exited with code {node.process.returncode} at start: "
                        f"{_last_error(self.data_dir / f'server-{node.node_id}.log')}")
            if all(metadata_brokers(f"{self.host}:{n.port}") >= len(self.nodes) for n in self.nodes):
                return
            time.sleep(0.3)
        raise BrokerUnavailable(f"Kafka did not answer on {self.bootstrap} within {timeout:.0f}s; "
                                f"its log is in {self.data_dir}")

    def node_running(self, node_id: int) -> bool:
        proc = self.nodes[node_id - 1].process
        return proc is not None and proc.poll() is None

    def kill_node(self, node_id: int, sig: int = 9) -> None:
        """Send ``sig`` (SIGKILL by default) to one node and wait for it to end (failure tests)."""
        proc = self.nodes[node_id - 1].process
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(60)

    def failed(self) -> str | None:
        """A line about the first node that has died, or None."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                return (f"Kafka node {node.node_id} exited with code {node.process.returncode}: "
                        f"{_last_error(self.data_dir / f'server-{node.node_id}.log')}")
        return None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM every node at once (a controlled shutdown), SIGKILL what is left after ``timeout``."""
        running = [n.process for n in self.nodes if n.process is not None and n.process.poll() is None]
        for proc in running:
            proc.terminate()
        deadline = time.monotonic() + timeout
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for node in self.nodes:
            node.process = None
        for f in self._log_files:
            f.close()
        self._log_files.clear()

    def wait(self) -> int:
        assert self.nodes[0].process is not None
        return self.nodes[0].process.wait()

    def __enter__(self) -> "KafkaCluster":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _new_cluster_id() -> str:
    """A random cluster id as Kafka writes them; never one that starts with ``-``, which
    kafka-storage's argument parser would take for an option (1 id in 64), as Kafka's own
    ``Uuid.randomUuid`` avoids."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _pump(stream: IO[bytes], log_file: IO[str], echo: IO[str] | None) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", "replace")
        try:
            log_file.write(line)
            log_file.flush()
            if echo is not None and (" ERROR " in line or " FATAL " in line):
                echo.write(line)
                echo.flush()
        except ValueError:  # closed at stop
            return


def _last_error(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return f"no log at {log}"
    for line in reversed(lines):
        if " ERROR " in line or " FATAL " in line or "Exception" in line:
            return f"{line.strip()[:300]} (log: {log})"
    return f"see {log}"

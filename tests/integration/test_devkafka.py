"""``python -m atlas_stream broker --kind kafka``: the real development broker an operator starts,
restarts, and gets wrong (ports, log directories, missing tools, a dying broker)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from atlas_stream.devbroker import free_port
from atlas_stream.devkafka import java_problem

from .harness import ROOT, produce, read_to_end

pytestmark = pytest.mark.skipif(java_problem() is not None, reason=f"no Apache Kafka here: {java_problem()}")


class BrokerCommand:
    """``python -m atlas_stream broker --kind kafka`` in the background, its output in a file."""

    def __init__(self, tmp: Path, data_dir: Path, port: int | None = None, env: dict[str, str] | None = None) -> None:
        self.port = port or free_port()
        self.log = tmp / f"broker-{self.port}-{time.monotonic_ns()}.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "atlas_stream", "broker", "--kind", "kafka", "--port", str(self.port),
             "--data-dir", str(data_dir)],
            cwd=ROOT, env={**base, "PYTHONUNBUFFERED": "1", **(env or {})}, stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "atlas broker ready" in self.text():
                return
            if self.proc.poll() is not None:
                raise AssertionError(f"broker exited with {self.proc.returncode}:\n{self.text()}")
            time.sleep(0.2)
        raise AssertionError(f"broker not ready after {timeout}s:\n{self.text()}")

    def finish(self, timeout: float = 90) -> tuple[int, str]:
        """Exit code and output of a command expected to end by itself."""
        return self.proc.wait(timeout), self.text()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(60)


def _errors(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def test_a_restart_keeps_topics_data_and_committed_offsets(tmp_path: Path) -> None:
    data = tmp_path / "kafka"
    broker = BrokerCommand(tmp_path, data)
    broker.wait_ready()
    bootstrap = f"127.0.0.1:{broker.port}"
    asyncio.run(produce(bootstrap, "kept", [b"one", b"two"]))
    started = time.monotonic()
    assert broker.stop() == 0
    assert time.monotonic() - started < 30 and "broker: stopped" in broker.text()

    again = BrokerCommand(tmp_path, data, port=broker.port)
    again.wait_ready()
    try:
        assert [m.value for m in asyncio.run(read_to_end(bootstrap, ["kept"]))] == [b"one", b"two"]
    finally:
        assert again.stop() == 0
    assert "formatting" not in again.text().lower()


def test_a_taken_port_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        code, text = BrokerCommand(tmp_path, tmp_path / "k", port=sock.getsockname()[1]).finish()
    assert code != 0
    (line,) = _errors(text)
    assert "already taken" in line and "--port" in line


def test_foreign_and_corrupt_log_directories_are_refused_and_left_as_they_were(tmp_path: Path) -> None:
    foreign = tmp_path / "foreign"
    (foreign / "log").mkdir(parents=True)
    meta = "version=1\ncluster.id=SomeoneElsesCluster0\nnode.id=7\n"
    (foreign / "log" / "meta.properties").write_text(meta)
    code, text = BrokerCommand(tmp_path, foreign).finish()
    assert code != 0
    (line,) = _errors(text)
    assert "another cluster" in line and "nothing was changed" in line
    assert (foreign / "log" / "meta.properties").read_text() == meta

    corrupt = tmp_path / "corrupt"
    (corrupt / "log").mkdir(parents=True)
    (corrupt / "log" / "precious.bin").write_bytes(b"data of an earlier run")
    code, text = BrokerCommand(tmp_path, corrupt).finish()
    assert code != 0
    (line,) = _errors(text)
    assert "not a formatted Kafka log directory" in line
    assert (corrupt / "log" / "precious.bin").read_bytes() == b"data of an earlier run"


def test_a_broker_that_dies_is_reported_and_the_command_exits_non_zero(tmp_path: Path) -> None:
    broker = BrokerCommand(tmp_path, tmp_path / "k")
    broker.wait_ready()
    jvm = subprocess.run(["pgrep", "-f", f"{tmp_path / 'k'}/server-1.properties"], capture_output=True, text=True)
    (pid,) = jvm.stdout.split()
    os.kill(int(pid), signal.SIGKILL)
    code, text = broker.finish(60)
    assert code == 1
    (line,) = _errors(text)
    assert "Kafka node 1 exited with code -9" in line


def _bin_with(tmp: Path, *tools: str) -> str:
    """A PATH holding only ``tools`` (links to the real ones)."""
    bin_dir = tmp / "bin"
    bin_dir.mkdir(parents=True)
    for tool in tools:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def test_missing_java_or_maven_and_no_network_each_say_what_to_do(tmp_path: Path) -> None:
    home = tmp_path / "home"  # no cached jars, no Maven repository
    home.mkdir()
    no_java = BrokerCommand(tmp_path, tmp_path / "a", env={"PATH": _bin_with(tmp_path / "1"), "HOME": str(home)})
    code, text = no_java.finish()
    assert code != 0
    (line,) = _errors(text)
    assert "java is not installed" in line and "apt-get install" in line

    no_mvn = BrokerCommand(tmp_path, tmp_path / "b", env={"PATH": _bin_with(tmp_path / "2", "java"), "HOME": str(home)})
    code, text = no_mvn.finish()
    assert code != 0
    (line,) = _errors(text)
    assert "mvn is not installed" in line and "maven" in line

    # Maven Central out of reach: a mirror nobody answers on.
    (home / ".m2").mkdir()
    (home / ".m2" / "settings.xml").write_text(
        "<settings><mirrors><mirror><id>nowhere</id><mirrorOf>*</mirrorOf>"
        f"<url>http://127.0.0.1:{free_port()}/maven2</url></mirror></mirrors></settings>")
    offline = BrokerCommand(tmp_path, tmp_path / "c", env={"PATH": _bin_with(tmp_path / "3", "java", "mvn"),
                                                          "HOME": str(home)})
    code, text = offline.finish(300)
    assert code != 0
    (line,) = _errors(text)
    assert "could not fetch the Kafka" in line and "Maven Central" in line
    assert not (tmp_path / "c").exists() or not any((tmp_path / "c").rglob("meta.properties"))

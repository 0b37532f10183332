"""A real noida-db server speaking the Elasticsearch REST API (fresh data for every test)."""

from __future__ import annotations

import re
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import IO, Iterator

import pytest

from atlas_stream.devbroker import broker_binary, stop_process

_URL = re.compile(r"elasticsearch\s+(http://\S+)")


class NoidaElasticsearch:
    """``start()`` (port 0 picks a free one; later starts reuse it, so a restart keeps the URL)
    returns once ``GET /`` answers; ``stop()`` ends it with SIGTERM (noida saves its data)."""

    def __init__(self, data_dir: Path, log_path: Path, host: str = "127.0.0.1") -> None:
        self.data_dir = data_dir
        self.log_path = log_path
        self.host = host
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self, timeout: float = 30.0) -> "NoidaElasticsearch":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        offset = self._log.tell()
        # The binary itself, not the `noida-db` console script: SIGTERM must reach the server.
        cmd = [str(broker_binary("noida")), "start", "--only", "elasticsearch", "--host", self.host,
               "--elasticsearch-port", str(self.port), "--data-dir", str(self.data_dir)]
        self.process = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"noida-db exited with code {self.process.returncode}: {self._tail(offset)}")
            m = _URL.search(self._tail(offset))
            if m and self._answers(m.group(1)):
                self.url = m.group(1)
                self.port = int(self.url.rsplit(":", 1)[1])
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"noida-db did not serve Elasticsearch within {timeout:.0f}s: {self._tail(offset)}")

    def _tail(self, offset: int) -> str:
        return self.log_path.read_bytes()[offset:].decode("utf-8", "replace")

    @staticmethod
    def _answers(url: str) -> bool:
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is not None:
            stop_process(proc)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def noida_es(tmp_path: Path) -> Iterator[NoidaElasticsearch]:
    """A fresh noida-db Elasticsearch server; ``.url``, and ``stop()``/``start()`` to take it away."""
    server = NoidaElasticsearch(tmp_path / "noida-es", tmp_path / "noida-es.log").start()
    try:
        yield server
    finally:
        server.stop()

"""``python -m atlas_stream gateway`` as a subprocess against a test broker, with the gateway
contracts of tests/integration/contracts_gateway (their token is ``TOKEN``)."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

from atlas_stream.devbroker import DevBroker, free_port, stop_process

from .harness import ROOT

CONTRACTS = Path(__file__).resolve().parent / "contracts_gateway"
TOKEN = "gw-" + secrets.token_hex(12)
_READY = re.compile(r"atlas gateway ready: (wss?)://(\S+?)/ingest/")


class GatewayProcess:
    """``python -m atlas_stream gateway`` against a test broker, with its output in a log file."""

    def __init__(self, broker: DevBroker, tmp_path: Path, args: tuple[str, ...] = (), **env: str) -> None:
        metadata = tmp_path / "metadata-gateway"
        if not metadata.exists():
            shutil.copytree(CONTRACTS, metadata)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        self.env.update({
            "ATLAS_BROKER": broker.url, "ATLAS_METADATA_DIR": str(metadata),
            "ATLAS_DATA_DIR": str(tmp_path / "data"), "ATLAS_TOPIC_PARTITIONS": "2",
            "GW_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1", **env,
        })
        self.port = free_port()
        self.args = ["--port", str(self.port), *args]
        self.log_path = tmp_path / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base = ""

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115  # open for the process lifetime
        self.proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "gateway", *self.args], cwd=ROOT,
                                     env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _READY.search(self.log())
            if found:
                self.base = f"{found.group(1)}://{found.group(2)}"
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"gateway exited with {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.1)
        raise AssertionError(f"gateway not ready after {timeout}s:\n{self.log()}")

    def url(self, group: str, dataset: str, token: str | None = None) -> str:
        return f"{self.base}/ingest/{group}/{dataset}" + (f"?token={token}" if token is not None else "")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        proc = self.proc
        if proc is None:
            return 0
        code = stop_process(proc, timeout=timeout)
        self._log.close()
        return code

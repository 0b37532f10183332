"""Lake services for tests: S3 from a ``moto[server]`` process, WebHDFS from tests/webhdfs_server.py,
and ``TcpProxy`` to take any TCP service down and up again."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import pytest

from atlas_stream.devbroker import free_port, stop_process

WEBHDFS_SERVER = Path(__file__).resolve().parents[1] / "webhdfs_server.py"


@dataclass
class MotoS3:
    """A running moto S3 server with one bucket. ``env`` is what a worker process needs: fake
    credentials (moto mangles anonymous chunked uploads), a region, no EC2 metadata lookups,
    and ATLAS_S3_ENDPOINT."""

    endpoint: str
    bucket: str
    process: "subprocess.Popen[bytes]"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def lake_uri(self) -> str:
        return f"s3://{self.bucket}/lake"


def _wait_http(url: str, proc: "subprocess.Popen[bytes]", log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args} exited with code {proc.returncode}: {log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except OSError:
            time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s: {log.read_text(errors='replace')}")


@pytest.fixture
def moto_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    """A fresh moto S3 server on a free port with bucket ``atlas-lake``. Its ``env`` is also set in
    this process (without ATLAS_S3_ENDPOINT) so that ``open_lake(moto_s3.lake_uri,
    s3_endpoint=moto_s3.endpoint)`` works in the test itself."""
    port = free_port()
    log = tmp_path / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{endpoint}/moto-api/", proc, log)
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/atlas-lake", method="PUT"), timeout=10).close()
        aws = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            # Keep the developer's ~/.aws profile out of the tests.
            "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        }
        for name, value in aws.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
        yield MotoS3(endpoint, "atlas-lake", proc, {**aws, "ATLAS_S3_ENDPOINT": endpoint})
    finally:
        stop_process(proc, timeout=10)


@dataclass
class WebHdfsServer:
    """tests/webhdfs_server.py running in a subprocess; files live under ``root``."""

    uri: str  # webhdfs://127.0.0.1:<port>/lake
    url: str  # http://127.0.0.1:<port>/webhdfs/v1 (the name node)
    datanode_port: int
    root: Path
    process: "subprocess.Popen[bytes]"


def start_webhdfs(tmp_path: Path) -> WebHdfsServer:
    port, datanode_port = free_port(), free_port()
    root, log = tmp_path / "webhdfs-root", tmp_path / "webhdfs.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(WEBHDFS_SERVER), "--port", str(port),
                                 "--datanode-port", str(datanode_port), "--root", str(root)],
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/webhdfs/v1"
    _wait_http(f"{url}/?op=GETFILESTATUS", proc, log)
    return WebHdfsServer(f"webhdfs://127.0.0.1:{port}/lake", url, datanode_port, root, proc)


@pytest.fixture
def webhdfs_server(tmp_path: Path) -> Iterator[WebHdfsServer]:
    """A fresh WebHDFS server over tmp_path/webhdfs-root."""
    server = start_webhdfs(tmp_path)
    try:
        yield server
    finally:
        stop_process(server.process, timeout=10)


@pytest.fixture
def webhdfs(webhdfs_server: WebHdfsServer) -> str:
    """The URI (webhdfs://127.0.0.1:<port>/lake) of a fresh WebHDFS server over tmp_path/webhdfs-root."""
    return webhdfs_server.uri


@pytest.fixture(params=["s3", "webhdfs"])
def remote_lake(request: pytest.FixtureRequest) -> tuple[str, str | None]:
    """``(lake URI, S3 endpoint or None)`` of a fresh lake: once in moto S3, once in WebHDFS."""
    if request.param == "s3":
        s3: MotoS3 = request.getfixturevalue("moto_s3")
        return s3.lake_uri, s3.endpoint
    return request.getfixturevalue("webhdfs"), None


class TcpProxy:
    """Forwards ``host:port`` (port 0: a free one) to ``target_host:target_port``.

    ``pause()`` closes the listener and every open connection, so clients see the service as
    down (connection refused or reset); ``resume()`` listens again on the same port. Runs an
    asyncio loop in a daemon thread; usable as a context manager.
    """

    def __init__(self, target_host: str, target_port: int, port: int = 0, host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.host, self.port = host, port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    def start(self) -> "TcpProxy":
        self._thread.start()
        self._run(self._listen())
        return self

    def pause(self) -> None:
        self._run(self._close())

    def resume(self) -> None:
        self._run(self._listen())

    def stop(self) -> None:
        if self._thread.is_alive():
            self._run(self._close())
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
            self._loop.close()

    def __enter__(self) -> "TcpProxy":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _listen(self) -> None:
        if self._server is not None:
            return
        deadline = time.monotonic() + 10
        while True:
            try:
                self._server = await asyncio.start_server(self._handle, self.host, self.port, reuse_address=True)
                break
            except OSError:  # the old socket may linger for a moment after pause()
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()
        for transport in list(self._transports):
            transport.abort()
        self._transports.clear()
        if self._tasks:  # let the connection handlers see their sockets closed
            await asyncio.wait(self._tasks, timeout=5)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._server is None:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = {writer.transport, up_writer.transport}
        task = asyncio.current_task()
        assert task is not None
        self._transports |= pair
        self._tasks.add(task)
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            for transport in pair:
                transport.abort()
            self._transports -= pair
            self._tasks.discard(task)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            writer.transport.abort()


def port_open(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at host:port right now."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False

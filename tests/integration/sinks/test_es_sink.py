"""The Elasticsearch sink against a real server speaking the Elasticsearch REST API (noida-db)."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from aiohttp import web

from atlas_stream.devbroker import free_port
from atlas_stream.errors import ConfigError
from atlas_stream.model import Dataset, Destination, Feature, QualityConfig, parse_dtype
from atlas_stream.sinks.elasticsearch import ElasticsearchSink, ElasticsearchUnavailable, index_name

from ..es_fixtures import NoidaElasticsearch

FEATURES = (
    Feature("id", parse_dtype("bigint"), required=True),
    Feature("amount", parse_dtype("decimal(12,2)")),
    Feature("name", parse_dtype("string")),
    Feature("day", parse_dtype("date")),
)
DATASET = Dataset(group="shop", name="orders", path="$", source_features=FEATURES, schema=FEATURES,
                  transformations=(), quality=QualityConfig(), destination=Destination(path="shop/orders"))
INDEX = index_name("shop", "orders", "gold", datetime(2024, 3, 1, tzinfo=timezone.utc))
PRODUCT = {"X-Elastic-Product": "Elasticsearch"}
FAST = {"backoff_base": 0.05, "backoff_max": 0.5, "linger_seconds": 0.1}


def doc(offset: int, **record: Any) -> tuple[str, dict[str, Any]]:
    fields = {"id": offset, "amount": "12.50", "name": f"n{offset}", "day": "2024-03-01", **record}
    atlas = {"tier": "gold", "score": 1.0, "failures": [], "ingested_at": "2024-03-01T10:00:00+00:00",
             "source": {"topic": "atlas.shop.orders.raw", "partition": 0, "offset": offset},
             "schema": {"subject": "shop.orders", "version": 1}}
    return f"atlas.shop.orders.raw+0+{offset}", {**fields, "atlas": atlas}


def add(sink: ElasticsearchSink, offsets: range) -> None:
    for offset in offsets:
        doc_id, body = doc(offset)
        sink.add(doc_id, INDEX, body, position=offset)


async def count(sink: ElasticsearchSink) -> int:
    await sink.client.indices.refresh(index="atlas-shop-orders-*")
    return int((await sink.client.count(index="atlas-shop-orders-*"))["count"])


async def test_bulk_indexes_and_a_replay_overwrites(noida_es: NoidaElasticsearch) -> None:
    sink = ElasticsearchSink(noida_es.url, max_docs=40, **FAST)
    try:
        await sink.setup([DATASET])
        add(sink, range(100))
        result = await sink.flush()  # 3 bulk requests of at most 40 documents
        assert (result.indexed, result.refused, result.positions) == (100, [], list(range(100)))
        assert await count(sink) == 100
        mapping = (await sink.client.indices.get_mapping(index=INDEX))[INDEX]["mappings"]["properties"]
        assert mapping["amount"] == {"type": "scaled_float", "scaling_factor": 100}  # from the template
        add(sink, range(50, 150))
        assert (await sink.flush()).indexed == 100
        assert await count(sink) == 150
        hit = await sink.client.get(index=INDEX, id="atlas.shop.orders.raw+0+7")
        assert hit["_source"]["atlas"]["source"]["offset"] == 7
    finally:
        await sink.close()


async def test_a_refused_document_comes_back_with_the_server_reason(noida_es: NoidaElasticsearch) -> None:
    sink = ElasticsearchSink(noida_es.url, **FAST)
    try:
        await sink.setup([DATASET])
        add(sink, range(3))
        bad_id, bad = doc(3, id="not-a-number")
        sink.add(bad_id, INDEX, bad, position=3)
        add(sink, range(4, 6))
        result = await sink.flush()
        assert result.indexed == 5 and result.positions == [0, 1, 2, 3, 4, 5]
        [refused] = result.refused
        assert (refused.id, refused.index, refused.status, refused.position) == (bad_id, INDEX, 400, 3)
        assert refused.error_type == "document_parsing_exception"
        assert "failed to parse field [id] of type [long]" in refused.reason
        assert refused.doc["id"] == "not-a-number" and refused.error.startswith("document_parsing_exception: ")
        assert await count(sink) == 5
    finally:
        await sink.close()


async def test_flush_waits_for_the_server_to_come_back(noida_es: NoidaElasticsearch) -> None:
    failures: list[str] = []
    sink = ElasticsearchSink(noida_es.url, on_error=lambda problem, attempt, delay: failures.append(problem), **FAST)
    try:
        await sink.setup([DATASET])
        add(sink, range(10))
        assert (await sink.flush()).indexed == 10
        noida_es.stop()
        add(sink, range(10, 60))
        flushing = asyncio.create_task(sink.flush())
        await asyncio.sleep(6)
        assert not flushing.done() and len(failures) >= 3
        assert "Connection" in failures[0]
        await asyncio.to_thread(noida_es.start)  # same port and data directory
        result = await asyncio.wait_for(flushing, 30)
        assert result.indexed == 50 and result.refused == [] and result.attempts == len(failures) + 1
        assert await count(sink) == 60
    finally:
        await sink.close()


async def test_giving_up_keeps_the_documents_buffered() -> None:
    sink = ElasticsearchSink(f"http://127.0.0.1:{free_port()}", max_retries=2, **FAST)
    try:
        add(sink, range(5))
        with pytest.raises(ElasticsearchUnavailable, match="failed 3 times"):
            await sink.flush()
        assert len(sink) == 5 and sink.due(now=10**9)
    finally:
        await sink.close()


Hook = Callable[[web.Request, bytes, int], Awaitable["web.Response | None"]]


@asynccontextmanager
async def proxy(server: NoidaElasticsearch, before: Hook,
                rewrite: Callable[[dict[str, Any], int], None] = lambda payload, n: None) -> AsyncIterator[str]:
    """An HTTP proxy to noida-db. ``before(request, body, n)`` may answer the n-th bulk request
    itself; ``rewrite(payload, n)`` may edit noida's answer to it."""
    bulks = 0

    async def forward(request: web.Request) -> web.Response:
        nonlocal bulks
        body = await request.read()
        n = -1
        if request.path.endswith("_bulk"):
            n, bulks = bulks, bulks + 1
            answer = await before(request, body, n)
            if answer is not None:
                return answer
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with aiohttp.ClientSession() as session:
            async with session.request(request.method, server.url + request.path_qs, data=body,
                                       headers=headers) as resp:
                payload = await resp.json(content_type=None)
        if n >= 0:
            rewrite(payload, n)
        return web.json_response(payload, status=resp.status, headers=PRODUCT)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_503_and_per_document_429_are_retried(noida_es: NoidaElasticsearch) -> None:
    sizes: list[int] = []

    async def unavailable_first(request: web.Request, body: bytes, n: int) -> web.Response | None:
        sizes.append(body.count(b"\n") // 2)
        if n == 0:
            return web.json_response({"error": {"type": "unavailable", "reason": "warming up"}, "status": 503},
                                     status=503, headers=PRODUCT)
        return None

    def first_document_rejected(payload: dict[str, Any], n: int) -> None:
        if n == 1:
            payload["errors"] = True
            payload["items"][0]["index"].update(
                status=429, error={"type": "es_rejected_execution_exception", "reason": "queue full"})

    failures: list[str] = []
    async with proxy(noida_es, unavailable_first, first_document_rejected) as url:
        sink = ElasticsearchSink(url, on_error=lambda problem, attempt, delay: failures.append(problem), **FAST)
        try:
            await sink.setup([DATASET])
            add(sink, range(20))
            result = await sink.flush()
            assert result.indexed == 20 and result.refused == [] and result.attempts == 3
            assert "HTTP 503" in failures[0] and "429" in failures[1] and "queue full" in failures[1]
            assert sizes == [20, 20, 1]  # the whole request, again, then the rejected document only
            assert await count(sink) == 20
        finally:
            await sink.close()


async def test_requests_too_large_are_split_and_a_document_too_large_is_refused(noida_es: NoidaElasticsearch) -> None:
    async def limit(request: web.Request, body: bytes, n: int) -> web.Response | None:
        if len(body) > 2000:
            return web.json_response({"error": {"type": "too_long", "reason": "body too large"}, "status": 413},
                                     status=413, headers=PRODUCT)
        return None

    async with proxy(noida_es, limit) as url:
        sink = ElasticsearchSink(url, **FAST)
        try:
            await sink.setup([DATASET])
            add(sink, range(12))
            big_id, big = doc(12, name="x" * 3000)
            sink.add(big_id, INDEX, big, position=12)
            result = await sink.flush()
            assert result.indexed == 12 and result.positions == list(range(13))
            assert [(r.id, r.status) for r in result.refused] == [(big_id, 413)]
            assert await count(sink) == 12
        finally:
            await sink.close()


async def test_overlapping_dataset_names_get_templates_and_a_real_clash_is_a_config_error(
        noida_es: NoidaElasticsearch) -> None:
    def named(group: str, name: str) -> Dataset:
        return Dataset(group=group, name=name, path="$", source_features=FEATURES, schema=FEATURES,
                       transformations=(), quality=QualityConfig(), destination=Destination(path=name))

    sink = ElasticsearchSink(noida_es.url, **FAST)
    try:
        await sink.setup([named("shop", "orders"), named("shop", "orders-gold"), named("shop", "orders")])
        with pytest.raises(ConfigError, match="exists for dataset shop.orders-gold"):
            await sink.setup([named("shop-orders", "gold")])  # the same index names as shop/orders-gold
        with pytest.raises(ConfigError, match="would share"):
            await sink.setup([named("a-b", "c"), named("a", "b-c")])
    finally:
        await sink.close()

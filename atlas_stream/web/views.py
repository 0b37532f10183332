"""JSON endpoints over the stats, event-log and source-status tables, gathered from every worker.

Each worker answers ``/_atlas/local/<kind>/`` with the partitions it actively owns; the public
endpoints add the other workers' parts (atlas_stream.web.peers) so that any worker gives the
whole picture. Discovered by the app (autodiscover), like agents/ and tables/.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import faust
from aiohttp import web as aioweb
from faust.sensors.metrics import performance_metrics
from prometheus_client import REGISTRY
from yarl import URL

from atlas_stream.app import app, catalog, settings
from tables.event_log import event_log
from tables.source_status import source_status
from tables.stats import failure_counts, last_seen, schema_drift, tier_counts, tier_counts_per_minute

from .events import newest_first, page
from .merge import by_partition, merge_partitions, owned_partitions
from .params import Param, parse_query
from .peers import LOCAL_PREFIX, fetch_all
from .prom import WorkerCollector
from .responses import NotFound, answer, json_errors, json_response
from .summary import STATS_TABLES, summarize, totals

STATS = dict(zip(STATS_TABLES, (tier_counts, tier_counts_per_minute, failure_counts, last_seen, schema_drift)))
KINDS: dict[str, Any] = {"stats": tier_counts, "events": event_log, "sources": source_status}

STATS_QUERY = {"minutes": Param("int", 15, 1, 120)}
EVENTS_QUERY = {"type": Param("str", "", high=400), "source": Param("str", None, high=200),
                "limit": Param("int", 50, 1, 500), "offset": Param("int", 0, 0, 10_000)}
LOCAL_EVENTS_QUERY = {"type": EVENTS_QUERY["type"], "source": EVENTS_QUERY["source"],
                      "keep": Param("int", 50, 1, 10_500)}


def _owned(table: Any) -> set[int]:
    try:
        assigned = app.assignor.assigned_actives()
    except Exception:  # noqa: BLE001  # not assigned yet
        return set()
    return owned_partitions(assigned, table.changelog_topic.get_topic_name())


def _recovering() -> bool:
    return bool(app.rebalancing or app.in_recovery)


def _types(raw: str) -> list[str]:
    return [t.strip() for t in raw.split(",") if t.strip()]


def _local(kind: str, query: dict[str, Any] | None = None) -> dict[str, Any]:
    """This worker's part of an answer: data per partition it owns."""
    owned = _owned(KINDS[kind])
    parts: dict[int, Any]
    if kind == "stats":
        parts = {p: {} for p in owned}
        for name, table in STATS.items():
            for p, items in by_partition(table.items(), owned).items():
                parts[p][name] = items
    elif kind == "events":
        q = query or {}
        parts = {}
        for p, items in by_partition(event_log.items(), owned).items():
            events, matched = newest_first(items.values(), _types(q.get("type", "")), q.get("source"),
                                           q.get("keep", 50))
            parts[p] = {"events": events, "matched": matched}
    else:
        parts = by_partition(source_status.items(), owned)
    return {"url": str(app.conf.canonical_url), "recovering": _recovering(),
            "partitions": {str(p): d for p, d in parts.items()}}


async def _gather(kind: str, local: dict[str, Any], query: str = "") -> tuple[dict[int, Any], dict[str, Any]]:
    remote = await fetch_all(app, f"/{kind}/", query)
    answers = [r for r in remote if "error" not in r]
    # Partitions are taken from workers that are not recovering first: their tables are whole.
    payloads = sorted([local, *answers], key=lambda p: bool(p.get("recovering")))
    claimed, missing = merge_partitions(payloads, settings.topic_partitions)
    recovering = sorted(str(p.get("url")) for p in payloads if p.get("recovering"))
    meta = {
        "complete": not missing and not recovering,
        "partitions": settings.topic_partitions,
        "missing_partitions": missing,
        "workers": sorted(str(p.get("url")) for p in payloads),
        "recovering": recovering,
        "unreachable": [{"url": r.get("url"), "error": r["error"]} for r in remote if "error" in r],
    }
    return claimed, meta


def _merged_tables(claimed: dict[int, Any]) -> dict[str, dict[str, Any]]:
    tables: dict[str, dict[str, Any]] = {name: {} for name in STATS_TABLES}
    for data in claimed.values():
        for name in STATS_TABLES:
            tables[name].update(data.get(name) or {})
    return tables


def _datasets() -> list[tuple[str, str]]:
    return [(rt.contract.group, rt.dataset.name) for rt in catalog.datasets]


@app.page(LOCAL_PREFIX + "/{kind}/")
class LocalPart(faust.web.View):  # type: ignore[misc]
    """This worker's partitions only (used by the other workers' public endpoints)."""

    @answer
    async def get(self, request: aioweb.Request, kind: str) -> aioweb.Response:
        if kind not in KINDS:
            raise NotFound(f"unknown kind {kind[:40]!r} (known: {', '.join(KINDS)})")
        query = parse_query(request.query, request.query_string, LOCAL_EVENTS_QUERY) if kind == "events" else None
        return json_response(_local(kind, query))


async def _stats(request: aioweb.Request) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    q = parse_query(request.query, request.query_string, STATS_QUERY)
    claimed, meta = await _gather("stats", _local("stats"))
    return summarize(_merged_tables(claimed), _datasets(), time.time(), q["minutes"]), meta


@app.page("/stats/")
class Stats(faust.web.View):  # type: ignore[misc]
    """Every dataset: totals per tier, recent one-minute windows, failures per check."""

    @answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        datasets, meta = await _stats(request)
        return json_response({"datasets": datasets, "totals": totals(datasets), **meta})


@app.page("/stats/{group}/{dataset}/")
class DatasetStats(faust.web.View):  # type: ignore[misc]
    """One dataset's statistics."""

    @answer
    async def get(self, request: aioweb.Request, group: str, dataset: str) -> aioweb.Response:
        if (group, dataset) not in _datasets():
            raise NotFound(f"unknown dataset {group[:100]}/{dataset[:100]}")
        datasets, meta = await _stats(request)
        return json_response({**next(d for d in datasets if (d["group"], d["dataset"]) == (group, dataset)),
                              **meta})


def _age(doc: dict[str, Any], now: float) -> float | None:
    try:
        return round(now - datetime.fromisoformat(str(doc.get("time"))).timestamp(), 3)
    except ValueError:
        return None


@app.page("/sources/")
class Sources(faust.web.View):  # type: ignore[misc]
    """The latest status of every source (state, last poll, rows, lag, last error)."""

    @answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        parse_query(request.query, request.query_string, {})
        claimed, meta = await _gather("sources", _local("sources"))
        now = time.time()
        docs = sorted((doc for part in claimed.values() for doc in part.values()), key=lambda d: d["source"])
        return json_response({"sources": [{**d, "age_seconds": _age(d, now)} for d in docs], **meta})


@app.page("/events/")
class Events(faust.web.View):  # type: ignore[misc]
    """The event log, newest first; ``type`` (comma-separated), ``source``, ``limit``, ``offset``."""

    @answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        q = parse_query(request.query, request.query_string, EVENTS_QUERY)
        keep = q["offset"] + q["limit"]
        local_q = {"type": q["type"], "source": q["source"], "keep": keep}
        forwarded = {k: str(v) for k, v in local_q.items() if v not in (None, "")}
        query = URL.build(query=forwarded).query_string
        claimed, meta = await _gather("events", _local("events", local_q), query)
        events, total = page(claimed.values(), q["offset"], q["limit"])
        return json_response({"events": events, "total": total, "limit": q["limit"], "offset": q["offset"],
                              "types": _types(q["type"]), "source": q["source"], **meta})


def _owned_sources() -> list[dict[str, Any]]:
    return [doc for part in by_partition(source_status.items(), _owned(source_status)).values()
            for doc in part.values()]


def _consumer_lag() -> dict[str, dict[int, int]]:
    lag = performance_metrics(app)["consumer"]["lag_by_partition"]
    return {str(t): {int(p): int(n) for p, n in parts.items()} for t, parts in lag.items()}


app.web.web_app.middlewares.append(json_errors)  # type: ignore[attr-defined]  # the aiohttp driver's
REGISTRY.register(WorkerCollector(_owned_sources, _consumer_lag))

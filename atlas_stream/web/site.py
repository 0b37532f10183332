"""``/metrics`` (Prometheus exposition) and the dashboard at ``/`` with its static assets."""

from __future__ import annotations

from pathlib import Path

import faust
from aiohttp import web as aioweb
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from atlas_stream.app import app

STATIC = Path(__file__).resolve().parent / "static"


@app.page("/metrics")
class Metrics(faust.web.View):  # type: ignore[misc]
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})


@app.page("/")
class Dashboard(faust.web.View):  # type: ignore[misc]
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        return aioweb.Response(body=(STATIC / "index.html").read_bytes(), content_type="text/html",
                               headers={"Cache-Control": "no-cache"})


app.web.add_static("/static/", STATIC)

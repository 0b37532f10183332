"""Baseline for bench/stream_throughput.py: raw topic -> one output topic, no logic at all."""

from __future__ import annotations

import os

import faust

from atlas_stream.app import faust_settings, log_at_the_chosen_level
from atlas_stream.settings import Settings

_conf = faust_settings(Settings.from_env())
_conf["autodiscover"] = False
_conf["origin"] = None
app = faust.App(os.environ.get("ATLAS_APP_ID", "bench-passthrough"), **_conf)
app.task(log_at_the_chosen_level)  # the same logging as the Atlas Stream worker
raw = app.topic("atlas.bench.events.raw", key_serializer="raw", value_serializer="raw",
                key_type=bytes, value_type=bytes)
out = app.topic("bench.passthrough.out", key_serializer="raw", value_serializer="raw",
                key_type=bytes, value_type=bytes)


@app.agent(raw)
async def pass_through(stream):  # type: ignore[no-untyped-def]
    async for event in stream.events():
        await out.send(key=event.key, value=event.value)


if __name__ == "__main__":
    app.main()

"""No secret in a log line, an event, a status report or a web answer: a worker whose
Elasticsearch URL holds a password keeps retrying an unreachable server, and everything it
wrote and answered is searched for the password."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
from pathlib import Path

from atlas_stream.devbroker import free_port
from atlas_stream.topics import EVENTS_TOPIC, SOURCE_STATUS_TOPIC

from .harness import Worker, read_to_end, worker_env
from .secrets_check import leaks, secret
from .web_client import base_url, call


def test_a_password_in_the_es_url_never_shows(kafka, metadata_dir: Path, tmp_path: Path) -> None:
    password = secret("es-Pa55-" + str(time.time_ns()))
    token = secret("admin-" + str(time.time_ns()))
    url = f"http://elastic:{password}@127.0.0.1:{free_port()}"  # nothing listens there
    env = worker_env(kafka.url, tmp_path, metadata_dir, "atlas-secrets", ATLAS_DEV_BROKER=kafka.kind,
                     ATLAS_WEB_PORT=str(free_port()), ATLAS_ES_URL=url, ATLAS_ADMIN_TOKEN=token)
    worker = Worker(env, tmp_path / "worker.log").start()
    try:
        deadline = time.monotonic() + 90
        while "(attempt 3); retrying" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.5)
        answers = []
        for path in ("/stats/", "/sources/", "/events/", "/metrics", "/"):
            try:
                answers.append(call(base_url(worker) + path)[1])
            except (urllib.error.URLError, OSError):
                pass  # the web server may not be up while the sink waits for Elasticsearch
    finally:
        worker.stop()
    assert "check that http://elastic:***@127.0.0.1:" in worker.log()  # the warning still says where
    events = asyncio.run(read_to_end(kafka.bootstrap, [EVENTS_TOPIC, SOURCE_STATUS_TOPIC]))
    for text in [worker.log(), *(a if isinstance(a, str) else json.dumps(a) for a in answers),
                 *(bytes(m.value or b"").decode(errors="replace") for m in events)]:
        assert password not in text and token not in text
    assert leaks(tmp_path) == []

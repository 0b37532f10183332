"""A tiny HTTP client for the workers' web endpoints (standard library only)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any, Callable

from .harness import Worker


def base_url(worker: Worker) -> str:
    return f"http://127.0.0.1:{worker.env['ATLAS_WEB_PORT']}"


def call(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, Any]:
    """(status, parsed JSON body or text) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, ctype = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    if "json" in ctype:
        return status, json.loads(raw)
    return status, raw.decode(errors="replace")


def get(url: str) -> Any:
    status, body = call(url)
    assert status == 200, (url, status, body)
    return body


def tier_counts(url: str) -> dict[str, int]:
    """The non-zero tier counts of a ``/stats/<group>/<dataset>/`` answer."""
    return {tier: n for tier, n in get(url)["tiers"].items() if n}


def wait_for(url: str, ready: Callable[[Any], bool], timeout: float = 90.0) -> Any:
    """GET ``url`` until ``ready(body)``; the last body is in the assertion message on timeout."""
    deadline = time.monotonic() + timeout
    body: Any = None
    while time.monotonic() < deadline:
        status, body = call(url)
        if status == 200 and ready(body):
            return body
        time.sleep(0.5)
    raise AssertionError(f"{url} not ready after {timeout}s; last answer: {str(body)[:3000]}")

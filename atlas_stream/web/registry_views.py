"""``/schemas/``: the schema registry in the shape of Confluent Schema Registry's REST API.

The registry is a GlobalTable, so every worker holds every subject and answers alone. A
compatibility change (``PUT /schemas/config/<subject>``) is a request on atlas.schemas.requests,
applied by the registry agent (tables are written only inside stream iteration).
"""

from __future__ import annotations

import asyncio
import hmac
from typing import Any

import faust
from aiohttp import web as aioweb

from atlas_stream.app import app, settings
from atlas_stream.channels import schema_requests
from atlas_stream.messages import encode
from atlas_stream.registry import get_version
from tables.registry import schema_registry

from .params import BadRequest, Param, parse_query
from .responses import Unauthorized, answer, json_response
from .schemas import (
    MAX_BODY_BYTES,
    ApiError,
    compatibility_answer,
    config_answer,
    diff_versions,
    parse_candidate,
    parse_mode,
    parse_version,
    subject_not_found,
    version_answer,
    versions_answer,
)

#: How long a PUT waits for its change to reach this worker's copy of the registry.
APPLY_WAIT = 10.0
MAX_SUBJECT = 249  # a Kafka topic name's limit


def _state(subject: str) -> dict[str, Any] | None:
    if len(subject) > MAX_SUBJECT:
        raise subject_not_found(subject)
    state = schema_registry.get(subject)
    return state if isinstance(state, dict) else None


def _subjects() -> list[str]:
    return sorted(k for k, v in schema_registry.items() if v)


async def _body(request: aioweb.Request) -> bytes:
    """The request body, read no further than one byte past the limit (parse_* refuse it then)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    while size <= MAX_BODY_BYTES:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _check_token(request: aioweb.Request) -> None:
    token = settings.admin_token
    if not token:
        raise Unauthorized("writes are disabled: set ATLAS_ADMIN_TOKEN on the workers to allow them")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong token: send 'Authorization: Bearer <ATLAS_ADMIN_TOKEN>'")


@app.page("/schemas/")
class Overview(faust.web.View):  # type: ignore[misc]
    """Every subject with its mode and versions (not in Confluent's API: for the dashboard)."""

    @answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        parse_query(request.query, request.query_string, {})
        out = []
        for subject in _subjects():
            state = _state(subject) or {}
            versions = state.get("versions", [])
            out.append({"subject": subject, "compatibility": state.get("compatibility"),
                        "versions": [v["version"] for v in versions],
                        "latest": versions[-1] if versions else None})
        return json_response({"subjects": out})


@app.page("/schemas/subjects")
class Subjects(faust.web.View):  # type: ignore[misc]
    @answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        parse_query(request.query, request.query_string, {})
        return json_response(_subjects())


@app.page("/schemas/subjects/{subject}/versions")
class Versions(faust.web.View):  # type: ignore[misc]
    @answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        return json_response(versions_answer(_state(subject), subject))


@app.page("/schemas/subjects/{subject}/versions/{version}")
class Version(faust.web.View):  # type: ignore[misc]
    @answer
    async def get(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        return json_response(version_answer(_state(subject), subject, parse_version(version)))


DIFF_QUERY = {"from": Param("str", None, high=12), "to": Param("str", "latest", high=12)}


@app.page("/schemas/subjects/{subject}/diff")
class Diff(faust.web.View):  # type: ignore[misc]
    """Field changes between two versions (``?from=1&to=latest``; from defaults to to - 1)."""

    @answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        q = parse_query(request.query, request.query_string, DIFF_QUERY)
        state = _state(subject)
        if not state:
            raise subject_not_found(subject)
        new = get_version(state, parse_version(q["to"]))
        if new is None:
            raise ApiError(404, 40402, f"Version {q['to']} not found.")
        old_v = parse_version(q["from"]) if q["from"] else max(1, new["version"] - 1)
        old = get_version(state, old_v)
        if old is None:
            raise ApiError(404, 40402, f"Version {old_v} not found.")
        return json_response({"subject": subject, "from": old["version"], "to": new["version"],
                              "changes": diff_versions(old["schema"], new["schema"])})


@app.page("/schemas/compatibility/subjects/{subject}/versions/{version}")
class Compatibility(faust.web.View):  # type: ignore[misc]
    """Is the candidate in the body (``{"schema": ...}``) compatible under the subject's mode?"""

    @answer
    async def post(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        state = _state(subject)
        if not state:
            raise subject_not_found(subject)
        v = parse_version(version)
        candidate = parse_candidate(await _body(request))
        return json_response(compatibility_answer(state, subject, v, candidate))


@app.page("/schemas/config/{subject}")
class Config(faust.web.View):  # type: ignore[misc]
    """GET the subject's compatibility mode; PUT ``{"compatibility": "FULL"}`` (needs the token)."""

    @answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        return json_response(config_answer(_state(subject), subject))

    @answer
    async def put(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        _check_token(request)
        if not _state(subject):
            raise subject_not_found(subject)
        mode = parse_mode(await _body(request))
        await schema_requests.send(key=subject.encode(), value=encode(
            {"subject": subject, "action": "config", "compatibility": mode}))
        applied = False
        for _ in range(int(APPLY_WAIT / 0.1)):
            if (_state(subject) or {}).get("compatibility") == mode:
                applied = True
                break
            await asyncio.sleep(0.1)
        return json_response({"compatibility": mode, "applied": applied})

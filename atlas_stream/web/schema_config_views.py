"""``/schemas/config`` and ``/schemas/mode``: compatibility modes and the read-only mode, in
Confluent Schema Registry's REST API.

A compatibility change (``PUT /schemas/config[/<subject>]``, admin token) is a request on
atlas.schemas.requests, applied by the registry agent (tables are written only inside stream
iteration); the answer waits until this worker's copy of the registry shows it.
"""

from __future__ import annotations

import asyncio
import hmac

from aiohttp import web as aioweb

from atlas_stream.app import app, settings
from atlas_stream.channels import schema_requests
from atlas_stream.messages import encode
from atlas_stream.schema_registry import CONFIG_KEY
from tables.schemas import schema_registry

from .schema_views import (
    RegistryView,
    flag,
    global_mode,
    known_query,
    read_body,
    subject_state,
)
from .responses import Unauthorized, registry_answer, registry_response
from .schemas import config_answer, parse_mode, read_only, subject_not_found

#: How long a PUT waits for its change to reach this worker's copy of the registry.
APPLY_WAIT = 10.0


def _check_token(request: aioweb.Request) -> None:
    token = settings.admin_token
    if not token:
        raise Unauthorized("writes are disabled: set ATLAS_ADMIN_TOKEN on the workers to allow them")
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise Unauthorized("missing or wrong token: send 'Authorization: Bearer <ATLAS_ADMIN_TOKEN>'")


async def _set_mode(request: aioweb.Request, key: str) -> aioweb.Response:
    """Send the change (the token is checked) to the registry agent; wait until this worker's
    copy of the registry shows it."""
    mode = parse_mode(await read_body(request))
    await schema_requests.send(key=key.encode(), value=encode({"subject": key, "action": "config",
                                                               "compatibility": mode}))
    applied = False
    for _ in range(int(APPLY_WAIT / 0.1)):
        if (schema_registry.get(key) or {}).get("compatibility") == mode:
            applied = True
            break
        await asyncio.sleep(0.1)
    return registry_response({"compatibility": mode, "applied": applied})


@app.page("/schemas/config")
class GlobalConfig(RegistryView):
    """The global mode: subjects without their own follow it. PUT needs the admin token."""

    @registry_answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        return registry_response({"compatibilityLevel": global_mode()})

    @registry_answer
    async def put(self, request: aioweb.Request) -> aioweb.Response:
        _check_token(request)
        return await _set_mode(request, CONFIG_KEY)


@app.page("/schemas/config/{subject}")
class Config(RegistryView):
    """GET the subject's mode (``defaultToGlobal=true``: the global one if it has none);
    PUT ``{"compatibility": "FULL"}`` (needs the token)."""

    @registry_answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        to_global = flag(known_query(request, "defaultToGlobal"), "defaultToGlobal")
        return registry_response(config_answer(subject_state(subject), subject, global_mode(), to_global))

    @registry_answer
    async def put(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        _check_token(request)
        if not subject_state(subject):
            raise subject_not_found(subject)
        return await _set_mode(request, subject)


@app.page("/schemas/mode")
class GlobalMode(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        return registry_response({"mode": "READONLY"})

    @registry_answer
    async def put(self, request: aioweb.Request) -> aioweb.Response:
        raise read_only(None)


@app.page("/schemas/mode/{subject}")
class SubjectMode(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        if not subject_state(subject):
            raise subject_not_found(subject)
        return registry_response({"mode": "READONLY"})

    @registry_answer
    async def put(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        raise read_only(subject)

"""``/schemas/``: the schema registry, speaking Confluent Schema Registry's REST API.

Point a Confluent client at ``http://HOST:6066/schemas``. The registry is a GlobalTable, so every
worker holds every subject and schema id and answers alone. It is read-only (Confluent's
READONLY mode): schemas come from the contracts. Compatibility modes are in
schema_config_views.
"""

from __future__ import annotations

from typing import Any

import faust
from aiohttp import web as aioweb

from atlas_stream.app import app
from atlas_stream.schema_registry import (
    CONFIG_KEY,
    DEFAULT_MODE,
    effective_mode,
    get_version,
    is_subject,
)
from tables.schemas import schema_registry

from .params import Param, known_params, parse_query
from .responses import answer, json_response, registry_answer, registry_response
from .schemas import (
    MAX_BODY_BYTES,
    ApiError,
    SchemaIndex,
    compatibility_answer,
    diff_versions,
    features_answer,
    lookup_answer,
    parse_candidate,
    parse_id,
    parse_version,
    read_only,
    schema_answer,
    subject_not_found,
    version_answer,
    versions_answer,
)

MAX_SUBJECT = 249  # a Kafka topic name's limit
LIST_PARAMS = ("deleted", "deletedOnly", "deleted_only", "offset", "limit")


def subject_state(subject: str) -> dict[str, Any] | None:
    if len(subject) > MAX_SUBJECT or not is_subject(subject):
        raise subject_not_found(subject)
    state = schema_registry.get(subject)
    return state if isinstance(state, dict) else None


def _subjects() -> list[str]:
    return sorted(k for k, v in schema_registry.items() if v and is_subject(k))


def global_mode() -> str:
    return effective_mode(schema_registry.get(CONFIG_KEY), DEFAULT_MODE)


def _index() -> SchemaIndex:
    return SchemaIndex.build(schema_registry.items())


def known_query(request: aioweb.Request, *names: str) -> dict[str, str]:
    return known_params(request.query, request.query_string, names)


def flag(q: dict[str, str], name: str) -> bool:
    return q.get(name, "").lower() == "true"  # as Java's Boolean.valueOf reads it


def _page(items: list[Any], q: dict[str, str]) -> list[Any]:
    """Confluent's ``offset``/``limit`` (-1: no limit) and ``deletedOnly`` (nothing is ever deleted)."""
    if flag(q, "deletedOnly") or flag(q, "deleted_only"):
        return []
    try:
        offset, limit = int(q.get("offset", "0")), int(q.get("limit", "-1"))
    except ValueError:
        raise ApiError(400, 400, "offset and limit must be whole numbers") from None
    items = items[max(offset, 0):]
    return items[:limit] if limit >= 0 else items


async def read_body(request: aioweb.Request) -> bytes:
    """The request body, read no further than one byte past the limit (parse_* refuse it then)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise ApiError(413, 413, f"request body larger than {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    while size <= MAX_BODY_BYTES:
        chunk = await request.content.read(64 * 1024)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


class RegistryView(faust.web.View):  # type: ignore[misc]
    """A view of Confluent's API: methods it lacks answer 405 with Confluent's error body."""

    async def on_request_error(self, request: Any, exc: Any) -> Any:
        return registry_response({"error_code": exc.code, "message": str(exc.detail)}, exc.code)


@app.page("/schemas/")
class Overview(faust.web.View):  # type: ignore[misc]
    """Every subject with its mode and versions (not in Confluent's API: for the dashboard)."""

    @answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        parse_query(request.query, request.query_string, {})
        out, default = [], global_mode()
        for subject in _subjects():
            state = subject_state(subject) or {}
            versions = state.get("versions", [])
            out.append({"subject": subject, "compatibility": effective_mode(state, default),
                        "versions": [v["version"] for v in versions],
                        "latest": versions[-1] if versions else None})
        return json_response({"subjects": out, "compatibility": default})


@app.page("/schemas/subjects")
class Subjects(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        q = known_query(request, "subjectPrefix", *LIST_PARAMS)
        prefix = q.get("subjectPrefix", "")
        return registry_response(_page([s for s in _subjects() if s.startswith(prefix)], q))


@app.page("/schemas/subjects/{subject}")
class Subject(RegistryView):
    """POST: is this schema registered under the subject (and as which version)?"""

    @registry_answer
    async def post(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        state = subject_state(subject)
        text, _ = parse_candidate(await read_body(request))
        return registry_response(lookup_answer(state, subject, text, _index()))

    @registry_answer
    async def delete(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        raise read_only(subject)


@app.page("/schemas/subjects/{subject}/versions")
class Versions(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        return registry_response(_page(versions_answer(subject_state(subject), subject), known_query(request, *LIST_PARAMS)))

    @registry_answer
    async def post(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        raise read_only(subject)


@app.page("/schemas/subjects/{subject}/versions/{version}")
class Version(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        return registry_response(version_answer(subject_state(subject), subject, parse_version(version), _index()))

    @registry_answer
    async def delete(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        raise read_only(subject)


@app.page("/schemas/subjects/{subject}/versions/{version}/schema")
class VersionSchema(RegistryView):
    """The version's JSON Schema document alone."""

    @registry_answer
    async def get(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        answer_ = version_answer(subject_state(subject), subject, parse_version(version), _index())
        return registry_response(answer_["schema"])


@app.page("/schemas/subjects/{subject}/versions/{version}/referencedby")
class ReferencedBy(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        version_answer(subject_state(subject), subject, parse_version(version), _index())
        return registry_response([])  # documents never reference each other


@app.page("/schemas/subjects/{subject}/versions/{version}/features")
class Features(RegistryView):
    """Not in Confluent's API: the feature list, as the contract states it (for the dashboard)."""

    @registry_answer
    async def get(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        return registry_response(features_answer(subject_state(subject), subject, parse_version(version)))


DIFF_QUERY = {"from": Param("str", None, high=12), "to": Param("str", "latest", high=12)}


@app.page("/schemas/subjects/{subject}/diff")
class Diff(RegistryView):
    """Field changes between two versions (``?from=1&to=latest``; from defaults to to - 1)."""

    @registry_answer
    async def get(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        q = parse_query(request.query, request.query_string, DIFF_QUERY)
        state = subject_state(subject)
        if not state:
            raise subject_not_found(subject)
        new = get_version(state, parse_version(q["to"]))
        if new is None:
            raise ApiError(404, 40402, f"Version {q['to']} not found.")
        old_v = parse_version(q["from"]) if q["from"] else max(1, new["version"] - 1)
        old = get_version(state, old_v)
        if old is None:
            raise ApiError(404, 40402, f"Version {old_v} not found.")
        return registry_response({"subject": subject, "from": old["version"], "to": new["version"],
                                  "changes": diff_versions(old["schema"], new["schema"])})


@app.page("/schemas/schemas/types")
class Types(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request) -> aioweb.Response:
        return registry_response(["JSON"])


@app.page("/schemas/schemas/ids/{schema_id}")
class SchemaById(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, schema_id: str) -> aioweb.Response:
        q = known_query(request, "subject", "format", "fetchMaxId", "reference_format")
        return registry_response(schema_answer(_index(), parse_id(schema_id), flag(q, "fetchMaxId")))


@app.page("/schemas/schemas/ids/{schema_id}/schema")
class SchemaTextById(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, schema_id: str) -> aioweb.Response:
        return registry_response(schema_answer(_index(), parse_id(schema_id))["schema"])


def _uses(request: aioweb.Request, schema_id: str) -> list[tuple[str, int]]:
    q = known_query(request, "subject", *LIST_PARAMS)
    index = _index()
    sid = parse_id(schema_id)
    index.get(sid)
    return _page([u for u in index.uses[sid] if q.get("subject") in (None, u[0])], q)


@app.page("/schemas/schemas/ids/{schema_id}/subjects")
class SchemaSubjects(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, schema_id: str) -> aioweb.Response:
        return registry_response(sorted({s for s, _ in _uses(request, schema_id)}))


@app.page("/schemas/schemas/ids/{schema_id}/versions")
class SchemaVersions(RegistryView):
    @registry_answer
    async def get(self, request: aioweb.Request, schema_id: str) -> aioweb.Response:
        return registry_response([{"subject": s, "version": v} for s, v in _uses(request, schema_id)])


async def _compatibility(request: aioweb.Request, subject: str, version: int | str | None) -> aioweb.Response:
    state = subject_state(subject)
    verbose = flag(known_query(request, "normalize", "verbose"), "verbose")
    _, candidate = parse_candidate(await read_body(request))
    return registry_response(compatibility_answer(state, subject, version, candidate, global_mode(), verbose))


@app.page("/schemas/compatibility/subjects/{subject}/versions/{version}")
class Compatibility(RegistryView):
    """Is the candidate JSON Schema compatible with this version under the subject's mode?"""

    @registry_answer
    async def post(self, request: aioweb.Request, subject: str, version: str) -> aioweb.Response:
        return await _compatibility(request, subject, parse_version(version))


@app.page("/schemas/compatibility/subjects/{subject}/versions")
class CompatibilityAll(RegistryView):
    """Is the candidate compatible with the versions registration would check it against?"""

    @registry_answer
    async def post(self, request: aioweb.Request, subject: str) -> aioweb.Response:
        return await _compatibility(request, subject, None)

"""Schema-registry answers in the shape of Confluent's REST API, and version diffs (pure).

Differences from Confluent, kept on purpose: ``id`` is the schema's sha256 fingerprint (a
string) rather than a global integer, ``schemaType`` is ``"ATLAS"`` (a list of feature dicts,
serialised as a JSON string in ``schema`` as Confluent does), and errors carry ``error`` next
to Confluent's ``error_code``/``message``.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from ..registry import check_compatibility, get_version, normalise_mode
from .params import BadRequest

__all__ = [
    "MAX_BODY_BYTES",
    "ApiError",
    "compatibility_answer",
    "config_answer",
    "diff_versions",
    "parse_candidate",
    "parse_mode",
    "parse_version",
    "version_answer",
    "versions_answer",
]

#: Largest request body accepted by the schema endpoints.
MAX_BODY_BYTES = 256 * 1024


class ApiError(Exception):
    """An error answer: HTTP status, Confluent error code and message."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": self.message, "error": self.message}


def subject_not_found(subject: str) -> ApiError:
    return ApiError(404, 40401, f"Subject '{subject[:200]}' not found.")


def parse_version(raw: str) -> int | str:
    """``latest`` or a positive version number; 422-style 400 otherwise."""
    if raw == "latest":
        return raw
    if raw.isdigit() and len(raw) <= 9 and int(raw) > 0:
        return int(raw)
    raise ApiError(400, 42202, f"The specified version '{raw[:40]}' is not a valid version id; "
                   "use a positive integer or 'latest'.")


def versions_answer(state: Mapping[str, Any] | None, subject: str) -> list[int]:
    if not state:
        raise subject_not_found(subject)
    return [v["version"] for v in state.get("versions", [])]


def version_answer(state: Mapping[str, Any] | None, subject: str, version: int | str) -> dict[str, Any]:
    if not state:
        raise subject_not_found(subject)
    entry = get_version(state, version)
    if entry is None:
        raise ApiError(404, 40402, f"Version {version} not found.")
    return {
        "subject": subject,
        "version": entry["version"],
        "id": entry["id"],
        "schemaType": "ATLAS",
        "schema": json.dumps(entry["schema"], separators=(",", ":")),
        "registered_at": entry.get("registered_at"),
    }


def config_answer(state: Mapping[str, Any] | None, subject: str) -> dict[str, str]:
    if not state:
        raise subject_not_found(subject)
    return {"compatibilityLevel": state.get("compatibility", "BACKWARD")}


def _json_body(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadRequest("request body must be a JSON object")
    return doc


def parse_candidate(body: bytes) -> list[dict[str, Any]]:
    """``{"schema": <list of features, or that list as a JSON string>}`` -> the feature list."""
    doc = _json_body(body)
    if "schema" not in doc:
        raise BadRequest('request body needs a "schema" field (a list of features or its JSON text)')
    schema = doc["schema"]
    if isinstance(schema, str):
        try:
            schema = json.loads(schema)
        except ValueError as exc:
            raise BadRequest(f'"schema" is a string but not JSON: {exc}') from None
    if not isinstance(schema, list) or not schema:
        raise BadRequest('"schema" must be a non-empty list of features')
    for i, f in enumerate(schema):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not isinstance(f.get("dtype"), str):
            raise BadRequest(f'"schema"[{i}] must be an object with string "name" and "dtype"')
    return schema


def parse_mode(body: bytes) -> str:
    """``{"compatibility": "FULL"}`` -> the normalised mode."""
    doc = _json_body(body)
    mode = doc.get("compatibility")
    if not isinstance(mode, str):
        raise BadRequest('request body needs a "compatibility" string')
    try:
        return normalise_mode(mode)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def compatibility_answer(state: Mapping[str, Any] | None, subject: str, version: int | str,
                         candidate: list[dict[str, Any]]) -> dict[str, Any]:
    """Would ``candidate`` be accepted after ``version`` under the subject's mode?"""
    if not state:
        raise subject_not_found(subject)
    entry = get_version(state, version)
    if entry is None:
        raise ApiError(404, 40402, f"Version {version} not found.")
    previous = [v["schema"] for v in state["versions"] if v["version"] <= entry["version"]]
    mode = state.get("compatibility", "BACKWARD")
    problems = check_compatibility(candidate, previous, mode)
    return {"is_compatible": not problems, "messages": problems, "compatibility": mode}


def diff_versions(old: list[Mapping[str, Any]], new: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Field-level differences: added, removed, and changed attributes (dtype, required, ...)."""
    before = {f["name"]: f for f in old}
    after = {f["name"]: f for f in new}
    out: list[dict[str, Any]] = []
    for name, f in after.items():
        if name not in before:
            out.append({"field": name, "change": "added", "new": dict(f)})
            continue
        b = before[name]
        for attr in sorted(set(b) | set(f)):
            if attr != "name" and b.get(attr) != f.get(attr):
                out.append({"field": name, "change": "changed", "attribute": attr,
                            "old": b.get(attr), "new": f.get(attr)})
    out += [{"field": n, "change": "removed", "old": dict(f)} for n, f in before.items() if n not in after]
    return out

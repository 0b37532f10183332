"""Schema-registry answers exactly as Confluent Schema Registry's REST API gives them (pure).

Schemas are JSON Schema documents (``schemaType: "JSON"``) generated from each version's
features (atlas_stream.schema_json). A schema id is an integer given once, at registration, and
stored with the version in the registry table (atlas_stream.schema_registry.register): the same
schema (same features) has the same id under every subject, ids never change, and every worker
reads them from the same table. The registry is read-only, as Confluent's READONLY mode:
schemas come from the data contracts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import RequestError
from ..schema_registry import (
    MODES,
    check_compatibility,
    effective_mode,
    get_version,
    is_subject,
    normalise_mode,
)
from ..schema_json import document_text, parse_document

__all__ = [
    "CONTENT_TYPE",
    "MAX_BODY_BYTES",
    "ApiError",
    "SchemaIndex",
    "compatibility_answer",
    "config_answer",
    "diff_versions",
    "features_answer",
    "lookup_answer",
    "parse_candidate",
    "parse_id",
    "parse_mode",
    "parse_version",
    "read_only",
    "schema_answer",
    "subject_not_found",
    "version_answer",
    "versions_answer",
]

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: Largest request body accepted by the schema endpoints.
MAX_BODY_BYTES = 256 * 1024
_MAX_VERSION = 2**31 - 1


class ApiError(RequestError):
    """An error answer: HTTP status and Confluent's body ``{"error_code": ..., "message": ...}``."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": self.message}


def subject_not_found(subject: str) -> ApiError:
    return ApiError(404, 40401, f"Subject '{subject[:200]}' not found.")


def _version_not_found(version: int | str) -> ApiError:
    return ApiError(404, 40402, f"Version {version} not found.")


def read_only(subject: str | None) -> ApiError:
    """Confluent's answer to a write in READONLY mode, saying where schemas come from."""
    what = f"Subject {subject[:200]}" if subject is not None else "The schema registry"
    return ApiError(422, 42205, f"{what} is in read-only mode: Atlas Stream registers schemas from the "
                    "data contracts; change the dataset's features in its contract (metadata/*.json) "
                    "and restart the workers")


def parse_version(raw: str) -> int | str:
    """``latest`` (or ``-1``, as Confluent reads it) or a version from 1 to 2^31-1; 42202 otherwise."""
    if raw in ("latest", "-1"):
        return "latest"
    if raw.isdigit() and len(raw) <= 10 and 0 < int(raw) <= _MAX_VERSION:
        return int(raw)
    raise ApiError(422, 42202, f"The specified version '{raw[:40]}' is not a valid version id. Allowed values "
                   f"are between [1, {_MAX_VERSION}] and the string \"latest\"")


def parse_id(raw: str) -> int:
    """A schema id from the path; anything that is not one is an unknown schema (40403)."""
    if raw.isdigit() and len(raw) <= 10:
        return int(raw)
    raise ApiError(404, 40403, f"Schema {raw[:40]} not found")


@dataclass
class SchemaIndex:
    """Every schema id of the registry: its features and the subject-versions that use it."""

    features: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    fingerprints: dict[int, str] = field(default_factory=dict)
    uses: dict[int, list[tuple[str, int]]] = field(default_factory=dict)

    @classmethod
    def build(cls, items: Iterable[tuple[Any, Any]]) -> SchemaIndex:
        index = cls()
        for subject, state in sorted((k, v) for k, v in items if is_subject(k) and isinstance(v, dict)):
            for entry in state.get("versions", []):
                sid = entry.get("schema_id")
                if isinstance(sid, int):
                    index.features.setdefault(sid, entry["schema"])
                    index.fingerprints.setdefault(sid, entry["id"])
                    index.uses.setdefault(sid, []).append((subject, entry["version"]))
        return index

    def get(self, schema_id: int) -> list[dict[str, Any]]:
        if schema_id not in self.features:
            raise ApiError(404, 40403, f"Schema {schema_id} not found")
        return self.features[schema_id]

    def metadata(self, schema_id: int) -> dict[str, Any]:
        """Confluent schema metadata: the feature list and fingerprint behind the document."""
        return {"properties": {"atlas.features": json.dumps(self.get(schema_id), separators=(",", ":")),
                               "atlas.fingerprint": self.fingerprints[schema_id]}}


def _entry(state: Mapping[str, Any] | None, subject: str, version: int | str) -> dict[str, Any]:
    if not state:
        raise subject_not_found(subject)
    entry = get_version(state, version)
    if entry is None:
        raise _version_not_found(version)
    if not isinstance(entry.get("schema_id"), int):  # stored before ids; the agent gives one at startup
        raise ApiError(404, 40403, f"Schema of version {entry['version']} has no id yet; try again shortly")
    return entry


def versions_answer(state: Mapping[str, Any] | None, subject: str) -> list[int]:
    if not state:
        raise subject_not_found(subject)
    return [v["version"] for v in state.get("versions", [])]


def version_answer(state: Mapping[str, Any] | None, subject: str, version: int | str,
                   index: SchemaIndex) -> dict[str, Any]:
    """GET /subjects/{subject}/versions/{version}."""
    entry = _entry(state, subject, version)
    return {"subject": subject, "version": entry["version"], "id": entry["schema_id"], "schemaType": "JSON",
            "schema": document_text(entry["schema"]), "metadata": index.metadata(entry["schema_id"])}


def features_answer(state: Mapping[str, Any] | None, subject: str, version: int | str) -> dict[str, Any]:
    """Not in Confluent's API: the version's feature list as the contract states it."""
    entry = _entry(state, subject, version)
    return {"subject": subject, "version": entry["version"], "id": entry["schema_id"],
            "fingerprint": entry["id"], "registered_at": entry.get("registered_at"), "features": entry["schema"]}


def schema_answer(index: SchemaIndex, schema_id: int, max_id: bool = False) -> dict[str, Any]:
    """GET /schemas/ids/{id} (``fetchMaxId`` adds ``maxId``)."""
    out: dict[str, Any] = {"schemaType": "JSON", "schema": document_text(index.get(schema_id)),
                           "metadata": index.metadata(schema_id)}
    if max_id:
        out["maxId"] = max(index.features)
    return out


def config_answer(state: Mapping[str, Any] | None, subject: str, global_mode: str,
                  default_to_global: bool) -> dict[str, str]:
    """GET /config/{subject}: its own mode; the global one only with ``defaultToGlobal``."""
    if not state:
        raise subject_not_found(subject)
    if "compatibility" in state or default_to_global:
        return {"compatibilityLevel": effective_mode(state, global_mode)}
    raise ApiError(404, 40408, f"Subject '{subject[:200]}' does not have subject-level compatibility configured")


def _json_body(body: bytes) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, 413, f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ApiError(400, 400, f"request body is not valid JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise ApiError(422, 422, "request body must be a JSON object")
    return doc


def parse_candidate(body: bytes) -> tuple[str, list[dict[str, Any]]]:
    """``{"schema": "<JSON Schema text>", "schemaType": "JSON"}`` -> (parsed text, features)."""
    doc = _json_body(body)
    schema_type = doc.get("schemaType", "AVRO")  # Confluent's default when absent
    if schema_type != "JSON":
        raise ApiError(422, 42201, f"Invalid schema type {str(schema_type)[:40]}: this registry serves "
                       'JSON Schema only; send "schemaType": "JSON"')
    if doc.get("references"):
        raise ApiError(422, 42201, "Invalid schema: schema references are not supported")
    text = doc.get("schema")
    if not isinstance(text, str):
        raise ApiError(422, 42201, 'Invalid schema: the body needs "schema", the JSON Schema document as a string')
    try:
        return text, parse_document(text)
    except ValueError as exc:
        raise ApiError(422, 42201, f"Invalid schema: {exc}") from None


def parse_mode(body: bytes) -> str:
    """``{"compatibility": "FULL"}`` (or ``compatibilityLevel``) -> the mode (42203 when unknown)."""
    doc = _json_body(body)
    mode = doc.get("compatibility", doc.get("compatibilityLevel"))
    try:
        return normalise_mode(mode if isinstance(mode, str) else "")
    except ValueError:
        raise ApiError(422, 42203, "Invalid compatibility level. Valid values are "
                       + ", ".join(m.lower() for m in MODES)) from None


def lookup_answer(state: Mapping[str, Any] | None, subject: str, text: str, index: SchemaIndex) -> dict[str, Any]:
    """POST /subjects/{subject}: the version whose document equals the candidate (as JSON values:
    key order and whitespace do not matter), else 40403."""
    if not state:
        raise subject_not_found(subject)
    wanted = json.loads(text)
    for entry in reversed(state.get("versions", [])):
        if isinstance(entry.get("schema_id"), int) and json.loads(document_text(entry["schema"])) == wanted:
            return version_answer(state, subject, entry["version"], index)
    raise ApiError(404, 40403, "Schema not found")


def compatibility_answer(state: Mapping[str, Any] | None, subject: str, version: int | str | None,
                         candidate: list[dict[str, Any]], global_mode: str, verbose: bool) -> dict[str, Any]:
    """Would ``candidate`` follow under the subject's mode? Against one version (``version``),
    or, when None, against every version as registration checks it (Confluent's two endpoints)."""
    if not state:
        raise subject_not_found(subject)
    if version is None:
        previous, first = [v["schema"] for v in state.get("versions", [])], 1
    else:
        entry = get_version(state, version)
        if entry is None:
            raise _version_not_found(version)
        previous, first = [entry["schema"]], entry["version"]
    problems = check_compatibility(candidate, previous, effective_mode(state, global_mode), first)
    return {"is_compatible": not problems, **({"messages": problems} if verbose else {})}


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

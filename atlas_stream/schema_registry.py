"""Schema-registry rules with Confluent semantics, on plain JSON-able state (no Faust, no I/O)."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable, Mapping, Sequence, Union

from .model import DType, Feature, parse_dtype

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_MODE",
    "MODES",
    "RegistrationResult",
    "assign_schema_ids",
    "can_read",
    "check_compatibility",
    "effective_mode",
    "fingerprint",
    "get_version",
    "is_subject",
    "latest",
    "normalise_mode",
    "register",
    "schema_ids",
    "set_compatibility",
]

#: Compatibility modes, as in the Confluent Schema Registry.
MODES: tuple[str, ...] = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
DEFAULT_MODE = "BACKWARD"
#: Registry-table key of the global config (``{"compatibility": MODE}``). Subjects are
#: ``<group>.<dataset>`` and always hold a dot, so this key never names one.
CONFIG_KEY = "__config__"

#: A schema: canonical feature dicts (``Feature.to_dict()`` form), in field order.
Schema = list[dict[str, Any]]
SchemaLike = Sequence[Union[Mapping[str, Any], Feature]]

#: Widening promotions writer dtype -> reader dtypes (decimals are handled apart).
_PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"bigint", "float", "double"}),
    "bigint": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
}
#: Digits needed left of the decimal point to hold any 64-bit integer.
_INT_DIGITS = 19


@dataclass(frozen=True)
class RegistrationResult:
    """What :func:`register` decided. ``state`` is the subject state to store (the input state,
    untouched, when ``outcome`` is "refused"); ``version`` is the schema's version number, or
    the latest version in force when refused."""

    state: dict[str, Any]
    outcome: str
    version: int
    problems: list[str] = field(default_factory=list)


def normalise_mode(mode: str) -> str:
    """Upper-case a compatibility mode; ValueError naming the valid modes if it is unknown."""
    spelled = mode.strip().upper() if isinstance(mode, str) else mode
    if spelled not in MODES:
        raise ValueError(f"unknown compatibility mode {mode!r} (valid: {', '.join(MODES)})")
    return spelled


def _schema(schema: SchemaLike) -> Schema:
    """Copy a schema into canonical dicts (Feature objects are converted with ``to_dict``)."""
    return [f.to_dict() if isinstance(f, Feature) else copy.deepcopy(dict(f)) for f in schema]


def fingerprint(schema: SchemaLike) -> str:
    """sha256 (hex) of the schema's canonical JSON: sorted keys, no whitespace, field order kept."""
    text = json.dumps(_schema(schema), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _dtype(text: str) -> DType | None:
    try:
        return parse_dtype(text)
    except ValueError:
        return None


def _promotable(writer: str, reader: str) -> bool:
    """Can a value written as ``writer`` be read as ``reader`` without loss?"""
    w, r = _dtype(writer), _dtype(reader)
    if w is None or r is None:
        return writer == reader
    if w == r:
        return True
    if r.name == "decimal":
        assert r.precision is not None and r.scale is not None
        if w.name == "decimal":
            assert w.precision is not None and w.scale is not None
            return r.scale >= w.scale and r.precision - r.scale >= w.precision - w.scale
        return w.name in ("int", "bigint") and r.precision - r.scale >= _INT_DIGITS
    return r.name in _PROMOTIONS.get(w.name, frozenset())


def can_read(
    reader: SchemaLike,
    writer: SchemaLike,
    *,
    reader_name: str = "the reader",
    writer_name: str = "the writer",
) -> list[str]:
    """Problems that stop ``reader`` from reading records written with ``writer`` (empty: OK).

    A field in both must have a dtype that promotes from the writer's to the reader's; a reader
    field the writer lacks must be optional (contracts have no defaults to fill it); writer fields
    the reader does not know are ignored.
    """
    written = {f["name"]: f for f in _schema(writer)}
    problems: list[str] = []
    for field_ in _schema(reader):
        name = field_["name"]
        if name in written:
            old, new = written[name]["dtype"], field_["dtype"]
            if not _promotable(old, new):
                problems.append(f"field {name!r}: type {old} cannot be read as {new}")
        elif field_.get("required", False):
            problems.append(f"field {name!r}: required by {reader_name} but missing from {writer_name}")
    return problems


def check_compatibility(
    candidate: SchemaLike, previous_versions: Sequence[SchemaLike], mode: str, first_version: int = 1
) -> list[str]:
    """Problems that stop ``candidate`` from following ``previous_versions`` (oldest first,
    version numbers counted from ``first_version``) under ``mode``. Empty means compatible.

    BACKWARD: the candidate reads the latest version's data; FORWARD: the latest version reads
    the candidate's data; FULL: both. ``*_TRANSITIVE`` checks every previous version, not only
    the latest. NONE accepts anything.
    """
    mode = normalise_mode(mode)
    if mode == "NONE" or not previous_versions:
        return []
    numbered = list(enumerate(previous_versions, start=first_version))
    against = numbered if mode.endswith("_TRANSITIVE") else numbered[-1:]
    base = mode.removesuffix("_TRANSITIVE")
    problems: list[str] = []
    for number, old in against:
        label = f"version {number}"
        found: list[str] = []
        if base in ("BACKWARD", "FULL"):
            found += can_read(candidate, old, reader_name="the new schema", writer_name=label)
        if base in ("FORWARD", "FULL"):
            found += can_read(old, candidate, reader_name=label, writer_name="the new schema")
        problems += [f"{p} ({mode} against {label})" for p in found]
    return problems


def latest(state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The subject's newest version entry, or None if it has none."""
    versions = state.get("versions", []) if state else []
    return versions[-1] if versions else None


def get_version(state: Mapping[str, Any] | None, version: int | str) -> dict[str, Any] | None:
    """A version entry by number, or the newest for ``"latest"``; None if there is no such one."""
    if version == "latest":
        return latest(state)
    for entry in state.get("versions", []) if state else []:
        if entry["version"] == version:
            return entry
    return None


def is_subject(key: Any) -> bool:
    """Does this registry-table key name a subject (rather than the global config)?"""
    return isinstance(key, str) and "." in key


def effective_mode(state: Mapping[str, Any] | None, default_mode: str = DEFAULT_MODE) -> str:
    """The subject's own mode, or ``default_mode`` (the global one) when it has none."""
    mode = state.get("compatibility") if state else None
    return mode if isinstance(mode, str) else default_mode


def schema_ids(states: Iterable[Mapping[str, Any] | None]) -> dict[str, int]:
    """Fingerprint -> integer schema id, over every version of every subject that has one."""
    out: dict[str, int] = {}
    for state in states:
        for entry in state.get("versions", []) if isinstance(state, Mapping) else []:
            if isinstance(entry.get("schema_id"), int):
                out.setdefault(entry["id"], entry["schema_id"])
    return out


def _next_id(ids: Mapping[str, int]) -> int:
    return max(ids.values(), default=0) + 1


def assign_schema_ids(states: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Subjects whose versions lack an integer ``schema_id`` (stored before ids existed), with
    ids given: the id of the same schema elsewhere, else the next free one, in subject then
    version order so every worker that runs it would give the same ids."""
    ids = schema_ids(states.values())
    changed: dict[str, dict[str, Any]] = {}
    for subject in sorted(k for k in states if is_subject(k)):
        state = states[subject]
        versions = state.get("versions", []) if isinstance(state, Mapping) else []
        if all(isinstance(v.get("schema_id"), int) for v in versions):
            continue
        new = copy.deepcopy(dict(state or {}))
        for entry in new["versions"]:
            if not isinstance(entry.get("schema_id"), int):
                entry["schema_id"] = ids.setdefault(entry["id"], _next_id(ids))
        changed[subject] = new
    return changed


def set_compatibility(state: Mapping[str, Any], mode: str) -> dict[str, Any]:
    """A copy of ``state`` with its compatibility mode changed (ValueError for unknown modes)."""
    new = copy.deepcopy(dict(state))
    new["compatibility"] = normalise_mode(mode)
    return new


def register(
    state: Mapping[str, Any] | None,
    subject: str,
    schema: SchemaLike,
    mode: str | None,
    now: datetime,
    *,
    ids: Mapping[str, int] | None = None,
    default_mode: str = DEFAULT_MODE,
) -> RegistrationResult:
    """Register ``schema`` under ``subject``.

    - A schema identical (same fingerprint) to ANY existing version is "unchanged": no version is
      added and that version's number is returned. If it is not the latest, the latest stays in
      force: re-registering an old schema does not roll the subject back.
    - The first version of a subject is always "registered".
    - Otherwise the schema is checked against the previous versions under the subject's mode
      (``mode`` when given, which also becomes the subject's mode; else the stored one; else
      ``default_mode``, the global mode, for a subject without its own). Compatible:
      "registered" as latest + 1. Not: "refused", the input state is returned untouched (the
      mode change included) and ``version`` is the latest in force.
    - A registered version gets an integer ``schema_id``: the one ``ids`` (fingerprint -> id,
      over the whole registry, see :func:`schema_ids`) gives the same schema, else one more than
      the largest there. Ids are stored, so they never change once given.

    The input state is never mutated.
    """
    canonical = _schema(schema)
    ids = ids or {}
    if state is None:
        new: dict[str, Any] = {"subject": subject, "versions": []}
    else:
        new = copy.deepcopy(dict(state))
        new.setdefault("versions", [])
    if mode is not None:
        new["compatibility"] = normalise_mode(mode)
    versions: list[dict[str, Any]] = new["versions"]
    fp = fingerprint(canonical)
    for entry in versions:
        if entry["id"] == fp:
            return RegistrationResult(new, "unchanged", entry["version"])
    problems = check_compatibility(canonical, [v["schema"] for v in versions], effective_mode(new, default_mode))
    if problems:
        # Only reachable with earlier versions, hence with a stored state.
        assert state is not None and versions
        kept = copy.deepcopy(dict(state))
        return RegistrationResult(kept, "refused", versions[-1]["version"], problems)
    number = versions[-1]["version"] + 1 if versions else 1
    schema_id = ids[fp] if fp in ids else _next_id(ids)
    versions.append({"version": number, "id": fp, "schema_id": schema_id, "schema": canonical,
                     "registered_at": now.isoformat()})
    return RegistrationResult(new, "registered", number)

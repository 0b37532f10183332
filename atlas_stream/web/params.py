"""Query-string validation for the web endpoints: bounded, typed, no surprises (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol

from multidict import MultiMapping

from ..errors import RequestError

__all__ = ["MAX_QUERY_BYTES", "BadRequest", "Param", "known_params", "parse_query"]

#: Longest query string accepted (aiohttp itself refuses request lines over 8 KiB).
MAX_QUERY_BYTES = 2048


class BadRequest(RequestError, ValueError):
    """The request is malformed; the message says why (answered with 400)."""


class MultiQuery(Protocol):
    def getall(self, key: str, default: Any = ...) -> list[str]: ...
    def keys(self) -> Any: ...


@dataclass(frozen=True)
class Param:
    """One query parameter: ``int`` within ``[low, high]``, or ``str`` of at most ``high``
    characters (``low`` unused)."""

    kind: str
    default: Any
    low: int = 0
    high: int = 200


def _one(name: str, raw: str, param: Param) -> Any:
    if param.kind == "int":
        if not raw.isdigit() or len(raw) > 9:
            raise BadRequest(f"query parameter {name!r} must be a whole number from {param.low} to {param.high}")
        value = int(raw)
        if not param.low <= value <= param.high:
            raise BadRequest(f"query parameter {name!r} must be from {param.low} to {param.high}, not {value}")
        return value
    if len(raw) > param.high:
        raise BadRequest(f"query parameter {name!r} is longer than {param.high} characters")
    if any(ord(c) < 32 for c in raw):
        raise BadRequest(f"query parameter {name!r} contains control characters")
    return raw


def parse_query(query: MultiQuery | Mapping[str, Any], query_string: str, spec: Mapping[str, Param]) -> dict[str, Any]:
    """Values of the parameters in ``spec`` (defaults for absent ones). Unknown or repeated
    parameters, bad values and query strings over :data:`MAX_QUERY_BYTES` raise BadRequest."""
    if len(query_string) > MAX_QUERY_BYTES:
        raise BadRequest(f"query string longer than {MAX_QUERY_BYTES} bytes")
    names = list(dict.fromkeys(query.keys()))
    unknown = [n for n in names if n not in spec]
    if unknown:
        shown = ", ".join(repr(n[:40]) for n in unknown[:5])
        allowed = ", ".join(sorted(spec)) or "none"
        raise BadRequest(f"unknown query parameter(s) {shown} (allowed: {allowed})")
    out: dict[str, Any] = {}
    for name, param in spec.items():
        values = query.getall(name, []) if hasattr(query, "getall") else (
            [query[name]] if name in query else [])
        if len(values) > 1:
            raise BadRequest(f"query parameter {name!r} given {len(values)} times")
        out[name] = _one(name, values[0], param) if values else param.default
    return out


def known_params(query: MultiMapping[str], query_string: str, names: tuple[str, ...]) -> dict[str, str]:
    """The first value of each parameter in ``names``; others are ignored, as Confluent's
    registry ignores them (its clients send more than each endpoint reads). BadRequest for
    query strings over :data:`MAX_QUERY_BYTES`."""
    if len(query_string) > MAX_QUERY_BYTES:
        raise BadRequest(f"query string longer than {MAX_QUERY_BYTES} bytes")
    return {name: query.getall(name)[0] for name in names if name in query}

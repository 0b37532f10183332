"""Registry versions as JSON Schema documents (draft-07), and documents back to features (pure).

A version's document is a function of its feature list alone, serialised one way (feature
order kept, no whitespace), so it is the same bytes on every worker and after every restart.
A record that the document accepts passes every type, constraint and schema check of that
version; rules, freshness, blank strings and the dataset's null tokens are not expressed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft7Validator, SchemaError
from jsonschema.validators import validator_for

from .model import parse_dtype

__all__ = ["DIALECT", "DTYPE_KEYWORD", "document", "document_text", "parse_document"]

DIALECT = "http://json-schema.org/draft-07/schema#"
#: Annotation carrying the exact Atlas dtype (JSON types cannot tell int from bigint, or a
#: decimal's precision); validators ignore it, :func:`parse_document` reads it back.
DTYPE_KEYWORD = "x-atlas-dtype"

#: Canonical dtype name -> JSON Schema type and format.
_JSON_TYPES: dict[str, tuple[str, str | None]] = {
    "int": ("integer", None),
    "bigint": ("integer", None),
    "float": ("number", None),
    "double": ("number", None),
    "decimal": ("number", None),
    "string": ("string", None),
    "bool": ("boolean", None),
    "date": ("string", "date"),
    "timestamp": ("string", "date-time"),
}
#: JSON type (and format) -> dtype, for documents without the annotation: the widest dtype.
_DTYPES: dict[tuple[str, str | None], str] = {
    ("integer", None): "bigint",
    ("number", None): "double",
    ("boolean", None): "bool",
    ("string", None): "string",
    ("string", "date"): "date",
    ("string", "date-time"): "timestamp",
}


def _property(feature: Mapping[str, Any]) -> dict[str, Any]:
    dtype = parse_dtype(feature["dtype"])
    json_type, fmt = _JSON_TYPES[dtype.name]
    required = bool(feature.get("required", False))
    # An optional field may be null or absent: the scorer counts it incomplete, not rejected.
    prop: dict[str, Any] = {"type": json_type if required else [json_type, "null"]}
    if fmt is not None:
        prop["format"] = fmt
    prop[DTYPE_KEYWORD] = str(dtype)
    # Temporal bounds are ISO strings, which minimum/maximum cannot compare: they go in the
    # formatMinimum/formatMaximum keywords that ajv and others read (jsonschema ignores them).
    low, high = ("formatMinimum", "formatMaximum") if dtype.is_temporal else ("minimum", "maximum")
    if feature.get("min") is not None:
        prop[low] = feature["min"]
    if feature.get("max") is not None:
        prop[high] = feature["max"]
    if feature.get("pattern") is not None:
        # The scorer matches the whole value; a JSON Schema pattern matches anywhere.
        prop["pattern"] = f"^(?:{feature['pattern']})$"
    if feature.get("allowed") is not None:
        prop["enum"] = [*feature["allowed"], *([] if required else [None])]
    if feature.get("max_length") is not None:
        prop["maxLength"] = feature["max_length"]
    return prop


def document(features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON Schema of one version's features (canonical feature dicts, in field order).

    ``additionalProperties`` is false because a field outside the schema fails the schema check.
    """
    return {
        "$schema": DIALECT,
        "type": "object",
        "properties": {f["name"]: _property(f) for f in features},
        "required": [f["name"] for f in features if f.get("required", False)],
        "additionalProperties": False,
    }


def document_text(features: Sequence[Mapping[str, Any]]) -> str:
    """:func:`document` as text: keys in a fixed order, no whitespace, the same bytes every time."""
    return json.dumps(document(features), separators=(",", ":"), ensure_ascii=False)


def _dtype(name: str, prop: Any) -> str:
    if not isinstance(prop, Mapping):
        raise ValueError(f"property {name!r} must be an object")
    hint = prop.get(DTYPE_KEYWORD)
    if hint is not None:
        try:
            return str(parse_dtype(hint))
        except ValueError as exc:
            raise ValueError(f"property {name!r}: {DTYPE_KEYWORD}: {exc}") from None
    types = prop.get("type")
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or len([t for t in types if t != "null"]) != 1:
        raise ValueError(f"property {name!r} needs one JSON type besides null (or {DTYPE_KEYWORD})")
    (json_type,) = (t for t in types if t != "null")
    fmt = prop.get("format") if json_type == "string" and prop.get("format") in ("date", "date-time") else None
    dtype = _DTYPES.get((json_type, fmt))
    if dtype is None:
        raise ValueError(f"property {name!r}: JSON type {json_type!r} has no Atlas dtype "
                         f"(known: integer, number, boolean, string)")
    return dtype


def parse_document(text: str) -> list[dict[str, Any]]:
    """Features (name, dtype, required) of a JSON Schema object document, for compatibility
    checks. ValueError says why a text is not one: not JSON, not a valid JSON Schema, not an
    object with ``properties``, or a property with no Atlas dtype."""
    try:
        doc = json.loads(text)
    except (ValueError, TypeError, RecursionError) as exc:
        raise ValueError(f"schema is not JSON: {str(exc)[:200]}") from None
    if not isinstance(doc, dict):
        raise ValueError("schema must be a JSON Schema object document")
    try:
        validator_for(doc, default=Draft7Validator).check_schema(doc)
    except SchemaError as exc:
        raise ValueError(f"schema is not a valid JSON Schema: {exc.message[:200]}") from None
    except RecursionError:
        raise ValueError("schema is nested too deeply") from None
    props = doc.get("properties")
    if doc.get("type") != "object" or not isinstance(props, dict) or not props:
        raise ValueError('schema must have "type": "object" and non-empty "properties"')
    required = doc.get("required", [])
    return [{"name": name, "dtype": _dtype(name, prop), "required": name in required}
            for name, prop in props.items()]

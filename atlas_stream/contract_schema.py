"""The contract JSON Schema, and its validation errors as (JSON path, what was expected) pairs."""

from __future__ import annotations

import difflib
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match, relevance

from .placeholders import Loc

__all__ = ["NAME_PATTERN", "SCHEMA_FILE", "SCHEMA_PATH", "did_you_mean", "json_path", "schema_problems",
           "validator"]

SCHEMA_FILE = "contract.schema.json"
#: The JSON Schema every contract is validated against: metadata/ at the repository root, or the
#: copy an installed package holds (atlas_stream/contract.schema.json links to it in a checkout).
SCHEMA_PATH = Path(__file__).resolve().parent.parent / "metadata" / SCHEMA_FILE
if not SCHEMA_PATH.is_file():
    SCHEMA_PATH = Path(__file__).resolve().parent / SCHEMA_FILE
#: Group and dataset names: they become parts of Kafka topic names.
NAME_PATTERN = "^[A-Za-z0-9_][A-Za-z0-9_-]*$"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def json_path(loc: Sequence[Any]) -> str:
    """``("dataset_config", 0, "source")`` -> ``$.dataset_config[0].source``."""
    out = "$"
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(part):
            out += f".{part}"
        else:
            out += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return out


@lru_cache(maxsize=1)
def validator() -> Draft202012Validator:
    """The validator of SCHEMA_PATH (read once). The schema ships with the package and a unit test
    checks it against the draft 2020-12 meta-schema: checking it again here cost every start-up
    75 ms (of the 80 ms a contract takes to load)."""
    return Draft202012Validator(json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))


def schema_problems(doc: Any) -> list[tuple[Loc, str]]:
    """Every schema violation of ``doc``, most relevant first (jsonschema's ``relevance``), each
    narrowed to its most specific cause with ``best_match``."""
    problems: list[tuple[Loc, str]] = []
    for error in sorted(validator().iter_errors(doc), key=relevance, reverse=True):
        problems += _describe(best_match([error]))
    return problems


def _describe(error: ValidationError) -> list[tuple[Loc, str]]:
    """Turn one (best-matched) jsonschema error into (location, message) pairs that say what was
    expected. Values are shown with repr, which prints placeholders rather than their values."""
    loc: Loc = tuple(error.absolute_path)
    kind, expected, got = error.validator, error.validator_value, error.instance
    if kind == "required":
        missing = [k for k in expected if isinstance(got, dict) and k not in got]
        return [((*loc, k), f"required key {k!r} is missing") for k in missing]
    if kind == "additionalProperties" and isinstance(got, dict):
        known = sorted(error.schema.get("properties", {}))
        extra = [k for k in got if k not in known]
        return [((*loc, k), f"unknown key {k!r}{did_you_mean(k, known)} (allowed here: {', '.join(known)})")
                for k in extra]
    if kind == "enum":
        message = f"expected one of {', '.join(map(str, expected))}, got {got!r}"
    elif kind == "type":
        wanted = " or ".join(expected) if isinstance(expected, list) else expected
        message = f"expected {wanted}, got {_json_type(got)}" + (f" {got!r}" if _scalar(got) else "")
    elif kind == "pattern" and expected == NAME_PATTERN:
        message = (f"{got!r} is not a valid name: use letters, digits, '_' and '-', not starting with '-' "
                   "(it becomes part of Kafka topic names)")
    elif kind == "pattern":
        message = f"{got!r} does not match {expected}"
    elif kind in ("minItems", "minLength", "minProperties") and expected == 1:
        message = "must not be empty"
    elif kind == "minimum":
        message = f"must be >= {expected}, got {got!r}"
    elif kind == "maximum":
        message = f"must be <= {expected}, got {got!r}"
    elif kind == "uniqueItems":
        message = "items must be unique"
    elif kind == "oneOf" and loc and loc[-1] == "key":
        message = "expected a feature name or a non-empty list of feature names"
    elif kind == "oneOf":
        message = "expected a field name, or an object with a 'name'"
    else:
        message = error.message
    return [(loc, message)]


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool)) or value is None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(type(value), "string")


def did_you_mean(word: str, known: Sequence[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known word, or an empty string."""
    close = difflib.get_close_matches(word, known, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

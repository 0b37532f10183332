"""Wire formats: decoding raw values, and encoding tier, dead-letter and event messages."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal, Mapping, Sequence

import orjson

from .dtypes import to_json_value
from .errors import RecordError
from .quality import ScoredRecord

#: Where a record was dead-lettered (the DLQ message's ``stage``): a source could not read it, the
#: stream could not decode or score it, its tier message was too big to publish, or a sink refused it.
DlqStage = Literal["source", "decode", "score", "publish", "sink.elasticsearch"]

__all__ = [
    "DlqStage",
    "SourcePosition",
    "decode_raw",
    "dlq_message",
    "encode",
    "event_message",
    "record_key",
    "tier_message",
]

SourcePosition = Mapping[str, Any]  # {"topic", "partition", "offset", "timestamp"}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: A run of 17+ ASCII digits is a number that a 64-bit float (orjson's fallback for big integers)
#: would round; such values are parsed by the standard library, exactly. Found by turning every
#: digit into 1 and every other byte into 0 and searching for 17 ones: the regular expression
#: ``\d{17,}`` did the same at three times orjson's whole parse.
_DIGITS = bytes(0x31 if 0x30 <= b <= 0x39 else 0x30 for b in range(256))
_SEVENTEEN_DIGITS = b"1" * 17


def _has_long_number(value: bytes) -> bool:
    return value.translate(_DIGITS).find(_SEVENTEEN_DIGITS) >= 0


def _exact_loads(value: bytes, orjson_error: str | None) -> Any:
    # The standard library keeps big integers exact, reads floats as Decimal (every digit kept)
    # and accepts what orjson refuses but JSON allows (escaped lone surrogates).
    try:
        return json.loads(value, parse_constant=_reject_constant, parse_float=Decimal)
    except RecursionError:
        raise RecordError("JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordError(f"not valid JSON: {orjson_error or exc}") from None


def decode_raw(value: bytes | None) -> dict[str, Any]:
    """Parse a raw message value; it must be a JSON object. Raises RecordError with the reason.

    Numbers keep every digit: integers beyond 64 bits stay ints and long decimals become
    Decimal, so no value is rounded before its type check.
    """
    if value is None:
        raise RecordError("empty value (tombstone): a raw message must be a JSON object")
    if _has_long_number(value):
        data = _exact_loads(value, None)
    else:
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            if "depth limit" in str(exc):
                raise RecordError(f"JSON nested deeper than 1024 levels: {exc}") from None
            data = _exact_loads(value, str(exc))
    if not isinstance(data, dict):
        kind = "array" if isinstance(data, list) else type(data).__name__
        raise RecordError(f"value is a JSON {kind}, expected a JSON object")
    return data


def encode(obj: Any) -> bytes:
    return orjson.dumps(obj, default=to_json_value)


def record_key(record: Mapping[str, Any], key_fields: Sequence[str]) -> bytes | None:
    """Message key from the contract's ``key`` fields: the value itself for one field, a JSON
    array for several; None when any key field is null (the producer then picks a partition)."""
    if not key_fields:
        return None
    values = [record.get(name) for name in key_fields]
    if any(v is None for v in values):
        return None
    if len(values) == 1:
        v = to_json_value(values[0])
        return v.encode() if isinstance(v, str) else _dumps_exact(v)
    return _dumps_exact([to_json_value(v) for v in values])


def _dumps_exact(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # an integer beyond 64 bits: the standard library writes every digit
        return json.dumps(value, separators=(",", ":"), default=to_json_value).encode()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


def tier_message(
    scored: ScoredRecord,
    source: SourcePosition,
    subject: str,
    schema_version: int | None,
) -> dict[str, Any]:
    """The JSON object published to ``atlas.<group>.<dataset>.<tier>``."""
    report = scored.report
    message: dict[str, Any] = {
        "record": scored.record,
        "quality": {
            "tier": report.tier,
            "score": report.score,
            "failures": list(report.failures),
            "passed": report.passed,
            "counted": report.counted,
        },
        "source": dict(source),
        "schema": {"subject": subject, "version": schema_version},
        "ingested_at": _iso(float(source["timestamp"])),
    }
    if scored.extra:
        message["extra"] = scored.extra
    if scored.invalid:
        message["invalid"] = scored.invalid
    return message


def dlq_message(
    error: str,
    stage: DlqStage,
    source: SourcePosition,
    key: bytes | None,
    value: bytes | None,
    max_bytes: int,
    dataset: str | None = None,
) -> bytes:
    """A dead letter keeping the original bytes (base64), their size and digest, and the reason.

    When the original is too large to fit in one message, the kept bytes are cut and
    ``truncated`` is true; the full value stays in the raw topic at ``source``.
    """
    value = value or b""
    budget = max(1024, (max_bytes - 8192) * 3 // 4)  # base64 grows by 4/3
    kept = value[:budget]
    doc = {
        "error": error[:4000],
        "stage": stage,
        "dataset": dataset,
        "source": dict(source),
        "key_b64": base64.b64encode(key).decode() if key is not None else None,
        "value_b64": base64.b64encode(kept).decode(),
        "value_bytes": len(value),
        "value_sha256": hashlib.sha256(value).hexdigest(),
        "truncated": len(kept) < len(value),
        "failed_at": datetime.now(timezone.utc).isoformat(),
    }
    return encode(doc)


def event_message(kind: str, source: str, **detail: Any) -> bytes:
    """An entry of the event log (``atlas.events``)."""
    return encode({"type": kind, "source": source, "time": datetime.now(timezone.utc).isoformat(), **detail})

"""Database rows -> JSON messages, and the poller's cursor: its JSON form and record positions."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Mapping, Sequence

import isodate
import orjson

from ...errors import ConfigError

__all__ = ["Cursor", "encode_row", "json_value", "row_dict", "ts_text", "parse_ts"]


def json_value(value: Any) -> Any:
    """A JSON-friendly form of one column value: datetime, date and time as ISO-8601 text,
    Decimal as text (every digit kept), bytes as base64 text, UUID as text, intervals as ISO-8601
    durations. JSON types (and lists/dicts of a JSON column) pass through."""
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return isodate.duration_isoformat(value)
    if isinstance(value, (list, tuple)):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def _default(value: Any) -> Any:
    # orjson writes datetime/date/time/UUID itself (same ISO text as isoformat()); the rest here.
    converted = json_value(value)
    if converted is value:
        raise TypeError(f"cannot convert {type(value).__name__} to JSON")
    return converted


def row_dict(keys: Sequence[str], row: Sequence[Any]) -> dict[str, Any]:
    """A row as a plain dict of JSON-friendly values."""
    return {k: json_value(v) for k, v in zip(keys, row)}


def encode_row(keys: Sequence[str], row: Sequence[Any]) -> bytes:
    """A row as a JSON object (bytes). Raises TypeError/orjson.JSONEncodeError for a value that
    has no JSON form (an integer beyond 64 bits, an unknown driver type)."""
    return orjson.dumps(dict(zip(keys, row)), default=_default)


def ts_text(value: date | datetime | str) -> str:
    """A cursor timestamp as ISO-8601 text, microseconds always written (so that positions are
    the same text whatever the value). Text (a driver without a timestamp type) is parsed."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, datetime):
        return value.isoformat(timespec="microseconds")
    return value.isoformat()


def parse_ts(text: str) -> date | datetime:
    """Inverse of :func:`ts_text`."""
    if len(text) == 10:
        return date.fromisoformat(text)
    return datetime.fromisoformat(text)


@dataclass(frozen=True)
class Cursor:
    """Where the poller stands, as stored in the checkpoint (JSON-safe: ``ts`` ISO text with
    microseconds, ``id`` an int). Bulk mode counts passes and the rows done in the current one."""

    mode: str
    ts: str | None = None
    id: int | None = None
    bulk_pass: int = 0
    bulk_row: int = 0
    bulk_done: bool = False

    def to_json(self) -> dict[str, Any]:
        if self.mode == "bulk":
            return {"mode": self.mode, "pass": self.bulk_pass, "row": self.bulk_row, "done": self.bulk_done}
        out: dict[str, Any] = {"mode": self.mode}
        if self.ts is not None:
            out["ts"] = self.ts
        if self.id is not None:
            out["id"] = self.id
        return out

    @classmethod
    def from_json(cls, doc: Any, mode: str, where: str) -> "Cursor":
        """The checkpointed cursor; a fresh one when ``doc`` is None. A cursor of another mode
        (the contract changed) is refused: resuming from it could skip or repeat rows."""
        if doc is None:
            return cls(mode)
        try:
            if doc["mode"] != mode:
                raise ConfigError(f"{where}: the checkpoint holds a {doc['mode']!r} cursor but the contract now "
                                  f"says mode {mode!r}: move the checkpoint away to read the table from the start")
            if mode == "bulk":
                return cls(mode, bulk_pass=int(doc["pass"]), bulk_row=int(doc["row"]), bulk_done=bool(doc["done"]))
            ts = doc.get("ts")
            if ts is not None:
                parse_ts(ts)
            ident = doc.get("id")
            return cls(mode, ts=ts, id=None if ident is None else int(ident))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: unreadable database cursor in the checkpoint ({exc!r})") from None

    def ts_value(self) -> date | datetime | None:
        return None if self.ts is None else parse_ts(self.ts)


def position(mode: str, ts: str | None, ident: Any, bulk_pass: int = 0) -> str:
    """A record's position (``atlas-pos`` header): the same text every time the same row version
    is read again. incrementing: ``<id>``; timestamp+incrementing: ``<ts>|<id>``; timestamp:
    ``<ts>|<primary key, or rank among the rows with that timestamp>``; bulk: ``bulk<pass>:<row>``."""
    if mode == "incrementing":
        return str(ident)
    if mode == "bulk":
        return f"bulk{bulk_pass}:{ident}"
    return f"{ts}|{ident}"


def key_text(values: Mapping[str, Any] | Sequence[Any]) -> str:
    """Compact JSON of primary-key values, for positions."""
    return orjson.dumps(values, default=_default).decode()

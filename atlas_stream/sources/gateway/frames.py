"""Gateway edge checks with no I/O: request paths, frame decoding and the JSON replies."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from ...errors import RecordError

__all__ = [
    "BINARY_FRAME_ERROR",
    "FrameError",
    "IngestPath",
    "decode_frame",
    "error_reply",
    "ok_reply",
    "parse_ingest_path",
]

BINARY_FRAME_ERROR = "binary frames are not accepted; send JSON text"
#: How many offending item indexes an error message spells out (the reply lists them all).
_SHOWN = 10


@dataclass(frozen=True)
class IngestPath:
    """``/ingest/<group>/<dataset>?token=...`` taken apart."""

    group: str
    dataset: str
    query: dict[str, list[str]]

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


def parse_ingest_path(path: str) -> IngestPath | None:
    """The group and dataset of a request path; None when it is not ``/ingest/<group>/<dataset>``."""
    parts = urlsplit(path)
    segments = parts.path.split("/")
    if len(segments) != 4 or segments[0] != "" or segments[1] != "ingest":
        return None
    group, dataset = segments[2], segments[3]
    if not group or not dataset:
        return None
    return IngestPath(group, dataset, parse_qs(parts.query, keep_blank_values=True))


class FrameError(RecordError, ValueError):
    """A frame refused as a whole (still a ValueError, as it always was). ``items`` are the array indexes at fault, if any."""

    def __init__(self, message: str, items: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.items = list(items)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _std_dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _indexes(items: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in items[:_SHOWN])
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return shown + more


def decode_frame(text: str, max_bytes: int, max_records: int, max_record_bytes: int | None = None,
                 ) -> tuple[list[dict[str, Any]], list[bytes]]:
    """A text frame -> (objects, each re-encoded with orjson). Raises FrameError saying what is wrong.

    Only edge checks: valid JSON, one object or an array of objects, size limits. Whether the
    objects fit the dataset schema is the worker's business.
    """
    if len(text) > max_bytes:  # cheap first test: a character is at least one byte
        raise FrameError(f"frame of at least {len(text)} bytes is over the {max_bytes}-byte limit; "
                         "send fewer records per frame")
    data = text.encode()
    if len(data) > max_bytes:
        raise FrameError(f"frame of {len(data)} bytes is over the {max_bytes}-byte limit; "
                         "send fewer records per frame")
    dumps: Callable[[Any], bytes] = orjson.dumps
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        # orjson refuses some valid JSON (integers beyond 64 bits, escaped lone surrogates):
        # as messages.decode_raw does, only refuse what the standard library refuses too.
        try:
            doc = json.loads(data, parse_constant=_reject_constant)
        except RecursionError:
            raise FrameError("invalid JSON: nested too deeply") from None
        except ValueError:
            raise FrameError(f"invalid JSON: {exc}") from None
        dumps = _std_dumps
    if isinstance(doc, dict):
        records = [doc]
    elif isinstance(doc, list):
        records = doc
        if len(records) > max_records:
            raise FrameError(f"frame holds {len(records)} objects, more than the limit of {max_records}; "
                             "split it into several frames")
        bad = [i for i, item in enumerate(records) if not isinstance(item, dict)]
        if bad:
            kinds = sorted({_kind(records[i]) for i in bad})
            raise FrameError(f"array items {_indexes(bad)} are not JSON objects ({', '.join(kinds)}); "
                             "the whole frame is refused", bad)
    else:
        raise FrameError(f"frame holds a JSON {_kind(doc)}; send a JSON object or an array of objects")
    values = [dumps(r) for r in records]
    if max_record_bytes is not None:
        big = [i for i, v in enumerate(values) if len(v) > max_record_bytes]
        if big:
            raise FrameError(f"objects {_indexes(big)} are over the {max_record_bytes}-byte message limit; "
                             "the whole frame is refused", big)
    return records, values


def ok_reply(frame: int, count: int) -> bytes:
    """Every record of the frame is acknowledged by the broker."""
    return orjson.dumps({"ok": True, "count": count, "frame": frame})


def error_reply(frame: int, error: str, *, not_accepted: Sequence[int] | None = None, count: int = 0,
                retriable: bool = False, items: Sequence[int] = ()) -> bytes:
    """``not_accepted`` None means the whole frame ("all"); ``count`` records were published."""
    doc: dict[str, Any] = {
        "ok": False,
        "error": error,
        "frame": frame,
        "count": count,
        "not_accepted": "all" if not_accepted is None else list(not_accepted),
        "retriable": retriable,
    }
    if items:
        doc["items"] = list(items)
    return orjson.dumps(doc)

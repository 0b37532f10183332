"""Event-log answers: filter, order newest first and page events (pure)."""

from __future__ import annotations

import heapq
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["EVENT_TYPES", "event_key", "matches", "newest_first", "page"]

#: Event types Atlas Stream publishes (others are kept and shown too).
EVENT_TYPES = ("schema.registered", "schema.refused", "schema.drift", "file.ingested", "poller.error",
               "sink.commit")


def event_key(partition: int, offset: int) -> str:
    """``<partition>|<offset, 15 digits>``: sorts by offset within a partition."""
    return f"{partition}|{offset:015d}"


def _order(e: Mapping[str, Any]) -> tuple[str, int, int]:
    return (str(e.get("time") or ""), int(e.get("partition", 0)), int(e.get("offset", 0)))


def matches(event: Mapping[str, Any], types: Sequence[str], source: str | None) -> bool:
    """``types``: any of them (empty: all); ``source``: exactly that source."""
    if types and event.get("type") not in types:
        return False
    return source is None or event.get("source") == source


def newest_first(events: Iterable[Mapping[str, Any]], types: Sequence[str], source: str | None,
                 keep: int) -> tuple[list[Mapping[str, Any]], int]:
    """The ``keep`` newest matching events (by time, then position) and how many matched."""
    chosen = [e for e in events if matches(e, types, source)]
    return heapq.nlargest(keep, chosen, key=_order), len(chosen)


def page(per_partition: Iterable[Mapping[str, Any]], offset: int, limit: int) -> tuple[list[Mapping[str, Any]], int]:
    """Merge partition answers ``{"events": [...newest first], "matched": n}`` and cut one page."""
    lists, total = [], 0
    for part in per_partition:
        lists.append(part.get("events") or [])
        total += int(part.get("matched") or 0)
    merged = heapq.nlargest(offset + limit, (e for lst in lists for e in lst), key=_order)
    return merged[offset:offset + limit], total

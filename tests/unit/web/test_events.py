"""Events: filtered, ordered newest first and paged across partitions."""

from __future__ import annotations

from atlas_stream.web.events import event_key, newest_first, page

def _event(p: int, o: int, t: str, kind: str = "sink.commit", source: str = "g.d") -> dict[str, object]:
    return {"type": kind, "source": source, "time": t, "partition": p, "offset": o}


def test_events_are_filtered_ordered_and_paged_across_partitions() -> None:
    p0 = [_event(0, 0, "2026-01-01T00:00:01"), _event(0, 1, "2026-01-01T00:00:03", "schema.drift"),
          _event(0, 2, "2026-01-01T00:00:05")]
    p1 = [_event(1, 0, "2026-01-01T00:00:02"), _event(1, 1, "2026-01-01T00:00:04", source="other")]
    keep = 3
    a = dict(zip(("events", "matched"), newest_first(p0, ["sink.commit"], None, keep)))
    b = dict(zip(("events", "matched"), newest_first(p1, ["sink.commit"], None, keep)))
    events, total = page([a, b], 1, 2)
    assert total == 4 and [(e["partition"], e["offset"]) for e in events] == [(1, 1), (1, 0)]
    only, n = newest_first(p1, [], "other", 10)
    assert n == 1 and only[0]["offset"] == 1
    assert event_key(3, 42) == "3|000000000000042" and event_key(0, 9) < event_key(0, 10)

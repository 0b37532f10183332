"""Statistics summaries: partitions summed, minutes filled, failures ordered."""

from __future__ import annotations

from atlas_stream.web.summary import summarize, totals

def test_summary_sums_partitions_and_fills_minutes() -> None:
    now = 1_000_000.0  # minute 999960
    tables = {
        "tier_counts": {"0|g.d|gold": 3, "1|g.d|gold": 2, "1|g.d|dlq": 1},
        "tier_counts_per_minute": {"0|g.d|gold|999960": 3, "1|g.d|gold|999900": 2, "1|g.d|dlq|999960": 1},
        "failure_counts": {"0|g.d|rule:x": 1, "1|g.d|rule:x": 2, "1|g.d|schema": 4},
        "last_seen": {"0|g.d": 999_990.0, "1|g.d": 999_995.5},
        "schema_drift": {"1|g.d|extra": 2},
    }
    (s, empty) = summarize(tables, [("g", "d"), ("g", "e")], now, 3)
    assert s["total"] == 6 and s["tiers"] == {"gold": 5, "silver": 0, "bronze": 0, "rejected": 0, "dlq": 1}
    assert [(w["start"], w["total"]) for w in s["minutes"]] == [(999840, 0), (999900, 2), (999960, 4)]
    assert s["failures"] == {"schema": 4, "rule:x": 3} and list(s["failures"]) == ["schema", "rule:x"]
    assert s["drift"] == {"extra": 2} and s["last_seen"].startswith("1970-01-12T13:46:35.5")
    assert empty["total"] == 0 and len(empty["minutes"]) == 3 and empty["last_seen"] is None
    assert totals([s, empty])["tiers"]["gold"] == 5

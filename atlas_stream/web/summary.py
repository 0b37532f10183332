"""Statistics answers: table items of the stats tables -> per-dataset summaries (pure)."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from ..model import TIERS
from ..stats import MINUTE, split_key

__all__ = ["OUTCOMES", "STATS_TABLES", "dataset_summary", "summarize", "totals"]

#: Where a record can end up: the four tiers, or the dead-letter topic.
OUTCOMES: tuple[str, ...] = (*TIERS, "dlq")
#: The stats tables an answer is built from (see tables/stats.py).
STATS_TABLES = ("tier_counts", "tier_counts_per_minute", "failure_counts", "last_seen", "schema_drift")


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()


class _Acc:
    def __init__(self) -> None:
        self.tiers: Counter[str] = Counter()
        self.minutes: dict[int, Counter[str]] = defaultdict(Counter)
        self.failures: Counter[str] = Counter()
        self.drift: Counter[str] = Counter()
        self.last_seen: float | None = None


def _accumulate(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, _Acc]:
    acc: dict[str, _Acc] = defaultdict(_Acc)
    for key, n in tables.get("tier_counts", {}).items():
        _, subject, tier = split_key(key, 3)
        acc[subject].tiers[tier] += int(n)
    for key, n in tables.get("tier_counts_per_minute", {}).items():
        _, subject, tier, minute = split_key(key, 4)
        acc[subject].minutes[int(minute)][tier] += int(n)
    for key, n in tables.get("failure_counts", {}).items():
        _, subject, check = split_key(key, 3)
        acc[subject].failures[check] += int(n)
    for key, n in tables.get("schema_drift", {}).items():
        _, subject, name = split_key(key, 3)
        acc[subject].drift[name] += int(n)
    for key, ts in tables.get("last_seen", {}).items():
        _, subject = split_key(key, 2)
        a = acc[subject]
        a.last_seen = max(float(ts), a.last_seen or 0.0)
    return acc


def _tiers(counts: Mapping[str, int]) -> dict[str, int]:
    return {t: int(counts.get(t, 0)) for t in OUTCOMES}


def dataset_summary(group: str, dataset: str, acc: _Acc | None, now: float, minutes: int) -> dict[str, Any]:
    """One dataset: totals per tier, the last ``minutes`` one-minute windows (oldest first,
    zeros included, the current minute last), failures per check and drift per field."""
    a = acc or _Acc()
    current = int(now // MINUTE * MINUTE)
    windows = []
    for start in range(current - (minutes - 1) * MINUTE, current + MINUTE, MINUTE):
        counts = _tiers(a.minutes.get(start, {}))
        windows.append({"start": start, "time": _iso(start), "total": sum(counts.values()), "tiers": counts})
    tiers = _tiers(a.tiers)
    return {
        "group": group,
        "dataset": dataset,
        "subject": f"{group}.{dataset}",
        "total": sum(tiers.values()),
        "tiers": tiers,
        "minutes": windows,
        "failures": dict(sorted(a.failures.items(), key=lambda kv: (-kv[1], kv[0]))),
        "drift": dict(sorted(a.drift.items(), key=lambda kv: (-kv[1], kv[0]))),
        "last_seen": _iso(a.last_seen),
    }


def summarize(tables: Mapping[str, Mapping[str, Any]], datasets: Iterable[tuple[str, str]], now: float,
              minutes: int) -> list[dict[str, Any]]:
    """Summaries of ``datasets`` (every one, counted or not) from the merged stats tables."""
    acc = _accumulate(tables)
    return [dataset_summary(g, d, acc.get(f"{g}.{d}"), now, minutes) for g, d in datasets]


def totals(summaries: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """All datasets together: records per tier and per one-minute window."""
    tiers: Counter[str] = Counter()
    per_minute: dict[int, Counter[str]] = defaultdict(Counter)
    for s in summaries:
        tiers.update(s["tiers"])
        for w in s["minutes"]:
            per_minute[w["start"]].update(w["tiers"])
    windows = [{"start": start, "time": _iso(start), "total": sum(c.values()), "tiers": _tiers(c)}
               for start, c in sorted(per_minute.items())]
    counts = _tiers(tiers)
    return {"total": sum(counts.values()), "tiers": counts, "minutes": windows}

"""StatsBatch (atlas_stream/stats.py) counts per distinct event tuple and builds the table keys
when the batch is written: the keys and counts must be those of counting every event under its
own keys, which is what the statistics tables and /stats report."""

from __future__ import annotations

import random
from collections import Counter

from atlas_stream.stats import MINUTE, StatsBatch, stat_key


def _expected(events: list[tuple[int, str, str, tuple[str, ...], tuple[str, ...], float]]) -> dict[str, object]:
    tiers: Counter[str] = Counter()
    minutes: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    drift: Counter[str] = Counter()
    last_seen: dict[str, float] = {}
    for partition, subject, tier, fails, names, ts in events:
        tiers[stat_key(partition, subject, tier)] += 1
        minutes[stat_key(partition, subject, tier, int(ts // MINUTE * MINUTE))] += 1
        for failure in fails:
            failures[stat_key(partition, subject, failure)] += 1
        for name in names:
            drift[stat_key(partition, subject, name)] += 1
        seen = stat_key(partition, subject)
        last_seen[seen] = max(ts, last_seen.get(seen, 0.0))
    return {"tiers": tiers, "minutes": minutes, "failures": failures, "drift": drift, "last_seen": last_seen}


def test_a_batch_counts_every_event_under_its_keys() -> None:
    rng = random.Random(7)
    checks = ["completeness.amount", "validity.country.max_length", "rule.amount_matches", "type.paid"]
    events = [(rng.randrange(4), rng.choice(["shop.orders", "shop.users"]),
               rng.choice(["gold", "silver", "bronze", "rejected", "dlq"]),
               tuple(rng.sample(checks, rng.randrange(3))), tuple(rng.sample(["extra", "x|y"], rng.randrange(2))),
               1_765_000_000 + rng.random() * 600) for _ in range(5000)]
    batch = StatsBatch()
    for event in events:
        batch.add(*event)
    got = {"tiers": batch.tiers, "minutes": batch.minutes, "failures": batch.failures, "drift": batch.drift,
           "last_seen": batch.last_seen}
    assert got == _expected(events)
    assert sum(batch.tiers.values()) == 5000 and len(batch.minutes) > len(batch.tiers)

"""What the sink tests read back: committed lake files (DuckDB, pyarrow) and tier topics."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import duckdb
import orjson

from atlas_stream.lake import parse_committed_name

from .harness import read_to_end

from atlas_stream.model import TIERS  # noqa: E402, F401  (re-exported to the sink tests)


def order(i: int, **over: Any) -> bytes:
    """A valid itest order (gold), or with ``over`` fields changed."""
    rec = {"order_id": f"O-{i}", "amount": 10.5 + i % 100, "quantity": 1 + i % 5, "currency": "usd",
           "note": "ok", "created_at": (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()}
    rec.update(over)
    return orjson.dumps(rec)


def mixed(i: int) -> bytes:
    """Orders spread over the four tiers (see tests/integration/contracts/itest.json)."""
    kind = i % 10
    if kind == 7:  # one failure (note too long)
        return order(i, note="far too long a note")
    if kind == 8:  # several failures -> bronze
        return order(i, note="far too long a note", currency="GBP", quantity=0, amount=20000)
    if kind == 9:  # a required field missing -> rejected
        return order(i, order_id=None)
    return order(i)


#: The tier of ``mixed(i)`` by ``i % 10``; every other kind is gold.
KIND_TIER = {7: "silver", 8: "bronze", 9: "rejected"}


def committed_files(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*.parquet") if parse_committed_name(p.name))


def lake_rows(lake: Path) -> list[tuple[str, str, int, int, str]]:
    """(tier dir, source topic, partition, offset, file) of every row of every committed file."""
    files = committed_files(lake)
    if not files:
        return []
    con = duckdb.connect()
    rows = con.execute(
        "select tier, _source_topic, _source_partition, _source_offset, filename from read_parquet(?, "
        "hive_partitioning=true, filename=true)", [[str(f) for f in files]]).fetchall()
    return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def tier_positions(bootstrap: str, topics: dict[str, str]) -> dict[str, set[tuple[str, int, int]]]:
    """Per tier, the distinct raw positions its tier topic holds (it may hold some twice)."""
    msgs = asyncio.run(read_to_end(bootstrap, list(topics.values())))
    by_topic = {v: k for k, v in topics.items()}
    out: dict[str, set[tuple[str, int, int]]] = {t: set() for t in topics}
    for m in msgs:
        src = orjson.loads(m.value)["source"]
        out[by_topic[m.topic]].add((src["topic"], src["partition"], src["offset"]))
    return out


def wait_for(what: str, check: Callable[[], Any], timeout: float, every: float = 1.0, log: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    tail = f"\n--- worker log tail ---\n{log()[-5000:]}" if log else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){tail}")


def duplicates(rows: list[tuple[str, str, int, int, str]]) -> list[tuple[tuple[str, int, int], int]]:
    counts = Counter((r[1], r[2], r[3]) for r in rows)
    return [(pos, n) for pos, n in counts.items() if n > 1]

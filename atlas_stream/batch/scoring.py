"""One dataset's raw batches scored into lake tables per tier: the engine both the arrow and the
spark engine run (the latter inside ``mapInArrow``), so their output cannot differ."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..lake import dataset_features, lake_schema
from ..model import TIERS, Dataset, Tier
from .arrow_const import const, counting
from .arrow_quality import TIER_NAMES, BatchScorer
from .readers import RawBatch

__all__ = ["Scored", "TierSplit", "add_counts"]

_NAMES: list[str] = TIER_NAMES.to_pylist()
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_INDEX = {name: const(i, pa.int8()) for i, name in enumerate(_NAMES)}


@dataclass
class Scored:
    """A scored batch: rows per tier, failure counts, and the lake table of each written tier."""

    tiers: list[tuple[str, int]]
    failures: dict[str, int]
    parts: list[tuple[Tier, pa.Table]]


class TierSplit:
    """Scores :class:`RawBatch` es of one dataset with the stream's semantics at time ``started``
    and cuts the result into the lake tables of the tiers the destination keeps."""

    def __init__(self, ds: Dataset, started: datetime) -> None:
        self.features = dataset_features(ds)
        self.schema = lake_schema(self.features)
        self.scorer = BatchScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
        self.tiers = [t for t in TIERS if t in ds.destination.parquet_tiers]
        self.started = started
        self.ingested = const(_micros(started), pa.timestamp("us", tz="UTC"))

    def score(self, raw: RawBatch) -> Scored | None:
        if not raw.n:
            return None
        scored = self.scorer.score(raw.cols, raw.n, self.started)
        table = self._lake_table(scored, raw)
        # tiers by their index in TIER_NAMES (int8): counted and compared without text
        index = scored.tier_index
        counts = [(_NAMES[d["values"]], d["counts"]) for d in pc.value_counts(index).to_pylist()]
        rows = dict(counts)
        # a tier with every row, or none, needs no filter pass over the whole table
        parts = [(tier, table if rows[tier] == raw.n else table.filter(pc.equal(index, _INDEX[tier])))
                 for tier in self.tiers if rows.get(tier)]
        return Scored(counts, dict(scored.failure_counts), parts)

    def _lake_table(self, scored: Any, raw: RawBatch) -> pa.Table:
        n = raw.n
        offsets = raw.offsets if raw.offsets is not None else row_numbers(raw.first, n)
        columns = [scored.features[f.name] for f in self.features] + [
            scored.tier, scored.score, scored.failures,
            pa.repeat(self.ingested, n),
            pa.repeat(const(raw.source, pa.string()), n),
            pa.repeat(const(0, pa.int32()), n),
            offsets if isinstance(offsets, pa.Array) else pa.array(offsets, pa.int64()),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)


def row_numbers(first: int, n: int) -> pa.Array:
    """``first, first + 1, ..., first + n - 1`` as int64, without a Python int per row."""
    return pc.add(counting(n), const(first, pa.int64()))


def _micros(t: datetime) -> int:
    """Microseconds since the epoch of an aware datetime (naive: UTC), as Arrow stores it."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return (t - _EPOCH) // timedelta(microseconds=1)


def add_counts(stats: dict[str, Any], tiers: list[tuple[str, int]] | dict[str, int],
               failures: dict[str, int]) -> None:
    """Add rows per tier and per failed check to a dataset's summary entry."""
    for tier, count in (tiers.items() if isinstance(tiers, dict) else tiers):
        stats["tiers"][tier] = stats["tiers"].get(tier, 0) + count
    for name, count in failures.items():
        stats["failures"][name] = stats["failures"].get(name, 0) + count

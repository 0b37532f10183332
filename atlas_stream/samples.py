"""Sample records for any contract: mostly valid, with a share of realistic defects."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import rstr

from .dtypes import parse_bound
from .model import Dataset, Feature
from .quality import DatasetScorer

__all__ = ["DEFECTS", "SampleGenerator"]

#: Kinds of defect injected; each lands in a lower tier or the DLQ for a visible reason.
DEFECTS = ("missing_required", "wrong_type", "out_of_range", "unknown_field", "not_json", "stale")


def _number_bounds(f: Feature) -> tuple[float, float]:
    lo = float(parse_bound(f.min, f.dtype)) if f.min is not None else 0.0
    hi = float(parse_bound(f.max, f.dtype)) if f.max is not None else max(lo, 0.0) + 1000.0
    return lo, hi


class SampleGenerator:
    """Generates raw JSON values for one dataset from its source features and constraints."""

    def __init__(self, dataset: Dataset, seed: int | None = None, defect_rate: float = 0.1) -> None:
        self.dataset = dataset
        self.scorer = DatasetScorer(dataset.schema, dataset.quality, dataset.transformations,
                                    dataset.source_features, dataset.null_values)
        self.rng = random.Random(seed)
        self.defect_rate = defect_rate
        self._xeger = rstr.Rstr(self.rng)

    def value(self, f: Feature, now: datetime) -> Any:
        rng = self.rng
        if f.allowed:
            return rng.choice(list(f.allowed))
        kind = f.dtype.name
        if f.pattern:
            text = self._xeger.xeger(f.pattern)
            return text[: f.max_length] if f.max_length else text
        if kind in ("int", "bigint"):
            lo, hi = _number_bounds(f)
            return rng.randint(int(lo), int(min(hi, lo + 10_000)))
        if kind in ("float", "double"):
            lo, hi = _number_bounds(f)
            return round(rng.uniform(lo, min(hi, lo + 1000.0)), 2)
        if kind == "decimal":
            lo, hi = _number_bounds(f)
            scale = f.dtype.scale or 0
            return str(Decimal(str(round(rng.uniform(lo, min(hi, lo + 1000.0)), scale))))
        if kind == "bool":
            return rng.random() < 0.5
        if kind == "date":
            return (now.date() - timedelta(days=rng.randint(0, 3))).isoformat()
        if kind == "timestamp":
            return (now - timedelta(seconds=rng.randint(0, 3600))).isoformat()
        text = f"{f.name}-{rng.randint(1, 99_999):05d}"
        return text[: f.max_length] if f.max_length else text

    def record(self, now: datetime | None = None) -> dict[str, Any]:
        """A clean record: constraints of the source features respected, and (when one of a few
        random draws achieves it) every rule too, so that clean records score gold."""
        now = now or datetime.now(timezone.utc)
        for _ in range(20):
            rec = {f.name: self.value(f, now) for f in self.dataset.source_features}
            if self.scorer.process(rec, now).report.tier == "gold":
                break
        return rec

    def raw(self, now: datetime | None = None) -> tuple[bytes, str | None]:
        """One raw value and the defect injected into it (None for a clean record)."""
        now = now or datetime.now(timezone.utc)
        rec = self.record(now)
        if self.rng.random() >= self.defect_rate:
            return orjson.dumps(rec), None
        defect = self.rng.choice(DEFECTS)
        features = self.dataset.source_features
        if defect == "missing_required":
            required = [f.name for f in features if f.required] or [features[0].name]
            rec.pop(self.rng.choice(required), None)
        elif defect == "wrong_type":
            typed = [f.name for f in features if f.dtype.name not in ("string",)] or [features[0].name]
            rec[self.rng.choice(typed)] = {"unexpected": "object"}
        elif defect == "out_of_range":
            bounded = [f for f in features if f.min is not None and f.dtype.is_numeric]
            if bounded:
                f = self.rng.choice(bounded)
                rec[f.name] = float(parse_bound(f.min, f.dtype)) - 1
        elif defect == "unknown_field":
            rec["unexpected_field"] = "drift"
        elif defect == "not_json":
            return b"{this is not json", defect
        elif defect == "stale":
            q = self.dataset.quality
            if q.event_time and q.freshness:
                rec[q.event_time] = (now - q.freshness * 2).isoformat()
        return orjson.dumps(rec), defect

"""Sample records for any contract: mostly valid, with a share of realistic defects."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import orjson
import rstr

from .dtypes import parse_bound
from .expr import EvalError, compile_expr, field_definition
from .model import Dataset, Feature, Tier
from .quality import DatasetScorer

__all__ = ["DEFECTS", "SampleGenerator"]

#: Kinds of defect injected; each lands in a lower tier or the DLQ for a visible reason.
DEFECTS = ("missing_required", "wrong_type", "out_of_range", "unknown_field", "not_json", "stale", "sloppy")


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
        features = {f.name: f for f in dataset.source_features}
        # Fields that a rule defines from others (``abs(amount - quantity * unit_price) < 0.01``)
        # are computed, so that clean records can reach gold.
        self._derived = [(features[name], defined) for rule in dataset.quality.rules
                         if (found := field_definition(compile_expr(rule.expr))) is not None
                         for name, defined in [found] if name in features]

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
            self._derive(rec)
            if self.scorer.process(rec, now).report.tier == Tier.GOLD:
                break
        return rec

    def _derive(self, rec: dict[str, Any]) -> None:
        """Compute the fields that rules define from other fields (see ``expr.field_definition``)."""
        for feature, defined in self._derived:
            try:
                value = defined.evaluate(rec.__getitem__)
            except (EvalError, LookupError):
                continue
            if feature.dtype.name == "decimal" and isinstance(value, (int, float, Decimal)):
                value = str(Decimal(str(value)).quantize(Decimal(1).scaleb(-(feature.dtype.scale or 0))))
            elif feature.dtype.name in ("int", "bigint") and isinstance(value, float):
                value = round(value)
            rec[feature.name] = value

    def _spoil(self, rec: dict[str, Any], now: datetime, target: Tier) -> None:
        """A sloppy producer: break soft checks (constraints, schema, freshness), never a
        critical one, until the record scores ``target`` (silver or bronze) or lower."""
        above = (Tier.GOLD,) if target == Tier.SILVER else (Tier.GOLD, Tier.SILVER)
        soft: list[Any] = [f for f in self.dataset.source_features
                           if f.name in rec and (f.pattern or f.allowed or f.max_length
                                                 or (f.dtype.is_numeric and (f.min is not None or f.max is not None)))]
        self.rng.shuffle(soft)
        steps: list[Any] = ["unknown_field", "stale", *soft]
        for step in steps:
            if self.scorer.process(rec, now).report.tier not in above:
                return
            if step == "unknown_field":
                rec["unexpected_field"] = "drift"
            elif step == "stale":
                q = self.dataset.quality
                if q.event_time and q.freshness and q.event_time in rec:
                    rec[q.event_time] = (now - q.freshness * 2).isoformat()
            elif step.dtype.is_numeric:  # past max rather than min: large values also break more rules
                rec[step.name] = (float(parse_bound(step.max, step.dtype)) + 1 if step.max is not None
                                  else float(parse_bound(step.min, step.dtype)) - 1)
            elif step.dtype.name == "string":  # a string still, so not critical
                rec[step.name] = "?" * ((step.max_length or 1) + 1)

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
        elif defect == "sloppy":
            self._spoil(rec, now, self.rng.choice((Tier.SILVER, Tier.BRONZE)))
        elif defect == "stale":
            q = self.dataset.quality
            if q.event_time and q.freshness:
                rec[q.event_time] = (now - q.freshness * 2).isoformat()
        return orjson.dumps(rec), defect

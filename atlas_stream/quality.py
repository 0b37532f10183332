"""Per-record quality scoring and tiering: the checks, their order, the score and the tier."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import partial
from typing import Any, Callable, Mapping, Sequence

from atlas_stream.dtypes import CoercionError, canonical_text, coercer, parse_bound
from atlas_stream.expr import EvalError, Expr, compile_expr
from atlas_stream.model import Feature, QualityConfig, Transformation
from atlas_stream.transform import Transformer

__all__ = ["DatasetScorer", "QualityReport", "ScoredRecord", "grade"]

_UTC = timezone.utc
_ABSENT: Any = object()

Check = tuple[Callable[[Any], bool], str]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The outcome of one record's checks. ``score`` is passed / counted (1.0 when nothing counted)."""

    tier: str
    score: float
    failures: tuple[str, ...]
    critical: bool
    passed: int
    counted: int


@dataclass(frozen=True, slots=True)
class ScoredRecord:
    """A scored record: ``record`` holds every schema feature in schema order (coerced value, or
    None when missing or uncoercible); ``extra`` the fields outside the schema as received;
    ``invalid`` the original value of each feature that failed its type check."""

    record: dict[str, Any]
    extra: dict[str, Any]
    invalid: dict[str, Any]
    report: QualityReport


def grade(passed: int, counted: int, critical: bool, gold: float, silver: float) -> tuple[float, str]:
    """(score, tier): rejected if critical, else gold/silver by threshold (>=), else bronze."""
    score = passed / counted if counted else 1.0
    if critical:
        return score, "rejected"
    if score >= gold:
        return score, "gold"
    if score >= silver:
        return score, "silver"
    return score, "bronze"


def _pattern_check(rx: re.Pattern[str], is_text: bool) -> Callable[[Any], bool]:
    if is_text:
        return lambda v: rx.fullmatch(v) is not None
    return lambda v: rx.fullmatch(canonical_text(v)) is not None


def _length_check(limit: int) -> Callable[[Any], bool]:
    return lambda v: len(canonical_text(v)) <= limit


def _feature_checks(feature: Feature) -> tuple[Check, ...]:
    """The constraint checks of one feature, in the documented order. Raises ValueError."""
    name, dtype = feature.name, feature.dtype
    checks: list[Check] = []
    if feature.min is not None:
        checks.append((partial(operator.le, parse_bound(feature.min, dtype)), f"min:{name}"))
    if feature.max is not None:
        checks.append((partial(operator.ge, parse_bound(feature.max, dtype)), f"max:{name}"))
    if feature.pattern is not None:
        try:
            rx = re.compile(feature.pattern)
        except re.error as exc:
            raise ValueError(f"{name}: bad pattern {feature.pattern!r}: {exc}") from None
        checks.append((_pattern_check(rx, dtype.name == "string"), f"pattern:{name}"))
    if feature.allowed is not None:
        conv = coercer(dtype)
        try:
            allowed = frozenset(conv(a) for a in feature.allowed)
        except CoercionError as exc:
            raise ValueError(f"{name}: allowed value does not fit {dtype}: {exc}") from None
        checks.append((allowed.__contains__, f"allowed:{name}"))
    if feature.max_length is not None:
        checks.append((_length_check(feature.max_length), f"max_length:{name}"))
    return tuple(checks)


class DatasetScorer:
    """Scores records against one schema version. Deterministic and pure: same record and
    ingest time, same result. Never raises on a bad record."""

    def __init__(self, schema: Sequence[Feature], quality: QualityConfig,
                 transformations: Sequence[Transformation] = (),
                 source_features: Sequence[Feature] | None = None,
                 null_values: frozenset[str] = frozenset()) -> None:
        self.schema = tuple(schema)
        self.quality = quality
        self.transformations = tuple(transformations)
        self.source_features = tuple(schema if source_features is None else source_features)
        self.null_values = frozenset(null_values)
        self._transformer = Transformer(self.source_features, self.transformations, self.null_values)
        self._names = frozenset(f.name for f in self.schema)
        self._plans = tuple(
            (f.name, coercer(f.dtype), f.required, f"completeness:{f.name}", f"type:{f.name}",
             _feature_checks(f))
            for f in self.schema
        )
        self._gold = float(quality.tiers.get("gold", 1.0))
        self._silver = float(quality.tiers.get("silver", 0.8))
        self._rules: tuple[tuple[Expr, tuple[str, ...], str], ...] = tuple(
            (e, tuple(sorted(e.fields)), f"rule:{rule.name}")
            for rule in quality.rules
            for e in (compile_expr(rule.expr),)
        )
        self._event_time: str | None = None
        self._freshness: timedelta | None = None
        if quality.event_time is not None and quality.freshness is not None:
            by_name = {f.name: f for f in self.schema}
            if quality.event_time in by_name:
                if not by_name[quality.event_time].dtype.is_temporal:
                    raise ValueError(f"event_time field {quality.event_time!r} must be a date or timestamp")
                self._event_time = quality.event_time
                self._freshness = quality.freshness

    def with_schema(self, schema: Sequence[Feature]) -> DatasetScorer:
        """A scorer for another schema version, with the same quality config and transformations."""
        return DatasetScorer(schema, self.quality, self.transformations, self.source_features,
                             self.null_values)

    def process(self, raw: Mapping[str, Any], ingest_time: datetime) -> ScoredRecord:
        """Apply the transformations to ``raw``, then score the result."""
        if self.transformations:
            return self.score(self._transformer.apply(raw), ingest_time)
        return self.score(raw, ingest_time)

    def score(self, record: Mapping[str, Any], ingest_time: datetime) -> ScoredRecord:
        """Score an already-transformed record (``ingest_time`` naive means UTC)."""
        get = record.get
        nulls = self.null_values
        out: dict[str, Any] = {}
        invalid: dict[str, Any] = {}
        failures: list[str] = []
        passed = counted = 0
        critical = False
        for name, conv, required, f_missing, f_type, checks in self._plans:
            v = get(name, _ABSENT)
            # completeness (inlined is_missing: this loop is the hot path)
            if v is _ABSENT or v is None or (isinstance(v, str) and (not (s := v.strip()) or s in nulls)):
                counted += 1
                failures.append(f_missing)
                out[name] = None
                critical = critical or required
                continue
            try:
                cv = conv(v)
            except CoercionError:
                counted += 2
                passed += 1
                failures.append(f_type)
                out[name] = None
                invalid[name] = v
                critical = critical or required
                continue
            out[name] = cv
            n = 2 + len(checks)
            counted += n
            passed += n
            for pred, fail in checks:
                if not pred(cv):
                    passed -= 1
                    failures.append(fail)

        counted += 1
        if self._names.issuperset(record):
            extra: dict[str, Any] = {}
            passed += 1
        else:
            extra = {k: v for k, v in record.items() if k not in self._names}
            failures.append("schema")

        if self._event_time is not None:
            event = out[self._event_time]
            if event is not None:
                counted += 1
                if type(event) is date:
                    event = datetime(event.year, event.month, event.day, tzinfo=_UTC)
                now = ingest_time if ingest_time.tzinfo is not None else ingest_time.replace(tzinfo=_UTC)
                assert self._freshness is not None
                if now - event <= self._freshness:
                    passed += 1
                else:
                    failures.append("freshness")

        for expr, fields, fail in self._rules:
            for f in fields:
                if out.get(f) is None:
                    break
            else:
                counted += 1
                try:
                    ok = expr.evaluate(out.__getitem__) is True
                except EvalError:
                    ok = False
                if ok:
                    passed += 1
                else:
                    failures.append(fail)

        score, tier = grade(passed, counted, critical, self._gold, self._silver)
        return ScoredRecord(out, extra, invalid,
                            QualityReport(tier, score, tuple(failures), critical, passed, counted))

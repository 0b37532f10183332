"""Per-record quality scoring and tiering: one implementation of each check of :data:`atlas_stream.checks.PLAN`."""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import partial
from typing import Any, Callable, Mapping, Sequence

from atlas_stream.checks import SCHEMA, DatasetPlan, grade, plan_dataset
from atlas_stream.dtypes import CoercionError, canonical_text, coercer, is_missing, parse_bound
from atlas_stream.expr import EvalError, compile_expr
from atlas_stream.model import Feature, QualityConfig, Rule, Tier, Transformation
from atlas_stream.transform import Transformer

__all__ = ["CHECKS", "DatasetScorer", "QualityReport", "ScoredRecord", "grade"]

_UTC = timezone.utc
_ABSENT: Any = object()
_SCHEMA_FAILURE = SCHEMA.failure()

#: A constraint on a value that passed its type check.
Predicate = Callable[[Any], bool]
#: A record check: (record, scored features, ingest time) -> passed, or None when not counted.
Step = Callable[[Mapping[str, Any], dict[str, Any], datetime], "bool | None"]


@dataclass(frozen=True, slots=True)
class QualityReport:
    """The outcome of one record's checks. ``score`` is passed / counted (1.0 when nothing counted)."""

    tier: Tier
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


# ------------------------------------------------------------------ gates


def _type(feature: Feature) -> Callable[[Any], Any]:
    """-> the coercer of the feature's dtype (raises CoercionError)."""
    return coercer(feature.dtype)


# ------------------------------------------------------------------ constraints: feature -> predicate


def _min(feature: Feature) -> Predicate:
    return partial(operator.le, parse_bound(feature.min, feature.dtype))


def _max(feature: Feature) -> Predicate:
    return partial(operator.ge, parse_bound(feature.max, feature.dtype))


def _pattern(feature: Feature) -> Predicate:
    try:
        rx = re.compile(feature.pattern or "")
    except re.error as exc:
        raise ValueError(f"{feature.name}: bad pattern {feature.pattern!r}: {exc}") from None
    if feature.dtype.name == "string":
        return lambda v: rx.fullmatch(v) is not None
    return lambda v: rx.fullmatch(canonical_text(v)) is not None


def _allowed(feature: Feature) -> Predicate:
    conv = coercer(feature.dtype)
    try:
        allowed = frozenset(conv(a) for a in feature.allowed or ())
    except CoercionError as exc:
        raise ValueError(f"{feature.name}: allowed value does not fit {feature.dtype}: {exc}") from None
    return allowed.__contains__


def _max_length(feature: Feature) -> Predicate:
    limit = feature.max_length or 0
    return lambda v: len(canonical_text(v)) <= limit


# ------------------------------------------------------------------ record checks: subject, plan -> step


def _schema(_: None, plan: DatasetPlan) -> Step:
    names = frozenset(f.feature.name for f in plan.fields)
    return lambda record, out, now: names.issuperset(record)


def _freshness(event: Feature, plan: DatasetPlan) -> Step:
    name, limit = event.name, plan.freshness
    assert limit is not None

    def fresh(record: Mapping[str, Any], out: dict[str, Any], now: datetime) -> bool | None:
        value = out[name]
        if value is None:
            return None
        if type(value) is date:
            value = datetime(value.year, value.month, value.day, tzinfo=_UTC)
        return bool(now - value <= limit)
    return fresh


def _rule(rule: Rule, plan: DatasetPlan) -> Step:
    expr = compile_expr(rule.expr)
    fields = tuple(sorted(expr.fields))

    def holds(record: Mapping[str, Any], out: dict[str, Any], now: datetime) -> bool | None:
        for f in fields:
            if out.get(f) is None:
                return None
        try:
            return expr.evaluate(out.__getitem__) is True
        except EvalError:
            return False
    return holds


#: ``completeness`` is :func:`~atlas_stream.dtypes.is_missing` (or an absent key), written out in
#: :meth:`DatasetScorer.score`: a function call per field would cost a tenth of the scoring time.
GATES: dict[str, Callable[..., Any]] = {"completeness": is_missing, "type": _type}
CONSTRAINT_CHECKS: dict[str, Callable[[Feature], Predicate]] = {
    "min": _min, "max": _max, "pattern": _pattern, "allowed": _allowed, "max_length": _max_length}
RECORD_CHECKS: dict[str, Callable[[Any, DatasetPlan], Step]] = {
    "schema": _schema, "freshness": _freshness, "rule": _rule}
#: This engine's implementation of each check of the plan, by check name.
CHECKS: dict[str, Callable[..., Any]] = {**GATES, **CONSTRAINT_CHECKS, **RECORD_CHECKS}


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
        plan = plan_dataset(self.schema, quality)
        self._fields = tuple(
            (fp.feature.name, GATES["type"](fp.feature), fp.feature.required, fp.missing, fp.bad_type,
             tuple((CONSTRAINT_CHECKS[check.name](fp.feature), fail) for check, fail in fp.constraints))
            for fp in plan.fields
        )
        self._steps = tuple((RECORD_CHECKS[check.name](subject, plan), fail)
                            for check, subject, fail in plan.record_checks)
        self._gold, self._silver = plan.gold, plan.silver

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
        for name, conv, required, f_missing, f_type, checks in self._fields:
            v = get(name, _ABSENT)
            # completeness (is_missing written out: this loop is the hot path)
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

        now = ingest_time if ingest_time.tzinfo is not None else ingest_time.replace(tzinfo=_UTC)
        for step, fail in self._steps:
            ok = step(record, out, now)
            if ok is None:
                continue
            counted += 1
            if ok:
                passed += 1
            else:
                failures.append(fail)
        names = self._names
        extra = {k: v for k, v in record.items() if k not in names} if _SCHEMA_FAILURE in failures else {}

        score, tier = grade(passed, counted, critical, self._gold, self._silver)
        return ScoredRecord(out, extra, invalid,
                            QualityReport(tier, score, tuple(failures), critical, passed, counted))

"""The quality plan: which checks run, in which order and under which failure names.

Both scoring engines follow :data:`PLAN`: the per-record engine (:mod:`atlas_stream.quality`,
used by the stream) and the Arrow engine (:mod:`atlas_stream.batch.arrow_quality`, used by the
batch command and Spark). Each engine holds one implementation per check name in its ``CHECKS``
dict; ``tests/unit/test_checks.py`` fails when an engine lacks a check of the plan or has one the
plan does not list, and ``tests/unit/batch/test_arrow_quality.py`` when the two disagree.

A record's checks, in order (docs/quality.md is the reader's version):

1. for each schema feature, in schema order: ``completeness``, then ``type`` (the *gates*: a
   failure skips the feature's later checks, and makes the record critical when the feature is
   required), then one check per constraint the feature declares, in :data:`PLAN` order;
2. ``schema`` once per record, ``freshness`` once when the dataset has an event time, then one
   ``rule`` per quality rule, in declared order.

Every counted check weighs the same: score = passed / counted, and the tier follows from the
score and the dataset's thresholds (:func:`grade`).

To add a field constraint (say ``min_length``):

1. ``metadata/contract.schema.json``: the key under ``$defs.feature`` (and ``$defs.transformation``,
   for ``derive``), and its value checks in ``contracts.py`` if the JSON Schema cannot say them;
2. ``model.py``: a :class:`~atlas_stream.model.Feature` attribute of the same name (the registry
   form follows the attributes, the contract loader reads :data:`CONSTRAINT_KEYS`);
3. here: a ``Check("min_length", ...)`` line in :data:`PLAN`, at the place it runs;
4. one function per engine, in ``CONSTRAINT_CHECKS`` of ``quality.py`` and of
   ``batch/arrow_quality.py``;
5. ``docs/quality.md``: a row of the constraint table (a test looks for the failure name).

The contract loader, the registry form of a feature and the failure lists follow by themselves.
Optional: ``schema_json.py`` (the JSON Schema keyword it maps to, if any) and ``samples.py``
(sample records that respect it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Sequence

from .model import Feature, QualityConfig, Tier

__all__ = ["CONSTRAINTS", "CONSTRAINT_KEYS", "PLAN", "Check", "DatasetPlan", "Dimension", "FieldPlan", "Scope",
           "grade", "plan_dataset"]


class Dimension(StrEnum):
    """The data-quality dimension a check measures."""

    COMPLETENESS = "completeness"
    VALIDITY = "validity"
    SCHEMA = "schema_compliance"
    TIMELINESS = "timeliness"
    CONSISTENCY = "consistency"


class Scope(StrEnum):
    """How often a check runs, and what its failure name is made of."""

    #: Once per schema feature; a failure skips the feature's later checks. ``<name>:<field>``.
    GATE = "gate"
    #: Once per feature that declares the contract key ``reads``, counted only when the value
    #: passed its type check. ``<name>:<field>``.
    CONSTRAINT = "constraint"
    #: Once per record (``freshness``: only when the event time passed its type check). ``<name>``.
    RECORD = "record"
    #: Once per quality rule whose fields all passed their type checks. ``<name>:<rule name>``.
    RULE = "rule"


@dataclass(frozen=True, slots=True)
class Check:
    """One check of the plan: its name (the prefix of its failure names), the dimension it
    measures, how often it runs, the contract key it reads, and when it passes."""

    name: str
    dimension: Dimension
    scope: Scope
    reads: str
    passes_when: str

    def failure(self, subject: str | None = None) -> str:
        """The failure name: ``<name>:<field or rule>``, or ``<name>`` for a record check."""
        return self.name if subject is None else f"{self.name}:{subject}"


#: Every check, in the order a record goes through them.
PLAN: tuple[Check, ...] = (
    Check("completeness", Dimension.COMPLETENESS, Scope.GATE, "required", "the value is not missing"),
    Check("type", Dimension.VALIDITY, Scope.GATE, "dtype", "the value can be read as the dtype"),
    Check("min", Dimension.VALIDITY, Scope.CONSTRAINT, "min", "value >= min"),
    Check("max", Dimension.VALIDITY, Scope.CONSTRAINT, "max", "value <= max"),
    Check("pattern", Dimension.VALIDITY, Scope.CONSTRAINT, "pattern", "the regex matches the whole canonical text"),
    Check("allowed", Dimension.VALIDITY, Scope.CONSTRAINT, "allowed", "the value is one of the allowed values"),
    Check("max_length", Dimension.VALIDITY, Scope.CONSTRAINT, "max_length",
          "the canonical text has at most max_length characters"),
    Check("schema", Dimension.SCHEMA, Scope.RECORD, "features", "the record has no field outside the schema"),
    Check("freshness", Dimension.TIMELINESS, Scope.RECORD, "quality.freshness",
          "ingest_time - event_time <= freshness"),
    Check("rule", Dimension.CONSISTENCY, Scope.RULE, "quality.rules", "the rule's expression is exactly true"),
)
_BY_NAME = {c.name: c for c in PLAN}
COMPLETENESS, TYPE, SCHEMA, FRESHNESS, RULE = (_BY_NAME[n] for n in ("completeness", "type", "schema", "freshness",
                                                                       "rule"))
#: The per-feature constraint checks, in plan order.
CONSTRAINTS: tuple[Check, ...] = tuple(c for c in PLAN if c.scope is Scope.CONSTRAINT)
#: The :class:`Feature` attributes (and contract keys) that hold constraints, in plan order.
CONSTRAINT_KEYS: tuple[str, ...] = tuple(c.reads for c in CONSTRAINTS)


@dataclass(frozen=True, slots=True)
class FieldPlan:
    """The checks of one schema feature: the two gates' failure names, then each constraint the
    feature declares with its failure name, in plan order."""

    feature: Feature
    missing: str
    bad_type: str
    constraints: tuple[tuple[Check, str], ...]


@dataclass(frozen=True, slots=True)
class DatasetPlan:
    """The plan applied to one schema and quality config: what each engine compiles.

    ``record_checks`` holds the record and rule checks in order as ``(check, subject, failure)``:
    the subject is None for ``schema``, the event-time feature for ``freshness``, the
    :class:`Rule` for ``rule``."""

    fields: tuple[FieldPlan, ...]
    record_checks: tuple[tuple[Check, Any, str], ...]
    freshness: timedelta | None
    gold: float
    silver: float

    @property
    def failure_names(self) -> tuple[str, ...]:
        """Every failure name the dataset can report, in the order failures are listed."""
        names: list[str] = []
        for f in self.fields:
            names += [f.missing, f.bad_type, *(fail for _, fail in f.constraints)]
        names += [fail for _, _, fail in self.record_checks]
        return tuple(names)


def plan_dataset(schema: Sequence[Feature], quality: QualityConfig) -> DatasetPlan:
    """The checks of a dataset, in order. Raises ValueError when the event time is not temporal."""
    fields = tuple(
        FieldPlan(f, COMPLETENESS.failure(f.name), TYPE.failure(f.name),
                  tuple((c, c.failure(f.name)) for c in CONSTRAINTS if getattr(f, c.reads) is not None))
        for f in schema
    )
    records: list[tuple[Check, Any, str]] = [(SCHEMA, None, SCHEMA.failure())]
    freshness: timedelta | None = None
    by_name = {f.name: f for f in schema}
    if quality.event_time is not None and quality.freshness is not None and quality.event_time in by_name:
        event = by_name[quality.event_time]
        if not event.dtype.is_temporal:
            raise ValueError(f"event_time field {quality.event_time!r} must be a date or timestamp")
        records.append((FRESHNESS, event, FRESHNESS.failure()))
        freshness = quality.freshness
    records += [(RULE, rule, RULE.failure(rule.name)) for rule in quality.rules]
    return DatasetPlan(fields, tuple(records), freshness,
                       float(quality.tiers.get("gold", 1.0)), float(quality.tiers.get("silver", 0.8)))


def grade(passed: int, counted: int, critical: bool, gold: float, silver: float) -> tuple[float, Tier]:
    """(score, tier): rejected if critical, else gold/silver by threshold (>=), else bronze."""
    score = passed / counted if counted else 1.0
    if critical:
        return score, Tier.REJECTED
    if score >= gold:
        return score, Tier.GOLD
    if score >= silver:
        return score, Tier.SILVER
    return score, Tier.BRONZE


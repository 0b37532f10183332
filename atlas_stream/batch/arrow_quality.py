"""Vectorised scoring: a batch of raw columns -> typed features, tier, score and failures per row.

One implementation of each check of :data:`atlas_stream.checks.PLAN`, with the same order, score
and tier as :class:`atlas_stream.quality.DatasetScorer` (see docs/quality.md); each check is a
boolean mask over the batch. Failure lists are built from a
(rows x checks) matrix, so that every row lists its failures in the documented order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext
from typing import Any, Callable, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..checks import DatasetPlan, plan_dataset
from ..dtypes import INT64_MAX, INT64_MIN, CoercionError, coercer, parse_bound
from ..expr import compile_expr
from ..model import Feature, QualityConfig, Rule, Tier, Transformation
from .arrow_expr import FAILED, ArrowExpr, NotVectorised, dtype_kind, python_rows
from .arrow_const import const, const_array, i64
from .arrow_transform import ArrowTransformer, Columns, field_env
from .arrow_values import (Coerced, Mask, any_, canonical, coerce_column, forget_stripped, full, missing_mask,
                           nonzero, to_mask)

__all__ = ["CHECKS", "TIER_NAMES", "BatchScorer", "ScoredBatch"]

_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
_US = timedelta(microseconds=1)

#: A constraint: (coerced column, raw values) -> passes, on the rows whose value passed its type check.
Predicate = Callable[[Coerced, Any], Mask]
#: A record check: (raw columns, coerced features, rows, ingest time) -> (rows where it is counted,
#: None for every row; rows where it fails).
Step = Callable[[Columns, "dict[str, Coerced]", int, datetime], "tuple[Mask | None, Mask]"]


@dataclass
class ScoredBatch:
    """One scored batch: the schema features (typed, null when missing or not of their type),
    and per row the tier, score and failures, plus the failure count of each check."""

    features: dict[str, pa.Array]
    tier: pa.Array
    score: pa.Array
    failures: pa.Array
    failure_counts: dict[str, int]
    #: each row's tier as its position in TIER_NAMES (int8): cheaper to count and filter by
    tier_index: pa.Array

    @property
    def num_rows(self) -> int:
        return len(self.tier)


def _scalar(value: Any, typ: pa.DataType) -> pa.Scalar:
    if isinstance(value, datetime):
        return const((value - _EPOCH) // _US, pa.int64()).cast(typ)
    if isinstance(value, date) and pa.types.is_date32(typ):
        return const((value - _EPOCH.date()).days, pa.int32()).cast(typ)
    return pa.scalar(value, typ)


def _int_bound(bound: Any, is_min: bool) -> int | None:
    """An int field's bound as an int with the same meaning (v >= 0.5 <=> v >= 1)."""
    if isinstance(bound, int):
        return bound
    b = Decimal(repr(bound)) if isinstance(bound, float) else Decimal(bound)
    return int(b.to_integral_value(ROUND_CEILING if is_min else ROUND_FLOOR))


def _bound_check(feature: Feature, is_min: bool) -> Predicate:
    dtype = feature.dtype
    bound = parse_bound(feature.min if is_min else feature.max, dtype)
    cmp = pc.greater_equal if is_min else pc.less_equal
    name = dtype.name
    if name in ("int", "bigint"):
        b = _int_bound(bound, is_min)
        assert b is not None
        if b > INT64_MAX or b < INT64_MIN:
            everything = (b < INT64_MIN) if is_min else (b > INT64_MAX)
            return lambda c, _: full(len(c.ok), everything)
        scalar_b = const(b, pa.int64())
        return lambda c, _: to_mask(cmp(c.values, scalar_b))
    if name in ("float", "double"):
        fb = float(bound)
        if fb != bound:  # an int bound beyond 2**53: compare exactly in Python
            return lambda c, _: pa.array([v is not None and (v >= bound if is_min else v <= bound)
                                          for v in c.values.to_pylist()], pa.bool_())
        scalar_fb = const(fb, pa.float64())
        return lambda c, _: to_mask(cmp(c.values, scalar_fb))
    if name == "decimal":
        precision, scale = dtype.precision or 38, dtype.scale or 0
        with localcontext() as ctx:
            ctx.prec = 400  # exact: a bound may have any number of digits
            q = Decimal(1).scaleb(-scale)
            db = Decimal(bound).quantize(q, ROUND_CEILING if is_min else ROUND_FLOOR)
            largest = Decimal(10) ** (precision - scale) - q
        if db > largest or db < -largest:
            all_pass = (db < -largest) if is_min else (db > largest)
            return lambda c, _: full(len(c.ok), all_pass)
        scalar = const(db, pa.decimal128(precision, scale))
        return lambda c, _: to_mask(cmp(c.values, scalar))
    typ = pa.date32() if name == "date" else pa.timestamp("us", tz="UTC")
    scalar = _scalar(bound, typ)
    return lambda c, _: to_mask(cmp(c.values, scalar))


def _pattern_check(feature: Feature) -> Predicate:
    rx = re.compile(feature.pattern or "")
    dtype = feature.dtype
    try:
        pa.compute.match_substring_regex(const_array(["x"], pa.string()), r"\A(?:" + rx.pattern + r")\z")
        re2: str | None = r"\A(?:" + rx.pattern + r")\z"
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        re2 = None  # a construct RE2 lacks (backreferences, lookaround): Python for every row

    # RE2 and Python's re agree on ASCII text, except that Python's \s also matches \x0b and
    # \x1c-\x1f: with \s or \S in the pattern only printable ASCII text is left to RE2.
    spaces = "\\s" in rx.pattern or "\\S" in rx.pattern

    # A column with few distinct values (country codes, ...) is matched once per distinct value:
    # decided on the first batch, kept for the run (the answer is the same either way).
    few_values: list[bool | None] = [None]

    def check(c: Coerced, raw: Any) -> Mask:
        text = canonical(c, dtype, raw)
        if few_values[0] is not False and len(text) >= 1024:
            encoded = pc.dictionary_encode(text)  # null text (rows not of the type): null index
            distinct = encoded.dictionary
            if few_values[0] is None:
                few_values[0] = len(distinct) * 16 <= len(text)
            if few_values[0]:
                every = full(len(distinct), True)
                return to_mask(pc.take(matches(Coerced(distinct, every), distinct), encoded.indices))
        return matches(c, text)

    def matches(c: Coerced, text: pa.Array) -> Mask:
        if re2 is not None:
            # Other text is Python's to match, one value at a time.
            # ascii_is_printable: every character in \x20-\x7e (true for ""), without a regex pass
            simple = to_mask(pc.ascii_is_printable(text) if spaces else pc.string_is_ascii(text))
            out = pc.and_(to_mask(pc.match_substring_regex(text, re2)), simple)
            slow = nonzero(pc.and_(c.ok, pc.invert(simple)))
        else:
            out = full(len(text), False)
            slow = nonzero(c.ok)
        if slow:
            matched = [rx.fullmatch(text[i].as_py()) is not None for i in slow]
            out = pc.replace_with_mask(out, _flags(len(text), slow), pa.array(matched, pa.bool_()))
        return out

    return check


def _allowed_check(feature: Feature) -> Predicate:
    dtype = feature.dtype
    conv = coercer(dtype)
    try:
        allowed = [conv(a) for a in feature.allowed or ()]
    except CoercionError as exc:
        raise ValueError(f"{feature.name}: allowed value does not fit {dtype}: {exc}") from None
    from ..lake import arrow_type

    typ = arrow_type(dtype)
    if dtype.name == "timestamp":
        value_set = pa.array([(v - _EPOCH) // _US for v in allowed], pa.int64()).cast(typ)
    else:
        value_set = const_array(allowed, typ) if typ == pa.string() else pa.array(allowed, typ)
    if pa.types.is_floating(typ):
        value_set = pc.add(value_set, const(0.0))  # -0.0 == 0.0, as in a Python set

        def check_float(c: Coerced, _: Any) -> Mask:
            return to_mask(pc.is_in(pc.add(c.values, const(0.0)), value_set))
        return check_float
    return lambda c, _: to_mask(pc.is_in(c.values, value_set))


def _length_check(feature: Feature) -> Predicate:
    assert feature.max_length is not None
    limit = const(feature.max_length)
    dtype = feature.dtype

    def check(c: Coerced, raw: Any) -> Mask:
        text = canonical(c, dtype, raw)
        # A value has at most as many characters as bytes: when no value has more bytes than the
        # limit, the byte lengths (no pass over the text) give the answer.
        by_bytes = to_mask(pc.less_equal(pc.binary_length(text), limit))
        if by_bytes.true_count == len(text) - text.null_count:
            return by_bytes
        return to_mask(pc.less_equal(pc.utf8_length(text), limit))
    return check


def _min(feature: Feature) -> Predicate:
    return _bound_check(feature, True)


def _max(feature: Feature) -> Predicate:
    return _bound_check(feature, False)


# ------------------------------------------------------------------ record checks: subject, plan -> step


def _schema(_: None, plan: DatasetPlan) -> Step:
    names = frozenset(f.feature.name for f in plan.fields)

    def unknown_fields(cols: Columns, typed: dict[str, Coerced], n: int, now: datetime) -> tuple[Mask | None, Mask]:
        out = full(n, False)
        for name, col in cols.items():
            if name not in names:
                if col.present is None:
                    return None, full(n, True)
                out = pc.or_(out, col.present)
        return None, out
    return unknown_fields


def _freshness(event: Feature, plan: DatasetPlan) -> Step:
    name = event.name
    assert plan.freshness is not None
    limit_us = plan.freshness // _US

    def stale(cols: Columns, typed: dict[str, Coerced], n: int, now: datetime) -> tuple[Mask | None, Mask]:
        c = typed[name]
        values = c.values
        if pa.types.is_date32(values.type):
            us = pc.multiply(pc.cast(pc.cast(values, pa.int32()), pa.int64()), i64(86_400_000_000))
        else:
            us = pc.cast(values, pa.int64())
        now_us = (now - _EPOCH) // _US
        fresh = to_mask(pc.less_equal(pc.subtract(i64(now_us), us), i64(limit_us)))
        return c.ok, pc.and_(c.ok, pc.invert(fresh))
    return stale


def _rule(rule: Rule, plan: DatasetPlan) -> Step:
    compiled = ArrowExpr(compile_expr(rule.expr))
    dtypes = {f.feature.name: f.feature.dtype for f in plan.fields}

    def broken(cols: Columns, typed: dict[str, Coerced], n: int, now: datetime) -> tuple[Mask | None, Mask]:
        applies = full(n, True)
        env: dict[str, tuple[str, pa.Array]] = {}
        for name in compiled.fields:
            c = typed[name]
            applies = pc.and_(applies, c.ok)
            kind = dtype_kind(dtypes[name])
            env[name] = (kind, field_env(kind, c.values))
        if not any_(applies):
            return applies, full(n, False)
        try:
            passed = compiled.true_mask(env, n)
        except NotVectorised:
            columns = {name: typed[name].values.to_pylist() for name in compiled.fields}
            rows = nonzero(applies)
            held = [v is not FAILED and v is True for v in python_rows(compiled.expr, columns, rows)]
            passed = pc.replace_with_mask(full(n, False), _flags(n, rows), pa.array(held, pa.bool_()))
        return applies, pc.and_(applies, pc.invert(passed))
    return broken


GATES: dict[str, Callable[..., Any]] = {"completeness": missing_mask, "type": coerce_column}
CONSTRAINT_CHECKS: dict[str, Callable[[Feature], Predicate]] = {
    "min": _min, "max": _max, "pattern": _pattern_check, "allowed": _allowed_check, "max_length": _length_check}
RECORD_CHECKS: dict[str, Callable[[Any, DatasetPlan], Step]] = {
    "schema": _schema, "freshness": _freshness, "rule": _rule}
#: This engine's implementation of each check of the plan, by check name.
CHECKS: dict[str, Callable[..., Any]] = {**GATES, **CONSTRAINT_CHECKS, **RECORD_CHECKS}


class BatchScorer:
    """Scores batches of one dataset against one schema, with the stream's exact semantics."""

    def __init__(self, schema: Sequence[Feature], quality: QualityConfig,
                 transformations: Sequence[Transformation] = (),
                 source_features: Sequence[Feature] | None = None,
                 null_values: frozenset[str] = frozenset()) -> None:
        self.schema = tuple(schema)
        self.null_values = frozenset(null_values)
        self.transformer = ArrowTransformer(tuple(schema if source_features is None else source_features),
                                            transformations, self.null_values)
        self.names = frozenset(f.name for f in self.schema)
        plan = plan_dataset(self.schema, quality)
        self._fields = tuple((fp.feature, fp.feature.required,
                              tuple((CONSTRAINT_CHECKS[check.name](fp.feature), fail) for check, fail in fp.constraints))
                             for fp in plan.fields)
        self._steps = tuple(RECORD_CHECKS[check.name](subject, plan) for check, subject, _ in plan.record_checks)
        self._gold_min, self._silver_min = const(float(plan.gold)), const(float(plan.silver))
        self.check_names: tuple[str, ...] = plan.failure_names
        self._names_array = const_array(self.check_names, pa.string())

    def score(self, cols: Columns, n: int, ingest_time: datetime) -> ScoredBatch:
        """Transform and score ``n`` rows of raw columns (``ingest_time`` naive means UTC)."""
        forget_stripped()
        try:
            return self._score(cols, n, ingest_time)
        finally:
            forget_stripped()

    def _score(self, cols: Columns, n: int, ingest_time: datetime) -> ScoredBatch:
        cols = self.transformer.apply(cols, n)
        nulls = self.null_values
        missing_of, coerce = GATES["completeness"], GATES["type"]
        fails: list[Mask] = []
        # Checks counted per row: every check of every field and step, less the ones not counted
        # in the rows they do not apply to (few rows: most deductions are skipped by a popcount).
        counted_all = 0
        uncounted: list[tuple[Mask, int]] = []
        critical = full(n, False)
        typed: dict[str, Coerced] = {}
        for f, required, checks in self._fields:
            col = cols.get(f.name)
            missing = missing_of(col, n, nulls)
            present = pc.invert(missing)
            coerced = coerce(col.values if col is not None else pa.nulls(n), f.dtype, present)
            typed[f.name] = coerced
            valid = coerced.ok
            bad_type = pc.and_(present, pc.invert(valid))
            fails += [missing, bad_type]
            # 1 (completeness) + 1 if present (type) + the constraints if valid (valid rows are present)
            counted_all += len(checks) + 2
            uncounted += [(missing, len(checks) + 1), (bad_type, len(checks))]
            if required:
                critical = pc.or_(critical, pc.or_(missing, bad_type))
            raw = col.values if col is not None else None
            for pred, _ in checks:
                fails.append(pc.and_(valid, pc.invert(pred(coerced, raw))))
        now = ingest_time if ingest_time.tzinfo is not None else ingest_time.replace(tzinfo=_UTC)
        for step in self._steps:
            applies, fail = step(cols, typed, n, now)
            counted_all += 1
            if applies is not None:
                uncounted.append((pc.invert(applies), 1))
            fails.append(fail)
        counted = pa.repeat(i64(counted_all), n)
        for rows, checks_left_out in uncounted:
            if checks_left_out and rows.true_count:
                counted = pc.subtract(counted, pc.if_else(rows, i64(checks_left_out), _ZERO))
        return self._outcome(fails, counted, critical, typed, n)

    def _outcome(self, fails: list[Mask], counted: pa.Array, critical: Mask, typed: dict[str, Coerced],
                 n: int) -> ScoredBatch:
        k = len(fails)
        keys: list[pa.Array] = []
        counts: dict[str, int] = {}
        failing: Mask | None = None  # rows with at least one failure
        for j, (mask, name) in enumerate(zip(fails, self.check_names)):
            count = mask.true_count  # a popcount: most checks fail nowhere in a batch
            if count:
                counts[name] = count
                failing = mask if failing is None else pc.or_(failing, mask)
                rows = pc.indices_nonzero(mask)
                keys.append(pc.add(pc.multiply(pc.cast(rows, pa.int64()), i64(k)), i64(j)))
        if failing is None:
            offsets = pa.repeat(_ZERO, n + 1)
            which = _NO_ROWS
        else:
            # Row-major order of (row, check): each row's failures in the order of the checks.
            flat = pa.chunked_array(keys, pa.int64())
            flat = flat.take(pc.sort_indices(flat)).combine_chunks()
            row = pc.divide(flat, i64(k))
            which = pc.subtract(flat, pc.multiply(row, i64(k)))
            # a failing row's end offset is where its run of keys ends; other rows keep the last one
            ends = pc.cast(pc.run_end_encode(row).run_ends, pa.int64())
            tail = pc.fill_null(pc.fill_null_forward(pc.replace_with_mask(pa.nulls(n, pa.int64()), failing, ends)),
                                _ZERO)
            offsets = pa.concat_arrays([_FIRST_OFFSET, tail])
        nfail = pc.pairwise_diff(offsets).slice(1)
        failures = pa.ListArray.from_arrays(pc.cast(offsets, pa.int32()), self._names_array.take(which))
        score = pc.divide(pc.cast(pc.subtract(counted, nfail), pa.float64()), pc.cast(counted, pa.float64()))
        # the tier's position in TIER_NAMES (small integers), then its name: one pass over text
        g, sv, b, r = _TIER_INDEX
        index = pc.if_else(critical, r, pc.if_else(pc.greater_equal(score, self._gold_min), g,
                                                   pc.if_else(pc.greater_equal(score, self._silver_min), sv, b)))
        tier = TIER_NAMES.take(index)
        features = {f.name: typed[f.name].values for f in self.schema}
        return ScoredBatch(features, tier, score, failures, counts, index)


TIER_NAMES = const_array([Tier.GOLD.value, Tier.SILVER.value, Tier.BRONZE.value, Tier.REJECTED.value], pa.string())
_TIER_INDEX = tuple(const(i, pa.int8()) for i in range(4))


_ZERO = const(0, pa.int64())
_NO_ROWS = const_array([], pa.int64())
_FIRST_OFFSET = const_array([0], pa.int64())


def _flags(n: int, rows: list[int]) -> Mask:
    from .arrow_values import flags

    return flags(n, rows)

"""Scoring and tiering: which checks count, in what order, and the score and tier they give."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from atlas_stream.model import CSV_NULL_TOKENS, Feature, QualityConfig, Rule, Transformation, parse_dtype
from atlas_stream.quality import DatasetScorer, QualityReport, grade

from .builders import feat

UTC = timezone.utc
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
DROP = object()  # remove the key from the record


SCHEMA = (
    feat("id", "int", required=True, min=1),                           # 3 checks
    feat("name", "string", pattern="[A-Z][a-z]+", max_length=10),      # 4
    feat("price", "decimal(8,2)", min=0, max=1000),                    # 4
    feat("status", "string", allowed=("new", "done")),                 # 3
    feat("ts", "timestamp", required=True),                            # 2
    feat("active", "bool"),                                            # 2
    feat("day", "date", min="2024-01-01"),                             # 3
)
QUALITY = QualityConfig(
    rules=(Rule("positive_price", "price * 2 > 0"), Rule("id_small", "id < 1000")),
    event_time="ts",
    freshness=timedelta(hours=1),
)
GOOD: dict[str, Any] = {
    "id": 5, "name": "Alice", "price": "9.99", "status": "new", "ts": "2024-06-01T11:30:00Z",
    "active": "yes", "day": "2024-06-01",
}
FULL = 25  # 21 feature checks + schema + freshness + 2 rules


def with_(**changes: Any) -> dict[str, Any]:
    rec = dict(GOOD)
    for k, v in changes.items():
        if v is DROP:
            rec.pop(k, None)
        else:
            rec[k] = v
    return rec


# id, record, failures, passed, counted, tier
CASES: list[tuple[str, dict[str, Any], list[str], int, int, str]] = [
    ("good", GOOD, [], 25, 25, "gold"),
    ("id-from-str", with_(id="12"), [], 25, 25, "gold"),
    ("id-from-float", with_(id=12.0), [], 25, 25, "gold"),
    ("pattern", with_(name="alice"), ["pattern:name"], 24, 25, "silver"),
    ("max-length", with_(name="Bartholomew"), ["max_length:name"], 24, 25, "silver"),
    ("pattern-and-length", with_(name="bartholomew"), ["pattern:name", "max_length:name"], 23, 25, "silver"),
    # completeness fails: no other check of that feature counts
    ("name-absent", with_(name=DROP), ["completeness:name"], 21, 22, "silver"),
    ("name-none", with_(name=None), ["completeness:name"], 21, 22, "silver"),
    ("name-blank", with_(name="   "), ["completeness:name"], 21, 22, "silver"),
    # type fails: constraints of that feature do not count
    ("name-object", with_(name={"first": "A"}), ["type:name"], 22, 23, "silver"),
    ("name-array", with_(name=["A"]), ["type:name"], 22, 23, "silver"),
    ("name-number", with_(name=12), ["pattern:name"], 24, 25, "silver"),
    ("id-min", with_(id=0), ["min:id"], 24, 25, "silver"),
    ("id-max-rule", with_(id=5000), ["rule:id_small"], 24, 25, "silver"),
    # required feature missing or uncoercible: critical; its rules are not counted
    ("id-absent", with_(id=DROP), ["completeness:id"], 21, 22, "rejected"),
    ("id-fraction", with_(id=12.5), ["type:id"], 22, 23, "rejected"),
    ("id-fraction-str", with_(id="12.5"), ["type:id"], 22, 23, "rejected"),
    ("id-bool", with_(id=True), ["type:id"], 22, 23, "rejected"),
    ("id-word", with_(id="abc"), ["type:id"], 22, 23, "rejected"),
    ("price-max", with_(price="1000.01"), ["max:price"], 24, 25, "silver"),
    ("price-max-equal", with_(price=1000), [], 25, 25, "gold"),
    ("price-min-equal", with_(price="0.00"), ["rule:positive_price"], 24, 25, "silver"),
    ("price-scale", with_(price="1.234"), ["type:price"], 21, 22, "silver"),
    ("price-precision", with_(price="1000000.5"), ["type:price"], 21, 22, "silver"),
    ("status-allowed", with_(status="old"), ["allowed:status"], 24, 25, "silver"),
    ("status-case", with_(status="NEW"), ["allowed:status"], 24, 25, "silver"),
    ("status-na-not-null-by-default", with_(status="NA"), ["allowed:status"], 24, 25, "silver"),
    ("active-bad", with_(active="maybe"), ["type:active"], 24, 25, "silver"),
    ("active-1", with_(active=1), [], 25, 25, "gold"),
    ("day-min", with_(day="2023-12-31"), ["min:day"], 24, 25, "silver"),
    ("day-min-equal", with_(day="2024-01-01"), [], 25, 25, "gold"),
    ("day-datetime", with_(day="2024-06-01T00:00:00"), ["type:day"], 23, 24, "silver"),
    # freshness
    ("stale", with_(ts="2024-06-01T10:59:59Z"), ["freshness"], 24, 25, "silver"),
    ("fresh-exactly-equal", with_(ts="2024-06-01T11:00:00Z"), [], 25, 25, "gold"),
    ("fresh-offset", with_(ts="2024-06-01T13:00:00+02:00"), [], 25, 25, "gold"),
    ("fresh-offset-equal", with_(ts="2024-06-01T12:00:00+01:00"), [], 25, 25, "gold"),
    ("future-by-offset", with_(ts="2024-06-01T11:30:00-01:00"), [], 25, 25, "gold"),
    ("fresh-naive-is-utc", with_(ts="2024-06-01T11:00:00"), [], 25, 25, "gold"),
    ("stale-naive-is-utc", with_(ts="2024-06-01T10:00:00"), ["freshness"], 24, 25, "silver"),
    ("future", with_(ts="2030-01-01T00:00:00Z"), [], 25, 25, "gold"),
    ("ts-absent", with_(ts=DROP), ["completeness:ts"], 22, 23, "rejected"),
    ("ts-bad", with_(ts="noon"), ["type:ts"], 23, 24, "rejected"),
    ("ts-number", with_(ts=1717243200), ["type:ts"], 23, 24, "rejected"),
    # schema: keys outside the schema
    ("extra-key", with_(junk=1), ["schema"], 24, 25, "silver"),
    ("extra-key-none", with_(junk=None), ["schema"], 24, 25, "silver"),
    # many at once: order is features (schema order), schema, freshness, rules
    ("many", with_(name=DROP, price="x", status="old", ts="2024-06-01T09:00:00Z", zz=1),
     ["completeness:name", "type:price", "allowed:status", "schema", "freshness"], 14, 19, "bronze"),
    ("everything-missing", {}, [f"completeness:{f.name}" for f in SCHEMA], 1, 8, "rejected"),
]


@pytest.mark.parametrize("record, failures, passed, counted, tier",
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_score(record: dict[str, Any], failures: list[str], passed: int, counted: int, tier: str) -> None:
    scorer = DatasetScorer(SCHEMA, QUALITY)
    before = dict(record)
    report = scorer.score(record, NOW).report
    assert list(report.failures) == failures
    assert (report.passed, report.counted) == (passed, counted)
    assert report.score == passed / counted
    assert report.tier == tier
    assert report.critical is (tier == "rejected")
    assert record == before


def test_scored_record_fields() -> None:
    rec = with_(id="7", name=DROP, price="x", status=None, junk=[1], **{"other key": "v"})
    out = DatasetScorer(SCHEMA, QUALITY).score(rec, NOW)
    assert out.record == {
        "id": 7, "name": None, "price": None, "status": None,
        "ts": datetime(2024, 6, 1, 11, 30, tzinfo=UTC), "active": True, "day": date(2024, 6, 1),
    }
    assert list(out.record) == [f.name for f in SCHEMA]
    assert out.extra == {"junk": [1], "other key": "v"}
    assert out.invalid == {"price": "x"}
    assert out.report == QualityReport(
        tier="bronze", score=13 / 17,
        failures=("completeness:name", "type:price", "completeness:status", "schema"),
        critical=False, passed=13, counted=17)


def test_coerced_values_in_record() -> None:
    out = DatasetScorer(SCHEMA, QUALITY).score(GOOD, NOW)
    assert out.record["price"] == Decimal("9.99") and type(out.record["price"]) is Decimal
    assert out.record["ts"].tzinfo is UTC
    assert out.extra == {} and out.invalid == {}


@pytest.mark.parametrize("nulls, value, failures", [
    (frozenset(), "NA", ["allowed:status"]),
    (CSV_NULL_TOKENS, "NA", ["completeness:status"]),
    (CSV_NULL_TOKENS, " NULL ", ["completeness:status"]),
    (CSV_NULL_TOKENS, "N/A", ["completeness:status"]),
    (CSV_NULL_TOKENS, "n/a", ["allowed:status"]),
    (frozenset({"-"}), "-", ["completeness:status"]),
])
def test_null_tokens(nulls: frozenset[str], value: str, failures: list[str]) -> None:
    scorer = DatasetScorer(SCHEMA, QUALITY, null_values=nulls)
    assert list(scorer.score(with_(status=value), NOW).report.failures) == failures


# A small schema for rule and tier cases: a, b ints; 2 + 2 feature checks + schema = 5 checks.
AB = (feat("a", "int"), feat("b", "int"))


@pytest.mark.parametrize("rule, record, failures, counted", [
    ("a < b", {"a": 1, "b": 2}, [], 6),
    ("a > b", {"a": 1, "b": 2}, ["rule:r"], 6),
    ("a / (b - b) > 0", {"a": 1, "b": 2}, ["rule:r"], 6),           # EvalError is a failure
    ("a + b", {"a": 1, "b": 2}, ["rule:r"], 6),                     # not exactly True
    ("a", {"a": 1, "b": 2}, ["rule:r"], 6),
    ("a < b", {"a": 1, "b": "x"}, ["type:b"], 5),                   # invalid field: not counted
    ("a < b", {"a": 1}, ["completeness:b"], 4),                     # missing field: not counted
    ("a < 5", {"a": 1}, ["completeness:b"], 5),                     # only a referenced: counted
    ("c > 0", {"a": 1, "b": 2, "c": 5}, ["schema"], 5),             # c is not a feature: never counted
    ("true", {}, ["completeness:a", "completeness:b"], 4),          # no fields: always counted
    ("a == 1.0", {"a": "1", "b": 2}, [], 6),
])
def test_rules(rule: str, record: dict[str, Any], failures: list[str], counted: int) -> None:
    scorer = DatasetScorer(AB, QualityConfig(rules=(Rule("r", rule),)))
    report = scorer.score(record, NOW).report
    assert list(report.failures) == failures
    assert report.counted == counted
    assert report.passed == counted - len(failures)


def test_rules_keep_declared_order() -> None:
    rules = (Rule("z", "a > 10"), Rule("a", "b > 10"), Rule("m", "a > b"))
    report = DatasetScorer(AB, QualityConfig(rules=rules)).score({"a": 1, "b": 2}, NOW).report
    assert report.failures == ("rule:z", "rule:a", "rule:m")


@pytest.mark.parametrize("tiers, record, score, tier", [
    ({"gold": 1.0, "silver": 0.8}, {"a": 1, "b": 2}, 1.0, "gold"),
    ({"gold": 1.0, "silver": 0.8}, {"a": 1, "b": "x"}, 0.8, "silver"),        # 4/5 exactly at silver
    ({"gold": 1.0, "silver": 0.8}, {"a": 1, "b": 2, "c": 3}, 0.8, "silver"),
    ({"gold": 0.8, "silver": 0.5}, {"a": 1, "b": "x"}, 0.8, "gold"),          # exactly at gold
    ({"gold": 1.0, "silver": 0.81}, {"a": 1, "b": "x"}, 0.8, "bronze"),
    ({"gold": 1.0, "silver": 0.8}, {"a": "x", "b": "y"}, 0.6, "bronze"),
    ({"gold": 1.0, "silver": 0.0}, {"a": "x", "b": "y", "c": 1}, 0.4, "silver"),
])
def test_tier_boundaries(tiers: dict[str, float], record: dict[str, Any], score: float, tier: str) -> None:
    report = DatasetScorer(AB, QualityConfig(tiers=tiers)).score(record, NOW).report
    assert report.score == score
    assert report.tier == tier


@pytest.mark.parametrize("passed, counted, critical, expected", [
    (0, 0, False, (1.0, "gold")),
    (0, 0, True, (1.0, "rejected")),
    (5, 5, True, (1.0, "rejected")),
    (4, 5, False, (0.8, "silver")),
    (8, 10, False, (0.8, "silver")),
    (79, 100, False, (0.79, "bronze")),
    (0, 3, False, (0.0, "bronze")),
])
def test_grade(passed: int, counted: int, critical: bool, expected: tuple[float, str]) -> None:
    assert grade(passed, counted, critical, 1.0, 0.8) == expected


@pytest.mark.parametrize("record, failures, score, tier", [
    ({}, [], 1.0, "gold"),
    ({"x": 1}, ["schema"], 0.0, "bronze"),
])
def test_empty_schema(record: dict[str, Any], failures: list[str], score: float, tier: str) -> None:
    report = DatasetScorer((), QualityConfig()).score(record, NOW).report
    assert (list(report.failures), report.score, report.tier) == (failures, score, tier)


@pytest.mark.parametrize("event, ingest, failures", [
    ("2024-06-01", datetime(2024, 6, 2, tzinfo=UTC), []),                           # exactly 1 day
    ("2024-06-01", datetime(2024, 6, 2, 0, 0, 1, tzinfo=UTC), ["freshness"]),
    ("2024-06-01", datetime(2024, 6, 2), []),                                       # naive ingest = UTC
    ("2024-06-01", datetime(2024, 6, 2, 1, tzinfo=timezone(timedelta(hours=1))), []),
    ("2024-06-01", datetime(2024, 6, 2, 0, 30, tzinfo=timezone(timedelta(hours=-1))), ["freshness"]),
    ("2099-01-01", datetime(2024, 6, 2, tzinfo=UTC), []),                           # future passes
    ("June 1st", datetime(2024, 6, 2, tzinfo=UTC), ["type:day"]),                   # not counted
])
def test_freshness_with_date_event_time(event: str, ingest: datetime, failures: list[str]) -> None:
    schema = (feat("day", "date"),)
    quality = QualityConfig(event_time="day", freshness=timedelta(days=1))
    report = DatasetScorer(schema, quality).score({"day": event}, ingest).report
    assert list(report.failures) == failures
    # day (completeness, type) + schema + freshness; no freshness check after a type failure
    assert report.counted == (3 if failures == ["type:day"] else 4)


@pytest.mark.parametrize("quality", [
    QualityConfig(event_time="ts"),                                   # no freshness: no check
    QualityConfig(freshness=timedelta(seconds=1)),                    # no event_time: no check
    QualityConfig(event_time="nope", freshness=timedelta(seconds=1)),  # not in this schema
])
def test_freshness_not_counted(quality: QualityConfig) -> None:
    schema = (feat("ts", "timestamp"),)
    report = DatasetScorer(schema, quality).score({"ts": "2000-01-01T00:00:00Z"}, NOW).report
    assert (report.failures, report.counted) == ((), 3)


@pytest.mark.parametrize("feature, value, failures", [
    (feat("n", "int", allowed=(1, "2")), "2", []),
    (feat("n", "int", allowed=(1, "2")), 3, ["allowed:n"]),
    (feat("n", "double", allowed=(1, 2)), "1.0", []),
    (feat("n", "decimal(5,2)", allowed=("1.5",)), 1.50, []),
    (feat("n", "bool", allowed=(True,)), "yes", []),
    (feat("n", "bool", allowed=(True,)), "no", ["allowed:n"]),
    (feat("n", "int", pattern="[0-9]{3}"), "123", []),
    (feat("n", "int", pattern="[0-9]{3}"), "0123", []),                  # canonical text is 123
    (feat("n", "int", pattern="[0-9]{2}"), 123, ["pattern:n"]),          # fullmatch, not search
    (feat("n", "double", pattern=r"\d+\.\d"), 12, []),                   # 12 -> 12.0
    (feat("n", "bool", pattern="true"), "Y", []),
    (feat("n", "date", pattern="2024-.*"), "20240105", []),
    (feat("n", "string", max_length=3), "abc", []),
    (feat("n", "string", max_length=3), "abcd", ["max_length:n"]),
    (feat("n", "string", max_length=3), " ab ", ["max_length:n"]),      # not stripped
    (feat("n", "string", max_length=3), 1234, ["max_length:n"]),
    (feat("n", "int", max_length=2), "+7", []),
    (feat("n", "timestamp", min="2024-01-01T00:00:00+01:00"), "2023-12-31T23:00:00Z", []),
    (feat("n", "timestamp", min="2024-01-01T00:00:00+01:00"), "2023-12-31T22:59:59Z", ["min:n"]),
    (feat("n", "double", min=0.5, max=1), "1e0", []),
    (feat("n", "int", min=-5, max=5), "-6", ["min:n"]),
    (feat("n", "int", min=10, max=5), 7, ["min:n", "max:n"]),
    (feat("n", "string", pattern="a.*", max_length=1, required=True), "bb", ["pattern:n", "max_length:n"]),
])
def test_constraints(feature: Feature, value: Any, failures: list[str]) -> None:
    report = DatasetScorer((feature,), QualityConfig()).score({"n": value}, NOW).report
    assert list(report.failures) == failures
    assert report.tier != "rejected"


@pytest.mark.parametrize("feature", [
    feat("n", "string", min=1),
    feat("n", "bool", max=1),
    feat("n", "int", min="1"),
    feat("n", "date", min="yesterday"),
    feat("n", "string", pattern="("),
    feat("n", "int", allowed=("x",)),
])
def test_bad_feature_constraints_fail_at_construction(feature: Feature) -> None:
    with pytest.raises(ValueError):
        DatasetScorer((feature,), QualityConfig())


def test_event_time_must_be_temporal() -> None:
    with pytest.raises(ValueError):
        DatasetScorer((feat("n", "int"),), QualityConfig(event_time="n", freshness=timedelta(1)))


def test_process_applies_transformations_then_scores() -> None:
    source = (feat("ID", "string"), feat("price", "string"), feat("qty", "int"))
    mapping = {"ID": "id"}
    total = feat("total", "double", min=0)
    steps = (
        Transformation("rename", ("ID",), {"mapping": mapping}),
        Transformation("cast", ("id",), {"dtype": parse_dtype("int")}),
        Transformation("cast", ("price",), {"dtype": parse_dtype("double")}),
        Transformation("fill_null", ("qty",), {"value": 1}),
        Transformation("derive", (), {"name": "total", "expr": "price * qty", "dtype": total.dtype,
                                      "feature": total}),
    )
    schema = (feat("id", "int", required=True), feat("price", "double"), feat("qty", "int"), total)
    scorer = DatasetScorer(schema, QualityConfig(rules=(Rule("r", "total < 100"),)), steps, source)
    raw = {"ID": "42", "price": "2.5", "qty": ""}
    out = scorer.process(raw, NOW)
    assert out.record == {"id": 42, "price": 2.5, "qty": 1, "total": 2.5}
    assert out.report.failures == () and out.report.counted == 11
    assert raw == {"ID": "42", "price": "2.5", "qty": ""}

    bad = scorer.process({"ID": "x", "price": "abc", "qty": 2, "extra": 1}, NOW)
    assert bad.record == {"id": None, "price": None, "qty": 2, "total": None}
    assert bad.invalid == {"id": "x", "price": "abc"}
    assert bad.extra == {"extra": 1}
    assert list(bad.report.failures) == ["type:id", "type:price", "completeness:total", "schema"]
    assert bad.report.tier == "rejected"


def test_process_without_transformations_is_score() -> None:
    scorer = DatasetScorer(SCHEMA, QUALITY)
    assert scorer.process(GOOD, NOW) == scorer.score(GOOD, NOW)


def test_with_schema_scores_against_the_older_version() -> None:
    scorer = DatasetScorer(SCHEMA, QUALITY, null_values=CSV_NULL_TOKENS)
    older = scorer.with_schema(SCHEMA[:-1])  # no 'day' yet
    report = older.score(GOOD, NOW).report
    assert list(report.failures) == ["schema"]
    assert older.score(with_(day=DROP), NOW).report.tier == "gold"
    assert older.score(with_(status="NA"), NOW).report.failures[0] == "completeness:status"


def test_deterministic() -> None:
    scorer = DatasetScorer(SCHEMA, QUALITY)
    rec = with_(name=DROP, price="x", zz=1)
    assert scorer.score(rec, NOW) == scorer.score(rec, NOW) == DatasetScorer(SCHEMA, QUALITY).score(rec, NOW)

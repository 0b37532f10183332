"""The quality plan is written once: both engines implement exactly its checks, the contract and
the docs know every constraint, and failures come out in plan order."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from atlas_stream import quality
from atlas_stream.batch import arrow_quality
from atlas_stream.checks import CONSTRAINT_KEYS, PLAN, Scope, grade, plan_dataset
from atlas_stream.contracts import load_contract
from atlas_stream.model import FEATURE_CONSTRAINTS, TIERS, Feature, QualityConfig, Rule, Tier, parse_dtype
from atlas_stream.samples import SampleGenerator

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)


def names(scope: Scope | None = None) -> set[str]:
    return {c.name for c in PLAN if scope is None or c.scope is scope}


@pytest.mark.parametrize("engine", [quality, arrow_quality], ids=["per-record", "arrow"])
def test_each_engine_implements_exactly_the_planned_checks(engine: ModuleType) -> None:
    assert set(engine.CHECKS) == names()
    assert set(engine.GATES) == names(Scope.GATE)
    assert set(engine.CONSTRAINT_CHECKS) == names(Scope.CONSTRAINT)
    assert set(engine.RECORD_CHECKS) == names(Scope.RECORD) | names(Scope.RULE)


def test_check_names_are_unique_and_gates_come_first() -> None:
    assert len(names()) == len(PLAN)
    assert [c.name for c in PLAN[:2]] == ["completeness", "type"]
    scopes = [c.scope for c in PLAN]
    assert scopes == sorted(scopes, key=[Scope.GATE, Scope.CONSTRAINT, Scope.RECORD, Scope.RULE].index)


def test_every_feature_constraint_has_a_check_and_a_contract_key() -> None:
    assert CONSTRAINT_KEYS == FEATURE_CONSTRAINTS
    schema = json.loads((ROOT / "metadata" / "contract.schema.json").read_text())
    for where in ("feature", "transformation"):
        assert set(CONSTRAINT_KEYS) <= set(schema["$defs"][where]["properties"]), where


def test_docs_name_every_failure() -> None:
    docs = (ROOT / "docs" / "quality.md").read_text()
    for check in PLAN:
        if check.scope in (Scope.GATE, Scope.CONSTRAINT):
            assert f"`{check.name}:<field>`" in docs, check.name
        elif check.scope is Scope.RULE:
            assert f"`{check.name}:<name>`" in docs, check.name
        else:
            assert f"`{check.name}`" in docs, check.name


def test_registry_form_keeps_every_constraint() -> None:
    f = Feature("c", parse_dtype("string"), True, pattern="[A-Z]{2}", allowed=("US", "FR"), max_length=2)
    assert f.to_dict() == {"name": "c", "dtype": "string", "required": True, "pattern": "[A-Z]{2}",
                           "allowed": ["US", "FR"], "max_length": 2}
    assert Feature.from_dict(f.to_dict()) == f


def test_failure_names_follow_the_plan() -> None:
    schema = [Feature("id", parse_dtype("int"), True, min=1, max=9),
              Feature("code", parse_dtype("string"), pattern="[a-z]+", allowed=("ab",), max_length=2),
              Feature("at", parse_dtype("timestamp"))]
    qc = QualityConfig(rules=(Rule("r", "id > 2"),), event_time="at", freshness=timedelta(hours=1))
    plan = plan_dataset(schema, qc)
    assert plan.failure_names == (
        "completeness:id", "type:id", "min:id", "max:id",
        "completeness:code", "type:code", "pattern:code", "allowed:code", "max_length:code",
        "completeness:at", "type:at", "schema", "freshness", "rule:r")
    report = quality.DatasetScorer(schema, qc).score({"id": 12, "code": "ABC", "at": "2020-01-01", "x": 1}, NOW).report
    assert report.failures == ("max:id", "pattern:code", "allowed:code", "max_length:code", "schema", "freshness")


def test_sample_failures_come_in_plan_order() -> None:
    ds = load_contract(ROOT / "metadata" / "ecommerce_transactions_streaming.json").datasets[0]
    scorer = quality.DatasetScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    order = {name: i for i, name in enumerate(plan_dataset(ds.schema, ds.quality).failure_names)}
    gen = SampleGenerator(ds, seed=7, defect_rate=0.5)
    seen = 0
    for _ in range(300):
        value, _ = gen.raw(NOW)
        try:
            raw = orjson.loads(value)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(raw, dict):
            continue
        failures = scorer.process(raw, NOW).report.failures
        assert [order[f] for f in failures] == sorted(order[f] for f in failures), failures
        seen += bool(failures)
    assert seen


def test_tiers_are_strings_on_the_wire() -> None:
    assert list(TIERS) == ["gold", "silver", "bronze", "rejected"]
    assert grade(4, 5, False, 1.0, 0.8) == (0.8, "silver") and grade(5, 5, True, 1.0, 0.8)[1] is Tier.REJECTED
    assert f"atlas.g.d.{Tier.GOLD}" == "atlas.g.d.gold" and {"gold": 1}[Tier.GOLD] == 1
    assert orjson.dumps({"tier": Tier.BRONZE}) == b'{"tier":"bronze"}'
    assert json.dumps([Tier.SILVER]) == '["silver"]'

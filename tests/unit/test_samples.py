"""Sample data (``up``, ``sample``): every tier appears in realistic shares, for every sample contract."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest

from atlas_stream.contracts import load_contracts
from atlas_stream.expr import compile_expr, field_definition
from atlas_stream.samples import SampleGenerator

ROOT = Path(__file__).resolve().parents[2]
DATASETS = [(c.group, ds) for c in load_contracts(ROOT / "metadata") for ds in c.datasets]


@pytest.mark.parametrize(("group", "dataset"), DATASETS, ids=[f"{g}.{d.name}" for g, d in DATASETS])
def test_samples_reach_every_tier_with_gold_the_largest(group: str, dataset) -> None:  # type: ignore[no-untyped-def]
    gen = SampleGenerator(dataset, seed=7)
    now = datetime.now(timezone.utc)
    tiers: Counter[str] = Counter()
    for _ in range(3000):
        value, _ = gen.raw(now)
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            tiers["dlq"] += 1
            continue
        tiers[gen.scorer.process(record, now).report.tier] += 1
    shares = {tier: n / 3000 for tier, n in tiers.items()}
    assert set(shares) == {"gold", "silver", "bronze", "rejected", "dlq"}, shares
    assert 0.75 <= shares["gold"] <= 0.97, shares
    assert all(0.002 <= shares[t] <= 0.2 for t in ("silver", "bronze", "rejected", "dlq")), shares


def test_a_rule_that_defines_a_field_is_satisfied_by_clean_records() -> None:
    orders = next(ds for g, ds in DATASETS if g == "ecommerce_transactions_streaming" and ds.name == "transactions")
    gen = SampleGenerator(orders, seed=3, defect_rate=0.0)
    for _ in range(200):
        rec = gen.record()
        assert abs(float(rec["amount"]) - rec["quantity"] * rec["unit_price"]) < 0.01, rec


@pytest.mark.parametrize(("text", "field"), [
    ("abs(amount - quantity * unit_price) < 0.01", "amount"),
    ("total == net + tax", "total"),
    ("abs(a - b) <= 1", "a"),
    ("amount > 0", None),
    ("abs(amount + fee) < 1", None),
    ("status == 'cancelled' or unit_price > 0", None),
])
def test_field_definitions_are_recognised(text: str, field: str | None) -> None:
    found = field_definition(compile_expr(text))
    assert (found[0] if found else None) == field
    if found and field == "total":
        assert found[1].evaluate({"net": 10, "tax": 2.5}.__getitem__) == 12.5

"""Faust skips an agent or table module that fails to import without a word (STYLE.md pitfall 2):
this test fails instead."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _modules(package: str) -> set[str]:
    return {f"{package}.{p.stem}" for p in (ROOT / package).glob("*.py") if p.stem != "__init__"}


def test_every_agent_and_table_module_is_discovered() -> None:
    from atlas_stream.app import app

    app.discover()
    missing = {m for m in _modules("agents") | _modules("tables") if m not in sys.modules}
    assert not missing, f"modules not imported by discovery: {missing}"
    assert {"agents.scoring.score_raw_records", "agents.registry.register_schemas",
            "agents.observe.record_events", "agents.observe.track_source_status",
            "agents.sinks.sink_tier_records"} <= set(app.agents)
    assert {"tier_counts", "tier_counts_per_minute", "failure_counts", "last_seen", "schema_drift",
            "schema_registry", "event_log", "source_status"} <= set(app.tables)
    assert {"/", "/metrics", "/stats/", "/stats/{group}/{dataset}/", "/sources/", "/events/", "/schemas/subjects",
            "/schemas/config/{subject}", "/schemas/config", "/schemas/mode", "/schemas/schemas/ids/{schema_id}",
            "/schemas/subjects/{subject}/versions/{version}/features", "/_atlas/local/{kind}/"} <= set(app.web.views)


def test_raw_topics_come_from_the_contracts() -> None:
    from atlas_stream.app import catalog
    from atlas_stream.channels import raw_records

    assert set(raw_records.topics) == {rt.raw_topic for rt in catalog.datasets}
    assert "atlas.ecommerce_transactions_streaming.transactions.raw" in raw_records.topics

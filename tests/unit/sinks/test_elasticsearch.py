"""Elasticsearch documents, index names, templates, connection options and secret-free retry
warnings; Kibana saved objects; Hive DDL."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from atlas_stream.contracts import load_contracts
from atlas_stream.errors import ConfigError
from atlas_stream.messages import encode, tier_message
from atlas_stream.model import Dataset, Destination, Feature, QualityConfig
from atlas_stream.quality import DatasetScorer
from atlas_stream.sinks.elasticsearch import (
    ElasticsearchSink,
    ElasticsearchUnavailable,
    connection_options,
    document,
    index_name,
    index_template,
    message_index,
)
from atlas_stream.sinks.es_mapping import template_name
from atlas_stream.sinks.hive import hive_ddl
from atlas_stream.sinks.kibana import saved_objects

from ..builders import feat

METADATA = Path(__file__).resolve().parents[3] / "metadata"
NO_ENV: dict[str, str] = {}


def make_dataset(features: tuple[Feature, ...], group: str = "Shop", name: str = "orders",
                 projection: tuple[str, ...] | None = None) -> Dataset:
    return Dataset(group=group, name=name, path="$", source_features=features, schema=features,
                   transformations=(), quality=QualityConfig(),
                   destination=Destination(path="shop/orders/", features=projection))


ALL_TYPES = (
    feat("id", "bigint", required=True), feat("qty", "int"), feat("ratio", "float"),
    feat("price", "double"), feat("amount", "decimal(12,2)"), feat("huge", "decimal(30,10)"),
    feat("name", "string"), feat("ok", "bool"), feat("day", "date"), feat("at", "timestamp"),
)


def decoded_message(ds: Dataset, record: dict[str, Any], offset: int = 7) -> dict[str, Any]:
    """A tier message as the sink's agent sees it: scored, encoded, then decoded."""
    scored = DatasetScorer(ds.schema, ds.quality).score(record, datetime(2024, 3, 1, 23, 30, tzinfo=timezone.utc))
    source = {"topic": "atlas.shop.orders.raw", "partition": 2, "offset": offset,
              "timestamp": datetime(2024, 3, 1, 23, 30, 5, tzinfo=timezone.utc).timestamp()}
    return orjson.loads(encode(tier_message(scored, source, ds.subject, 3)))


def test_index_name_is_lower_case_and_uses_the_utc_date() -> None:
    late_in_new_york = datetime(2024, 3, 1, 21, 0, tzinfo=timezone(timedelta(hours=-5)))
    assert index_name("Shop", "Orders", "gold", late_in_new_york) == "atlas-shop-orders-gold-2024.03.02"
    assert index_name("shop", "orders", "silver", datetime(2024, 1, 9, 23, 59)) == "atlas-shop-orders-silver-2024.01.09"
    assert index_name("shop", "orders", "gold", "2024-01-09T23:59:00-01:00") == "atlas-shop-orders-gold-2024.01.10"


def test_document_keeps_features_on_top_and_quality_and_lineage_under_atlas() -> None:
    ds = make_dataset(ALL_TYPES)
    message = decoded_message(ds, {"id": 1, "qty": "3", "ratio": 0.5, "price": 2, "amount": "12.50",
                                   "huge": "1.5", "name": "Ann", "ok": "yes", "day": "2024-02-29",
                                   "at": "2024-03-01T10:00:00+01:00", "extra_field": 1})
    doc_id, doc = document(message)
    assert doc_id == "atlas.shop.orders.raw+2+7"
    assert doc["qty"] == 3 and doc["amount"] == "12.50" and doc["day"] == "2024-02-29"
    assert doc["at"] == "2024-03-01T09:00:00+00:00"
    atlas = doc["atlas"]
    assert atlas["tier"] == "silver" and atlas["failures"][-1] == "schema"
    assert atlas["ingested_at"] == "2024-03-01T23:30:05+00:00"
    assert atlas["source"] == {"topic": "atlas.shop.orders.raw", "partition": 2, "offset": 7}
    assert atlas["schema"] == {"subject": "Shop.orders", "version": 3}
    assert atlas["extra"] == {"extra_field": 1}
    assert "invalid" not in atlas and "_tier" not in doc and "_score" not in doc
    assert message_index(message) == "atlas-shop-orders-silver-2024.03.01"
    _, narrowed = document(message, features={"id", "name"})
    assert set(narrowed) == {"id", "name", "atlas"}


def test_template_maps_every_dtype() -> None:
    body = index_template(make_dataset(ALL_TYPES))
    props = body["template"]["mappings"]["properties"]
    assert {name: props[name]["type"] for name in ("id", "qty", "ratio", "price", "ok", "day", "at")} == {
        "id": "long", "qty": "long", "ratio": "double", "price": "double", "ok": "boolean",
        "day": "date", "at": "date"}
    assert props["day"]["format"] == "strict_date"
    assert props["amount"] == {"type": "scaled_float", "scaling_factor": 100}
    assert props["huge"] == {"type": "double", "fields": {"exact": {"type": "keyword"}}}
    assert props["name"]["type"] == "keyword" and props["name"]["fields"]["text"]["type"] == "text"
    assert props["atlas"]["properties"]["tier"] == {"type": "keyword"}
    assert props["atlas"]["properties"]["extra"]["enabled"] is False
    assert body["template"]["mappings"]["dynamic"] is False
    assert body["index_patterns"] == [f"atlas-shop-orders-{t}-*" for t in ("gold", "silver", "bronze", "rejected")]
    assert template_name(make_dataset(ALL_TYPES)) == "atlas-shop-orders"


def test_template_follows_the_destination_projection_and_dotted_names() -> None:
    ds = make_dataset((feat("id", "int"), feat("geo.lat", "double"), feat("secret", "string")),
                      projection=("id", "geo.lat"))
    props = index_template(ds)["template"]["mappings"]["properties"]
    assert set(props) == {"id", "geo", "atlas"}
    assert props["geo"] == {"properties": {"lat": {"type": "double"}}}


def test_longer_dataset_name_gets_the_higher_priority() -> None:
    short = index_template(make_dataset(ALL_TYPES, name="orders"))
    longer = index_template(make_dataset(ALL_TYPES, name="orders-gold"))
    assert longer["priority"] > short["priority"]


@pytest.mark.parametrize("name", ["atlas", "_id", "_tier", "a..b", " "])
def test_a_feature_elasticsearch_cannot_hold_is_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="rename"):
        index_template(make_dataset((feat(name, "int"),)))


def test_every_shipped_contract_has_a_template_and_kibana_objects() -> None:
    datasets = [ds for c in load_contracts(METADATA, env=NO_ENV) for ds in c.datasets]
    assert datasets
    for ds in datasets:
        assert index_template(ds)["template"]["mappings"]["properties"]
        assert len(saved_objects(ds).splitlines()) == 2


def test_kibana_ndjson_parses_and_the_pie_references_the_data_view() -> None:
    ds = make_dataset(ALL_TYPES)
    text = saved_objects(ds)
    assert text == saved_objects(ds)  # deterministic
    view, vis = (json.loads(line) for line in text.splitlines())
    assert view["type"] == "index-pattern" and view["attributes"]["title"] == "atlas-shop-orders-*"
    assert view["attributes"]["timeFieldName"] == "atlas.ingested_at"
    assert vis["type"] == "visualization"
    ref = vis["references"][0]
    assert ref["id"] == view["id"] and ref["type"] == "index-pattern"
    search = json.loads(vis["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert search["indexRefName"] == ref["name"]
    state = json.loads(vis["attributes"]["visState"])
    assert state["type"] == "pie"
    assert [a["params"].get("field") for a in state["aggs"]] == [None, "atlas.tier"]


def test_hive_ddl_matches_the_lake_columns_and_partitions() -> None:
    ds = make_dataset(ALL_TYPES, group="shop-eu")
    ddl = hive_ddl(ds, "s3a://lake/root/")
    assert ddl.startswith("CREATE EXTERNAL TABLE IF NOT EXISTS `shop_eu_orders` (\n  `id` BIGINT,\n")
    for column in ("`qty` BIGINT", "`ratio` DOUBLE", "`amount` DECIMAL(12,2)", "`huge` DECIMAL(30,10)",
                   "`name` STRING", "`ok` BOOLEAN", "`day` DATE", "`at` TIMESTAMP", "`_tier` STRING",
                   "`_score` DOUBLE", "`_failures` ARRAY<STRING>", "`_ingested_at` TIMESTAMP",
                   "`_source_topic` STRING", "`_source_partition` INT", "`_source_offset` BIGINT"):
        assert f"  {column}" in ddl
    assert "PARTITIONED BY (`tier` STRING, `ingest_date` STRING)\nSTORED AS PARQUET\n" in ddl
    assert "LOCATION 's3a://lake/root/shop/orders';\n" in ddl
    assert ddl.endswith("MSCK REPAIR TABLE `shop_eu_orders`;\n")
    with pytest.raises(ConfigError, match="partition"):
        hive_ddl(make_dataset((feat("tier", "string"),)), "file:///lake")


async def test_sink_is_due_by_count_bytes_and_linger() -> None:
    sink = ElasticsearchSink("http://127.0.0.1:9", max_docs=3, max_bytes=10_000, linger_seconds=60)
    try:
        assert not sink.due()
        sink.add("a", "i", {"v": 1}, 1)
        assert not sink.due()
        assert sink.due(now=10**9)  # linger passed
        sink.add("b", "i", {"v": Decimal("1.5"), "d": date(2024, 1, 1)}, 2)
        sink.add("c", "i", {"v": 3}, 3)
        assert sink.due() and len(sink) == 3
        big = ElasticsearchSink("http://127.0.0.1:9", max_docs=100, max_bytes=1000, linger_seconds=60)
        big.add("a", "i", {"v": "x" * 2000})
        assert big.due()
        await big.close()
    finally:
        await sink.close()


async def test_es_retry_warnings_and_errors_hide_every_secret(caplog: pytest.LogCaptureFixture) -> None:
    problems: list[str] = []
    sink = ElasticsearchSink("http://elastic:url%2Fsecret@127.0.0.1:9", max_retries=1, backoff_base=0.01,
                             client_options=connection_options(api_key="key-secret"),
                             on_error=lambda problem, attempt, delay: problems.append(problem))
    sink.add("1", "atlas-x", {"a": 1})
    with caplog.at_level(logging.WARNING), pytest.raises(ElasticsearchUnavailable) as err:
        await sink.flush()
    await sink.close()
    shown = caplog.text + str(err.value) + " ".join(problems)
    assert "retrying" in caplog.text and "elastic:***@127.0.0.1:9" in shown
    for secret in ("url%2Fsecret", "url/secret", "key-secret"):
        assert secret not in shown


def test_es_connection_options() -> None:
    assert connection_options() == {}
    assert connection_options(api_key="k", username="u", password="p", cloud_id="c:x") == {
        "api_key": "k", "basic_auth": ("u", "p"), "cloud_id": "c:x"}
    with pytest.raises(Exception, match="ATLAS_ES_CA_CERTS=/nowhere.pem: cannot be read"):
        connection_options(ca_certs="/nowhere.pem")

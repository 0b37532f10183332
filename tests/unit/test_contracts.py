"""Contracts: the samples load, and every kind of mistake names the file, the JSON path and what was expected."""

from __future__ import annotations

import copy
import json
import logging
import pickle
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import orjson
import pytest
from jsonschema import Draft202012Validator

from atlas_stream.contract_schema import NAME_PATTERN
from atlas_stream.contracts import SCHEMA_PATH, check_contracts, json_path, load_contract, load_contracts
from atlas_stream.errors import ContractError
from atlas_stream.model import CSV_NULL_TOKENS, TIERS, DType, Feature

ROOT = Path(__file__).resolve().parents[2]
METADATA = ROOT / "metadata"
CLASSIC = ROOT / "tests" / "fixtures" / "contracts" / "classic_layout.json"
SAMPLES = ("ecommerce_transactions_fs.json", "ecommerce_transactions_rdbms.json",
           "ecommerce_transactions_streaming.json")
NO_ENV: dict[str, str] = {}
SECRET = "s3cr3t-Pa55w0rd-do-not-print"

BASE: dict[str, Any] = {
    "ocs_group_name": "shop",
    "source_type": "fs",
    "source_config": {"password": "${ATLAS_TEST_PASSWORD:-nothing}"},
    "dataset_config": [
        {
            "source": {
                "name": "orders",
                "path": "./landing/orders/*.csv",
                "key": "order_id",
                "features": [
                    {"name": "order_id", "dtype": "string", "required": True, "pattern": "^O[0-9]+$"},
                    {"name": "ordered_at", "dtype": "timestamp", "required": True},
                    {"name": "quantity", "dtype": "int", "min": 1},
                    {"name": "amount", "dtype": "decimal(10,2)", "min": 0},
                    {"name": "currency", "dtype": "string", "allowed": ["USD", "EUR"]},
                ],
            },
            "transformations": [
                {"type": "upper", "field": "currency"},
                {"type": "derive", "name": "unit_amount", "expr": "amount / quantity", "dtype": "double"},
            ],
            "quality": {
                "rules": [{"name": "positive", "expr": "amount >= 0 and unit_amount >= 0"}],
                "event_time": "ordered_at",
                "freshness": "PT24H",
            },
            "destination": {"path": "shop/orders"},
        }
    ],
}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


def write(directory: Path, doc: dict[str, Any] | str, name: str = "shop.json") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc, indent=2), encoding="utf-8")
    return path


def load(tmp_path: Path, doc: dict[str, Any] | str, env: dict[str, str] | None = None):
    return load_contract(write(tmp_path, doc), env=NO_ENV if env is None else env)


def failure(tmp_path: Path, doc: dict[str, Any] | str, env: dict[str, str] | None = None) -> ContractError:
    with pytest.raises(ContractError) as info:
        load(tmp_path, doc, env)
    return info.value


# ---------------------------------------------------------------------------------- good ones


def test_schema_file_is_a_valid_draft_2020_12_schema() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert SCHEMA_PATH == METADATA / "contract.schema.json"
    assert schema["$defs"]["name"]["pattern"] == NAME_PATTERN  # the checker words its errors on it


@pytest.mark.parametrize("name", SAMPLES)
def test_samples_load(name: str) -> None:
    contract = load_contract(METADATA / name, env=NO_ENV)
    assert contract.group == name.removesuffix(".json")
    for dataset in contract.datasets:
        assert dataset.quality.rules, f"{dataset.subject} has no quality rule"
        assert dataset.schema and dataset.destination.path


def test_samples_directory_loads_sorted_without_the_schema() -> None:
    contracts = load_contracts(METADATA, env=NO_ENV)
    assert [c.group for c in contracts] == [s.removesuffix(".json") for s in SAMPLES]
    assert check_contracts(METADATA, env=NO_ENV) == []


def test_fs_sample_details() -> None:
    c = load_contract(METADATA / "ecommerce_transactions_fs.json", env={"ATLAS_LANDING_DIR": "/srv/landing"})
    ds = c.dataset("transactions")
    assert (c.source_type, ds.path, ds.format) == ("fs", "/srv/landing/transactions/*.csv", "csv")
    assert ds.key == ("transaction_id",)
    assert ds.subject == "ecommerce_transactions_fs.transactions"
    assert [f.name for f in ds.schema][-1] == "line_total"
    amount = next(f for f in ds.schema if f.name == "amount")
    assert amount.dtype == DType("decimal", 12, 2) and amount.min == 0 and amount.required
    assert ds.quality.event_time == "order_date" and ds.quality.freshness == timedelta(days=7)
    assert ds.destination.path == "ecommerce/transactions"
    default = load_contract(METADATA / "ecommerce_transactions_fs.json", env=NO_ENV).datasets[0]
    assert default.path == "./data/landing/transactions/*.csv"


def test_rdbms_sample_details() -> None:
    c = load_contract(METADATA / "ecommerce_transactions_rdbms.json", env=NO_ENV)
    assert c.source_config["url"] == "postgresql+psycopg://postgres@127.0.0.1:5432/atlas_demo"
    orders, customers = c.datasets
    assert orders.source["incremental"] == {"mode": "timestamp+incrementing", "timestamp_column": "updated_at",
                                            "incrementing_column": "id", "timestamp_delay": "PT5S"}
    assert orders.source["fetch_size"] == 1000
    assert orders.transformations[0].op == "rename"
    assert orders.transformations[0].params == {"mapping": {"id": "order_id"}}
    assert orders.key == ("order_id",) and orders.compatibility == "BACKWARD_TRANSITIVE"
    assert orders.null_values == frozenset() and orders.format is None
    assert orders.destination.path == "ecommerce/orders"
    opt_in = next(f for f in customers.schema if f.name == "marketing_opt_in")
    assert opt_in.required is True  # nullable: false
    assert customers.destination.elasticsearch_tiers == ("gold",)
    url = load_contract(METADATA / "ecommerce_transactions_rdbms.json",
                        env={"ATLAS_RDBMS_URL": "mysql+pymysql://u:pw@db/x"}).source_config["url"]
    assert url == "mysql+pymysql://u:pw@db/x"


def test_streaming_sample_details() -> None:
    c = load_contract(METADATA / "ecommerce_transactions_streaming.json", env={"ATLAS_STREAMING_TOKEN": "tok-123"})
    assert c.source_type == "stream" and c.source_config["auth_token"] == "tok-123"
    assert "tok-123" not in repr(c)
    transactions, clicks = c.datasets
    assert transactions.path == "" and transactions.key == ("transaction_id",)
    assert transactions.quality.freshness == timedelta(hours=24)
    event_type = next(f for f in clicks.schema if f.name == "event_type")
    assert "purchase" in event_type.allowed
    duration = next(f for f in clicks.schema if f.name == "duration_ms")
    assert (duration.dtype, duration.min) == (DType("int"), 0)
    assert clicks.compatibility == "FULL"


def test_classic_layout_loads_with_defaults() -> None:
    c = load_contract(CLASSIC, env=NO_ENV)
    ds = c.datasets[0]
    assert ds.quality.tiers == {"gold": 1.0, "silver": 0.8}
    assert ds.quality.rules == () and ds.quality.event_time is None and ds.quality.freshness is None
    assert ds.transformations == () and ds.schema == ds.source_features
    assert [str(f.dtype) for f in ds.schema] == ["int", "string", "timestamp", "decimal(10,2)", "bool"]
    assert not any(f.required for f in ds.schema)
    assert ds.compatibility is None and ds.key == ()  # undeclared: the registry's mode applies
    assert ds.format == "csv" and ds.null_values == CSV_NULL_TOKENS  # from source_config.format
    assert ds.destination.path == "legacy/sales"
    assert ds.destination.features == ("sale_id", "store", "sold_at", "total")
    assert ds.destination.parquet_tiers == TIERS
    assert ds.destination.elasticsearch_tiers == ("gold", "silver")


def test_transformations_are_normalised(tmp_path: Path) -> None:
    doc = base()
    doc["dataset_config"][0]["transformations"] = [
        {"op": "rename", "mapping": {"quantity": "qty", "currency": "ccy"}},
        {"type": "cast", "fields": ["qty"], "dtype": "BIGINT"},
        {"type": "fill_null", "field": "ccy", "value": "EUR"},
        {"type": "trim", "fields": ["order_id", "ccy"]},
        {"type": "lower", "field": "order_id"},
        {"type": "derive", "name": "big", "expr": "qty > 10", "dtype": "boolean", "required": True,
         "description": "bulk order"},
        {"type": "drop", "field": "amount"},
    ]
    doc["dataset_config"][0]["quality"] = {"rules": [{"name": "bulk", "expr": "big or qty < 11"}]}
    ds = load(tmp_path, doc).datasets[0]
    rename, cast, fill, trim, lower, derive, drop = ds.transformations
    assert (rename.op, rename.fields, rename.params) == ("rename", ("quantity", "currency"),
                                                         {"mapping": {"quantity": "qty", "currency": "ccy"}})
    assert (cast.op, cast.fields, cast.params) == ("cast", ("qty",), {"dtype": DType("bigint")})
    assert (fill.op, fill.fields, fill.params) == ("fill_null", ("ccy",), {"value": "EUR"})
    assert (trim.fields, lower.fields, drop.fields) == (("order_id", "ccy"), ("order_id",), ("amount",))
    assert derive.op == "derive" and derive.fields == ("qty",)
    assert derive.params == {"name": "big", "expr": "qty > 10", "dtype": DType("bool"),
                             "feature": Feature("big", DType("bool"), required=True, description="bulk order")}
    assert [f.name for f in ds.schema] == ["order_id", "ordered_at", "qty", "ccy", "big"]
    assert [f.name for f in ds.source_features] == ["order_id", "ordered_at", "quantity", "amount", "currency"]


def test_source_options_and_defaults(tmp_path: Path) -> None:
    doc = base()
    ds_doc = doc["dataset_config"][0]
    ds_doc["source"].update({"key": ["order_id", "ordered_at"], "incremental": {"mode": "timestamp"},
                             "query": "select 1", "vendor_option": 7})
    ds_doc["compatibility"] = "full_transitive"
    ds_doc["quality"]["tiers"] = {"silver": 0.5}
    ds_doc["destination"] = {"path": "//shop/./orders//", "features": [{"name": "order_id", "type": "keyword"},
                                                                       "amount"],
                             "parquet_tiers": ["gold"], "index": "orders"}
    ds = load(tmp_path, doc).datasets[0]
    assert ds.key == ("order_id", "ordered_at")
    assert ds.source["query"] == "select 1" and ds.source["vendor_option"] == 7
    assert ds.compatibility == "FULL_TRANSITIVE"
    assert ds.quality.tiers == {"gold": 1.0, "silver": 0.5}
    assert ds.destination.path == "shop/orders"
    assert ds.destination.features == ("order_id", "amount")
    assert ds.destination.parquet_tiers == ("gold",) and ds.destination.raw["index"] == "orders"
    assert ds.format == "csv" and ds.null_values == CSV_NULL_TOKENS


@pytest.mark.parametrize(("source_type", "source", "config", "fmt", "nulls"), [
    ("fs", {"path": "in/*.csv"}, {}, "csv", CSV_NULL_TOKENS),
    ("fs", {"path": "in/*.CSV"}, {}, "csv", CSV_NULL_TOKENS),
    ("fs", {"path": "in/*.jsonl"}, {}, "jsonl", frozenset()),
    ("fs", {"path": "in/*.ndjson"}, {}, "jsonl", frozenset()),
    ("fs", {"path": "in/*.json"}, {}, "json", frozenset()),
    ("fs", {"path": "in/*.parquet"}, {}, "parquet", frozenset()),
    ("fs", {"path": "in/*"}, {}, None, frozenset()),
    ("fs", {"path": "in/*", "format": "csv"}, {}, "csv", CSV_NULL_TOKENS),
    ("fs", {"path": "in/*"}, {"format": "CSV"}, "csv", CSV_NULL_TOKENS),
    ("fs", {"path": "in/*.csv", "format": "parquet"}, {"format": "csv"}, "parquet", frozenset()),
    ("fs", {"path": "in/*.csv", "null_values": ["?"]}, {}, "csv", frozenset({"?"})),
    ("rdbms", {"path": "public.orders"}, {}, None, frozenset()),
    ("api", {"path": "https://example.com/export.csv"}, {}, "csv", frozenset()),
    ("websocket", {}, {}, None, frozenset()),
    ("streaming", {}, {}, None, frozenset()),
])
def test_format_and_null_values(tmp_path: Path, source_type: str, source: dict[str, Any],
                                config: dict[str, Any], fmt: str | None, nulls: frozenset[str]) -> None:
    doc = base()
    doc["source_type"] = source_type
    doc["source_config"] = config
    src = doc["dataset_config"][0]["source"]
    del src["path"]
    src.update(source)
    c = load(tmp_path, doc)
    assert c.source_type == ("stream" if source_type == "streaming" else source_type)
    assert (c.datasets[0].format, c.datasets[0].null_values) == (fmt, nulls)


def test_nullable_is_the_classic_spelling_of_required(tmp_path: Path) -> None:
    doc = base()
    features = doc["dataset_config"][0]["source"]["features"]
    features[2]["nullable"] = False   # quantity -> required
    features[3]["nullable"] = True    # amount -> optional
    features[4].update(nullable=False, required=False)  # required wins
    ds = load(tmp_path, doc).datasets[0]
    assert [f.required for f in ds.source_features] == [True, True, True, False, False]


def test_unknown_feature_key_is_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    doc = base()
    doc["dataset_config"][0]["source"]["features"][2]["requried"] = True
    with caplog.at_level(logging.WARNING, logger="atlas_stream.contracts"):
        ds = load(tmp_path, doc).datasets[0]
    assert ds.source_features[2].required is False
    [record] = caplog.records
    text = record.getMessage()
    assert "$.dataset_config[0].source.features[2].requried" in text and "'required'" in text


def test_placeholders(tmp_path: Path) -> None:
    doc = base()
    doc["source_config"] = {"user": "${ATLAS_TEST_USER}", "host": "${ATLAS_TEST_HOST:-localhost}",
                            "empty_uses_default": "${ATLAS_TEST_EMPTY:-fallback}",
                            "literal": "$${NOT_A_VAR} costs $5", "list": ["a-${ATLAS_TEST_USER}-b", 3]}
    doc["dataset_config"][0]["source"]["path"] = "${ATLAS_TEST_DIR}/orders/*.csv"
    env = {"ATLAS_TEST_USER": "ann", "ATLAS_TEST_DIR": "/data", "ATLAS_TEST_EMPTY": ""}
    c = load(tmp_path, doc, env)
    assert dict(c.source_config) == {"user": "ann", "host": "localhost", "empty_uses_default": "fallback",
                                     "literal": "${NOT_A_VAR} costs $5", "list": ["a-ann-b", 3]}
    assert c.datasets[0].path == "/data/orders/*.csv" and c.datasets[0].format == "csv"


def test_placeholders_default_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ATLAS_TEST_PASSWORD", "from-os-environ")
    c = load_contract(write(tmp_path, base()))
    assert c.source_config["password"] == "from-os-environ"


# ---------------------------------------------------------------------------------- bad ones

Mutation = Callable[[dict[str, Any]], None]


def ds0(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["dataset_config"][0]


def feature(doc: dict[str, Any], i: int) -> dict[str, Any]:
    return ds0(doc)["source"]["features"][i]


def rules(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return ds0(doc)["quality"]["rules"]


BAD: list[tuple[str, Mutation, str, str]] = [
    ("bad dtype", lambda d: feature(d, 3).update(dtype="floaty"),
     "$.dataset_config[0].source.features[3].dtype", "unknown dtype 'floaty'"),
    ("decimal too wide", lambda d: feature(d, 3).update(dtype="decimal(40,2)"),
     "$.dataset_config[0].source.features[3].dtype", "precision <= 38"),
    ("dtype not a string", lambda d: feature(d, 3).update(dtype=5),
     "$.dataset_config[0].source.features[3].dtype", "expected string, got number 5"),
    ("unknown transformation type", lambda d: ds0(d)["transformations"].insert(0, {"type": "explode", "field": "x"}),
     "$.dataset_config[0].transformations[0].type", "expected one of rename, cast, drop, fill_null, trim, lower"),
    ("transformation without type", lambda d: ds0(d)["transformations"][0].pop("type"),
     "$.dataset_config[0].transformations[0].type", "required key 'type' is missing"),
    ("type and op differ", lambda d: ds0(d)["transformations"][0].update(op="lower"),
     "$.dataset_config[0].transformations[0].op", "'op' is an alias of 'type'"),
    ("unknown key on a transformation", lambda d: ds0(d)["transformations"][0].update(feild="x"),
     "$.dataset_config[0].transformations[0].feild", "unknown key 'feild' (did you mean 'field'?)"),
    ("key of another transformation type", lambda d: ds0(d)["transformations"][0].update(dtype="int"),
     "$.dataset_config[0].transformations[0].dtype", "'dtype' does not apply to an upper transformation"),
    ("rename without to", lambda d: ds0(d)["transformations"].insert(0, {"type": "rename", "from": "quantity"}),
     "$.dataset_config[0].transformations[0].to", "required key 'to' is missing"),
    ("cast to a bad dtype", lambda d: ds0(d)["transformations"].insert(0, {"type": "cast", "field": "quantity",
                                                                            "dtype": "long"}),
     "$.dataset_config[0].transformations[0].dtype", "unknown dtype 'long'"),
    ("upper on an unknown field", lambda d: ds0(d)["transformations"][0].update(field="colour"),
     "$.dataset_config[0].transformations[0]", "field 'colour' is not declared"),
    ("derive syntax error", lambda d: ds0(d)["transformations"][1].update(expr="amount / / quantity"),
     "$.dataset_config[0].transformations[1].expr", "expression does not parse: column"),
    ("derive unknown field", lambda d: ds0(d)["transformations"][1].update(expr="amount / qty"),
     "$.dataset_config[0].transformations[1]", "undeclared field(s) qty"),
    ("rule syntax error", lambda d: rules(d)[0].update(expr="amount >= "),
     "$.dataset_config[0].quality.rules[0].expr", "expression does not parse: column"),
    ("rule referencing unknown field", lambda d: rules(d)[0].update(expr="discount < amount"),
     "$.dataset_config[0].quality.rules[0].expr", "unknown field(s) 'discount'"),
    ("rule referencing a dropped field", lambda d: ds0(d)["transformations"].append({"type": "drop", "field": "amount"}),
     "$.dataset_config[0].quality.rules[0].expr", "unknown field(s) 'amount'"),
    ("duplicate rule name", lambda d: rules(d).append({"name": "positive", "expr": "quantity > 0"}),
     "$.dataset_config[0].quality.rules[1].name", "rule name 'positive' is already used"),
    ("unknown key on a rule", lambda d: rules(d)[0].update(severity="high"),
     "$.dataset_config[0].quality.rules[0].severity", "unknown key 'severity'"),
    ("min on a string", lambda d: feature(d, 0).update(min=1),
     "$.dataset_config[0].source.features[0].min", "'min' does not apply to a string field"),
    ("max on a bool", lambda d: feature(d, 0).update(dtype="bool", max=1),
     "$.dataset_config[0].source.features[0].max", "'max' does not apply to a bool field"),
    ("timestamp bound not ISO", lambda d: feature(d, 1).update(min="yesterday"),
     "$.dataset_config[0].source.features[1].min", "expected an ISO-8601 timestamp such as 2024-01-31T12:00:00Z for a timestamp field, got 'yesterday'"),
    ("numeric bound as text", lambda d: feature(d, 2).update(max="ten"),
     "$.dataset_config[0].source.features[2].max", "expected a finite number for an int field, got 'ten'"),
    ("max below min", lambda d: feature(d, 2).update(min=10, max=5),
     "$.dataset_config[0].source.features[2].max", "max 5 is below min 10"),
    ("bad regex", lambda d: feature(d, 0).update(pattern="([A-Z"),
     "$.dataset_config[0].source.features[0].pattern", "invalid regular expression '([A-Z'"),
    ("allowed value of the wrong type", lambda d: feature(d, 2).update(allowed=[1, 2, "three"]),
     "$.dataset_config[0].source.features[2].allowed[2]", "allowed value 'three' is not a valid int"),
    ("null allowed value", lambda d: feature(d, 4).update(allowed=["USD", None]),
     "$.dataset_config[0].source.features[4].allowed[1]", "null cannot be an allowed value"),
    ("max_length zero", lambda d: feature(d, 0).update(max_length=0),
     "$.dataset_config[0].source.features[0].max_length", "must be >= 1, got 0"),
    ("duplicate feature", lambda d: feature(d, 4).update(name="quantity"),
     "$.dataset_config[0].source.features[4].name", "feature 'quantity' is already declared at "
                                                    "$.dataset_config[0].source.features[2]"),
    ("feature without dtype", lambda d: feature(d, 2).pop("dtype"),
     "$.dataset_config[0].source.features[2].dtype", "required key 'dtype' is missing"),
    ("no features", lambda d: ds0(d)["source"].update(features=[]),
     "$.dataset_config[0].source.features", "must not be empty"),
    ("tiers silver > gold", lambda d: ds0(d)["quality"].update(tiers={"gold": 0.7, "silver": 0.9}),
     "$.dataset_config[0].quality.tiers.silver", "silver (0.9) must not be above gold (0.7)"),
    ("tier above 1", lambda d: ds0(d)["quality"].update(tiers={"gold": 1.5}),
     "$.dataset_config[0].quality.tiers.gold", "must be <= 1, got 1.5"),
    ("unknown tier", lambda d: ds0(d)["quality"].update(tiers={"bronze": 0.5}),
     "$.dataset_config[0].quality.tiers.bronze", "unknown key 'bronze' (allowed here: gold, silver)"),
    ("unknown quality key", lambda d: ds0(d)["quality"].update(tier={}),
     "$.dataset_config[0].quality.tier", "unknown key 'tier' (did you mean 'tiers'?)"),
    ("freshness in months", lambda d: ds0(d)["quality"].update(freshness="P1M"),
     "$.dataset_config[0].quality.freshness", "years and months are ambiguous"),
    ("freshness in years", lambda d: ds0(d)["quality"].update(freshness="P1Y2D"),
     "$.dataset_config[0].quality.freshness", "years and months are ambiguous"),
    ("freshness not ISO", lambda d: ds0(d)["quality"].update(freshness="24h"),
     "$.dataset_config[0].quality.freshness", "expected an ISO-8601 duration such as PT24H or P7D, got '24h'"),
    ("freshness zero", lambda d: ds0(d)["quality"].update(freshness="PT0S"),
     "$.dataset_config[0].quality.freshness", "expected a positive duration"),
    ("freshness without event_time", lambda d: ds0(d)["quality"].pop("event_time"),
     "$.dataset_config[0].quality.freshness", "set quality.event_time too"),
    ("event_time not temporal", lambda d: ds0(d)["quality"].update(event_time="quantity"),
     "$.dataset_config[0].quality.event_time", "'quantity' is an int field; event_time needs a date or timestamp"),
    ("event_time unknown", lambda d: ds0(d)["quality"].update(event_time="created"),
     "$.dataset_config[0].quality.event_time", "'created' is not a field of the dataset schema"),
    ("unknown compatibility", lambda d: ds0(d).update(compatibility="SIDEWAYS"),
     "$.dataset_config[0].compatibility", "expected one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD"),
    ("key not a feature", lambda d: ds0(d)["source"].update(key=["order_id", "customer"]),
     "$.dataset_config[0].source.key[1]", "key field 'customer' is not a field of the dataset schema"),
    ("key renamed away", lambda d: ds0(d)["transformations"].append({"type": "rename", "from": "order_id",
                                                                      "to": "id"}),
     "$.dataset_config[0].source.key", "key field 'order_id' is not a field of the dataset schema"),
    ("key of the wrong type", lambda d: ds0(d)["source"].update(key=7),
     "$.dataset_config[0].source.key", "expected a feature name or a non-empty list of feature names"),
    ("destination with ..", lambda d: ds0(d)["destination"].update(path="shop/../../etc"),
     "$.dataset_config[0].destination.path", "'..' is not allowed"),
    ("destination is the root", lambda d: ds0(d)["destination"].update(path="/"),
     "$.dataset_config[0].destination.path", "must name a folder under the lake root"),
    ("destination feature unknown", lambda d: ds0(d)["destination"].update(features=["order_id", "colour"]),
     "$.dataset_config[0].destination.features[1]", "'colour' is not a field of the dataset schema"),
    ("destination unknown tier", lambda d: ds0(d)["destination"].update(parquet_tiers=["gold", "platinum"]),
     "$.dataset_config[0].destination.parquet_tiers[1]", "expected one of gold, silver, bronze, rejected"),
    ("no destination", lambda d: ds0(d).pop("destination"),
     "$.dataset_config[0].destination", "required key 'destination' is missing"),
    ("no path for fs", lambda d: ds0(d)["source"].pop("path"),
     "$.dataset_config[0].source.path", "required key 'path' is missing"),
    ("bad group name", lambda d: d.update(ocs_group_name="shop orders"),
     "$.ocs_group_name", "'shop orders' is not a valid name"),
    ("group starting with a dash", lambda d: d.update(ocs_group_name="-shop"),
     "$.ocs_group_name", "not starting with '-'"),
    ("no group", lambda d: d.pop("ocs_group_name"), "$.ocs_group_name", "required key 'ocs_group_name' is missing"),
    ("bad source type", lambda d: d.update(source_type="ftp"),
     "$.source_type", "expected one of fs, rdbms, api, kafka, websocket, stream, streaming, got 'ftp'"),
    ("empty dataset_config", lambda d: d.update(dataset_config=[]), "$.dataset_config", "must not be empty"),
    ("source_config not an object", lambda d: d.update(source_config=["x"]),
     "$.source_config", "expected object, got array"),
    ("bad source_config format", lambda d: d["source_config"].update(format="xml"),
     "$.source_config.format", "expected one of csv, jsonl, json, parquet, got 'xml'"),
    ("duplicate dataset name", lambda d: d["dataset_config"].append(copy.deepcopy(ds0(d))),
     "$.dataset_config[1].source.name", "dataset name 'orders' is already used by $.dataset_config[0].source.name"),
    ("missing env var with no default", lambda d: ds0(d)["source"].update(path="${ATLAS_TEST_UNSET}/x/*.csv"),
     "$.dataset_config[0].source.path", "environment variable ATLAS_TEST_UNSET is not set and ${ATLAS_TEST_UNSET} "
                                        "has no default"),
    ("malformed placeholder", lambda d: ds0(d)["destination"].update(path="lake/${not valid}"),
     "$.dataset_config[0].destination.path", "malformed placeholder '${not valid}'"),
    ("unterminated placeholder", lambda d: d["source_config"].update(url="http://${HOST"),
     "$.source_config.url", "unterminated placeholder"),
    ("odd key in a JSON path", lambda d: d["source_config"].update({"a b": "${ATLAS_TEST_UNSET}"}),
     "$.source_config['a b']", "ATLAS_TEST_UNSET is not set"),
]


@pytest.mark.parametrize(("mutate", "path", "message"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_contract(tmp_path: Path, mutate: Mutation, path: str, message: str) -> None:
    doc = base()
    mutate(doc)
    error = failure(tmp_path, doc)
    assert error.file == str(tmp_path / "shop.json")
    assert (error.json_path, message in error.message) == (path, True), error.message
    assert str(error) == f"{error.file}: {path}: {error.message}"


def test_base_contract_is_valid(tmp_path: Path) -> None:
    # guards the table above: each case fails only because of its own mutation
    assert load(tmp_path, base()).datasets[0].name == "orders"


def test_json_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    text = '{\n  "ocs_group_name": "shop",\n  "source_type": "fs"\n  "dataset_config": []\n}\n'
    error = failure(tmp_path, text)
    assert error.json_path == "$"
    assert error.message.startswith("invalid JSON at line 4, column 3: Expecting ',' delimiter")


def test_top_level_must_be_an_object(tmp_path: Path) -> None:
    error = failure(tmp_path, "[1, 2]")
    assert (error.json_path, error.message.startswith("a contract must be a JSON object")) == ("$", True)


def test_all_problems_of_a_file_are_collected(tmp_path: Path) -> None:
    doc = base()
    doc["source_type"] = "ftp"
    feature(doc, 3)["dtype"] = "floaty"
    rules(doc)[0]["expr"] = "amount >"
    doc["dataset_config"].append(copy.deepcopy(BASE["dataset_config"][0]))
    doc["dataset_config"][1]["source"]["name"] = "orders_copy"
    doc["dataset_config"][1]["destination"]["path"] = "../x"
    write(tmp_path, doc)
    errors = check_contracts(tmp_path, env=NO_ENV)
    assert sorted(e.json_path for e in errors) == [
        "$.dataset_config[0].quality.rules[0].expr",
        "$.dataset_config[0].source.features[3].dtype",
        "$.dataset_config[1].destination.path",
        "$.source_type",
    ]
    with pytest.raises(ContractError) as info:
        load_contracts(tmp_path, env=NO_ENV)
    assert len(info.value.__notes__) == 3


def test_duplicate_group_across_files_names_both(tmp_path: Path) -> None:
    first = write(tmp_path, base(), "a.json")
    second = write(tmp_path, base(), "b.json")
    [error] = check_contracts(tmp_path, env=NO_ENV)
    assert (error.file, error.json_path) == (str(second), "$.ocs_group_name")
    assert "'shop' is already used by" in error.message and str(first) in error.message
    with pytest.raises(ContractError) as info:
        load_contracts(tmp_path, env=NO_ENV)
    assert info.value.file == str(second)


def test_directory_errors(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    [error] = check_contracts(missing, env=NO_ENV)
    assert (error.file, error.json_path) == (str(missing), "$")
    assert "does not exist" in error.message and "ATLAS_METADATA_DIR" in error.message
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(SCHEMA_PATH, empty / "contract.schema.json")  # the schema is not a contract
    with pytest.raises(ContractError, match="no contracts found"):
        load_contracts(empty, env=NO_ENV)


def test_load_contracts_skips_the_schema_and_sorts(tmp_path: Path) -> None:
    for name in ("b", "a"):
        doc = base()
        doc["ocs_group_name"] = f"group_{name}"
        write(tmp_path, doc, f"{name}.json")
    shutil.copy(SCHEMA_PATH, tmp_path / "contract.schema.json")
    (tmp_path / "notes.txt").write_text("not a contract")
    assert [c.group for c in load_contracts(tmp_path, env=NO_ENV)] == ["group_a", "group_b"]


def test_secret_values_never_appear_in_errors_reprs_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    env = {"ATLAS_TEST_PASSWORD": SECRET, "ATLAS_TEST_SECRET_TYPE": SECRET}
    good = base()
    good["source_config"]["dsn"] = "postgresql://app:${ATLAS_TEST_PASSWORD}@db/shop"
    good["dataset_config"][0]["source"]["features"][0]["bogus_key"] = "${ATLAS_TEST_PASSWORD}"
    with caplog.at_level(logging.DEBUG):
        contract = load(tmp_path / "good", good, env)
    assert contract.source_config["password"] == SECRET
    assert contract.source_config["dsn"] == f"postgresql://app:{SECRET}@db/shop"
    assert SECRET not in repr(contract) and SECRET not in repr(contract.source_config)
    assert SECRET not in repr(contract.datasets[0].source)
    assert "${ATLAS_TEST_PASSWORD}" in repr(contract.source_config)

    bad = base()
    bad["source_type"] = "${ATLAS_TEST_SECRET_TYPE}"
    bad["source_config"] = ["${ATLAS_TEST_PASSWORD}"]
    feature(bad, 0)["dtype"] = "${ATLAS_TEST_PASSWORD}"
    feature(bad, 2)["allowed"] = ["x${ATLAS_TEST_PASSWORD}"]
    feature(bad, 1)["min"] = "${ATLAS_TEST_PASSWORD}"
    rules(bad)[0]["expr"] = "${ATLAS_TEST_PASSWORD} >"
    ds0(bad)["transformations"][1]["expr"] = "amount + ${ATLAS_TEST_PASSWORD}"
    ds0(bad)["destination"]["path"] = "${ATLAS_TEST_PASSWORD}/../x"
    write(tmp_path / "bad", bad)
    with caplog.at_level(logging.DEBUG):
        errors = check_contracts(tmp_path / "bad", env=env)
    # an expression that parses: the field names it holds are withheld too
    in_rule, in_derive = base(), base()
    rules(in_rule)[0]["expr"] = "amount > ${ATLAS_TEST_EXPR}"
    ds0(in_derive)["transformations"][1]["expr"] = "${ATLAS_TEST_EXPR}"
    write(tmp_path / "parses", in_rule, "a.json")
    write(tmp_path / "parses", {**in_derive, "ocs_group_name": "other"}, "b.json")
    expr_errors = check_contracts(tmp_path / "parses", env={"ATLAS_TEST_EXPR": "s3cr3t_x * Pa55w0rd_y"})
    assert [e.json_path for e in expr_errors] == ["$.dataset_config[0].quality.rules[0].expr",
                                                  "$.dataset_config[0].transformations[1]"]
    errors += expr_errors
    assert len(errors) >= 6
    for error in errors:
        for text in (str(error), repr(error), error.message):
            assert SECRET not in text
            assert "s3cr3t" not in text and "Pa55w0rd" not in text  # nor fragments of it
    assert any("${ATLAS_TEST_SECRET_TYPE}" in e.message for e in errors if e.json_path == "$.source_type")
    assert SECRET not in caplog.text


def test_json_path() -> None:
    assert json_path(()) == "$"
    assert json_path(("dataset_config", 0, "source", "features", 3, "dtype")) == \
        "$.dataset_config[0].source.features[3].dtype"
    assert json_path(("source_config", "a b", "it's")) == "$.source_config['a b']['it\\'s']"


def test_filled_values_are_plain_strings_but_for_their_repr(tmp_path: Path) -> None:
    doc = base()
    doc["source_config"]["dsn"] = "db://u:${ATLAS_TEST_PASSWORD}@h/x"
    value = load(tmp_path, doc, {"ATLAS_TEST_PASSWORD": SECRET}).source_config["dsn"]
    plain = f"db://u:{SECRET}@h/x"
    assert value == plain and hash(value) == hash(plain) and f"{value}" == plain and str(value) == plain
    assert isinstance(value, str) and type(str(value)) is str
    assert repr(value) == "'db://u:${ATLAS_TEST_PASSWORD}@h/x'"
    assert json.loads(json.dumps({"dsn": value})) == {"dsn": plain}
    assert orjson.loads(orjson.dumps({"dsn": value})) == {"dsn": plain}
    for copied in (copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert copied == plain and repr(copied) == repr(value)

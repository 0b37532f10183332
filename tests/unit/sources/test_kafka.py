"""Kafka source: contract settings and what each consumed value becomes (no broker)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from atlas_stream.contracts import load_contract
from atlas_stream.errors import ContractError
from atlas_stream.model import Contract
from atlas_stream.settings import Settings
from atlas_stream.sources.kafka.source import KafkaConfig, KafkaSource

SETTINGS = Settings(broker="kafka://b1:9092;kafka://b2:9092", max_message_bytes=20_000)


def _contract(tmp_path: Path, config: dict[str, Any], **source: Any) -> Contract:
    doc = {
        "ocs_group_name": "shop",
        "source_type": "kafka",
        "source_config": config,
        "dataset_config": [{"source": {"name": "orders", "path": source.pop("path", "ext.orders"),
                                       "key": source.pop("key", ["region", "id"]),
                                       "features": [{"name": "id", "dtype": "int"},
                                                    {"name": "region", "dtype": "string"}],
                                       **source},
                            "transformations": source.pop("transformations", []),
                            "destination": {"path": "shop/orders"}}],
    }
    path = tmp_path / "shop.json"
    path.write_text(json.dumps(doc))
    return load_contract(path, {})


def _source(tmp_path: Path, config: dict[str, Any] | None = None, **source: Any) -> KafkaSource:
    contract = _contract(tmp_path, config or {}, **source)
    ds = contract.datasets[0]
    return KafkaSource(contract, ds, SETTINGS, KafkaConfig.from_contract(contract, ds, SETTINGS))


def _message(value: bytes | None, offset: int = 7, key: bytes | None = b"k") -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord(topic="ext.orders", partition=2, offset=offset, timestamp=1_700_000_000_000,
                          timestamp_type=0, key=key, value=value, checksum=None,
                          serialized_key_size=len(key or b""), serialized_value_size=len(value or b""), headers=())


def test_defaults_come_from_atlas_stream(tmp_path: Path) -> None:
    src = _source(tmp_path)
    cfg = src.config
    assert cfg.topic == "ext.orders" and cfg.bootstrap == ["b1:9092", "b2:9092"]
    assert cfg.group_id == "atlas-source.shop.orders" and cfg.start == "earliest" and not cfg.consume_directly
    assert src.source_id == "kafka:shop.orders" and src.topics() == ["atlas.shop.orders.raw", "atlas.shop.dlq"]
    assert src.lag() is None


def test_settings_from_the_contract(tmp_path: Path) -> None:
    cfg = _source(tmp_path, {"bootstrap_servers": "kafka://k1:9093, k2:9093", "group_id": "copier"},
                  batch_size=50, start="latest", consume_directly=True).config
    assert cfg.bootstrap == ["k1:9093", "k2:9093"] and cfg.group_id == "copier"
    assert cfg.batch_size == 50 and cfg.start == "latest" and cfg.consume_directly
    assert _source(tmp_path, {"bootstrap_servers": ["k3:1"]}).config.bootstrap == ["k3:1"]


@pytest.mark.parametrize(("config", "source", "where"), [
    ({"bootstrap_servers": ""}, {}, "$.source_config.bootstrap_servers"),
    ({"group_id": 5}, {}, "$.source_config.group_id"),
    ({}, {"batch_size": 0}, "$.dataset_config[0].source.batch_size"),
    ({"start": "middle"}, {}, "$.source_config.start"),
    ({}, {"consume_directly": "yes"}, "$.dataset_config[0].source.consume_directly"),
    ({}, {"poll_interval": 0}, "$.dataset_config[0].source.poll_interval"),
])
def test_bad_settings_name_the_json_path(tmp_path: Path, config: dict[str, Any], source: dict[str, Any],
                                         where: str) -> None:
    contract = _contract(tmp_path, config, **source)
    with pytest.raises(ContractError) as err:
        KafkaConfig.from_contract(contract, contract.datasets[0], SETTINGS)
    assert err.value.json_path == where


def test_json_objects_are_copied_as_they_are_keyed_by_the_contract_key(tmp_path: Path) -> None:
    src = _source(tmp_path)
    value = b'{"id": 12345678901234567890123, "region": "eu", "amount": 1.10}'
    out = src._out(_message(value))
    assert out.topic == "atlas.shop.orders.raw" and not out.dead
    assert out.value == value  # the original bytes: no number is re-encoded
    assert out.key == b'["eu",12345678901234567890123]'
    assert out.position == "ext.orders:2:7"
    assert src._out(_message(b'{"region": "eu"}')).key is None  # a null key field: no key


def test_bad_values_become_dead_letters_with_their_place_and_reason(tmp_path: Path) -> None:
    src = _source(tmp_path)
    cases = [(b"not json", "not valid JSON"), (b"[1, 2]", "expected a JSON object"),
             (None, "tombstone"), (b'{"x": "' + b"a" * 30_000 + b'"}', "larger than ATLAS_MAX_MESSAGE_BYTES")]
    for value, reason in cases:
        out = src._out(_message(value, offset=99, key=b"orig"))
        assert out.dead and out.topic == "atlas.shop.dlq" and out.key is None and out.position == "ext.orders:2:99"
        doc = orjson.loads(out.value)
        assert reason in doc["error"], doc["error"]
        assert doc["dataset"] == "orders" and doc["stage"] == "source"
        assert {k: doc["source"][k] for k in ("topic", "partition", "offset", "source")} == {
            "topic": "ext.orders", "partition": 2, "offset": 99, "source": "kafka:shop.orders"}
        assert base64.b64decode(doc["key_b64"]) == b"orig"
        assert len(out.value) < SETTINGS.max_message_bytes


def test_renamed_key_fields_are_read_under_their_source_names(tmp_path: Path) -> None:
    src = _source(tmp_path, key=["region", "order_id"],
                  transformations=[{"type": "rename", "from": "id", "to": "order_id"}])
    assert src._out(_message(b'{"id": 5, "region": "eu"}')).key == b'["eu",5]'


def test_a_contract_names_its_own_cluster_and_credentials(tmp_path: Path) -> None:
    secured = Settings(broker="kafka://main:9093", kafka_security=Settings.from_env(
        {"ATLAS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "ATLAS_KAFKA_SASL_USERNAME": "main",
         "ATLAS_KAFKA_SASL_PASSWORD": "main-pw"}).kafka_security)
    doc = {"bootstrap_servers": "other:9096", "security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512",
           "sasl_username": "${SRC_USER:-copier}", "sasl_password": "${SRC_PASSWORD:-src-pw}"}
    contract = _contract(tmp_path, doc)
    cfg = KafkaConfig.from_contract(contract, contract.datasets[0], secured)
    sec = cfg.security
    assert (sec.protocol, sec.sasl_mechanism, sec.sasl_username, sec.sasl_password) == \
        ("SASL_SSL", "SCRAM-SHA-512", "copier", "src-pw")
    assert "src-pw" not in repr(cfg)
    # Without a cluster of its own, the source reads ATLAS_BROKER with ATLAS_KAFKA_*.
    plain = _contract(tmp_path, {})
    assert KafkaConfig.from_contract(plain, plain.datasets[0], secured).security.sasl_username == "main"
    bad = _contract(tmp_path, {"bootstrap_servers": "other:9096", "security_protocol": "SASL_SSL",
                               "sasl_username": "u"})
    with pytest.raises(ContractError, match=r"\$.source_config.sasl_password is not set"):
        KafkaConfig.from_contract(bad, bad.datasets[0], secured)

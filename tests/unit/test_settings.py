"""Settings: defaults that work on a fresh machine, typed values, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from atlas_stream.app import dev_profile, faust_settings
from atlas_stream.errors import SettingsError
from atlas_stream.settings import Settings


def test_defaults_work_on_a_fresh_machine() -> None:
    s = Settings.from_env({})
    assert s.broker == "kafka://127.0.0.1:9092" and s.bootstrap_servers == ["127.0.0.1:9092"]
    assert s.metadata_dir == Path("metadata") and s.web_port == 6066 and s.es_url is None
    assert s.lake_uri == (Path.cwd() / "lake").as_uri()
    assert not s.embedded_broker and s.gateway_port == 8765
    assert s.spark_master == "local[*]"
    assert Settings.from_env({"ATLAS_SPARK_MASTER": " spark://m:7077 "}).spark_master == "spark://m:7077"


@pytest.mark.parametrize(("env", "message"), [
    ({"ATLAS_WEB_PORT": "http"}, "ATLAS_WEB_PORT='http': expected a whole number"),
    ({"ATLAS_EMBEDDED_BROKER": "maybe"}, "ATLAS_EMBEDDED_BROKER='maybe'"),
    ({"ATLAS_DEV_BROKER": "redpanda"}, "expected one of kafka, noida, tansu"),
    ({"ATLAS_PROCESSING_GUARANTEE": "twice"}, "at_least_once or exactly_once"),
    ({"ATLAS_TOPIC_PARTITIONS": "0"}, "must be at least 1"),
    ({"ATLAS_LOG_LEVEL": "loud"}, "expected debug, info, warn, error or crit"),
    ({"ATLAS_BROKER": " "}, "ATLAS_BROKER is empty"),
])
def test_bad_values_are_refused_with_the_variable_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=None) as err:
        Settings.from_env(env)
    assert message in str(err.value)


def test_several_brokers_and_lake_uris() -> None:
    s = Settings.from_env({"ATLAS_BROKER": "kafka://a:9092;kafka://b:9093", "ATLAS_LAKE_URI": "s3://bucket/lake",
                           "ATLAS_LOG_LEVEL": "WARNING"})
    assert s.bootstrap_servers == ["a:9092", "b:9093"] and s.lake_uri == "s3://bucket/lake"
    assert s.log_level == "warn"


def test_development_workarounds_only_with_the_embedded_broker_flag() -> None:
    prod = faust_settings(Settings.from_env({"ATLAS_DEV_BROKER": "tansu"}))
    assert dev_profile(Settings.from_env({"ATLAS_DEV_BROKER": "tansu"})) == {}
    assert "producer_max_batch_size" not in prod and prod["producer_acks"] == -1
    dev = faust_settings(Settings.from_env({"ATLAS_EMBEDDED_BROKER": "1", "ATLAS_DEV_BROKER": "tansu"}))
    assert dev["producer_max_batch_size"] == 1 and dev["broker_session_timeout"] == 6.0
    assert dev["store"] == "memory://"
    noida = faust_settings(Settings.from_env({"ATLAS_EMBEDDED_BROKER": "1"}))
    assert "producer_max_batch_size" not in noida


def test_admin_token_is_optional_and_never_shown() -> None:
    assert Settings.from_env({}).admin_token is None
    assert Settings.from_env({"ATLAS_ADMIN_TOKEN": "  "}).admin_token is None
    s = Settings.from_env({"ATLAS_ADMIN_TOKEN": "t0ken"})
    assert s.admin_token == "t0ken"
    assert "t0ken" not in repr(s) and "t0ken" not in str(s.describe())


def test_tables_are_on_disk_by_default_where_that_is_safe() -> None:
    assert Settings.from_env({}).store == "rocksdb://"
    assert Settings.from_env({"ATLAS_PROCESSING_GUARANTEE": "exactly_once"}).store == "memory://"
    assert Settings.from_env({"ATLAS_STORE": "memory://"}).store == "memory://"
    tansu = Settings.from_env({"ATLAS_EMBEDDED_BROKER": "1", "ATLAS_DEV_BROKER": "tansu"})
    assert faust_settings(tansu)["store"] == "memory://"  # Tansu forgets its topics: tables stay in memory


def test_a_table_store_key_names_its_partition() -> None:
    from atlas_stream.table_store import key_partition

    assert key_partition(b'"3|shop.orders|gold"') == 3 and key_partition(b"12|x|y") == 12


def test_the_readme_table_is_generated_from_the_declarations() -> None:
    from atlas_stream.settings import markdown_table, readme_section

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert readme_section(readme) == markdown_table(), (
        "README.md's settings table is out of step: run `python -m atlas_stream.settings --write README.md`")


def test_every_setting_is_declared_once_with_its_variable() -> None:
    from dataclasses import fields

    from atlas_stream.settings import declarations

    names = [declared.env for _, declared in declarations()]
    assert len(names) == len(set(names)) and all(n.startswith("ATLAS_") for n in names)
    assert {"ATLAS_BROKER", "ATLAS_KAFKA_SASL_PASSWORD", "ATLAS_ES_CLOUD_ID"} <= set(names)
    attrs = {name.split(".")[0] for name, _ in declarations()}
    assert attrs == {f.name for f in fields(Settings)}
    assert all(declared.help and declared.parse.accepts for _, declared in declarations())


@pytest.mark.parametrize(("env", "message"), [
    ({"ATLAS_BROKER_SESSION_TIMEOUT": "soon"}, "ATLAS_BROKER_SESSION_TIMEOUT='soon': expected a number of seconds"),
    ({"ATLAS_SINK_FLUSH_SECONDS": "0"}, "ATLAS_SINK_FLUSH_SECONDS='0': must be positive"),
    ({"ATLAS_MAX_MESSAGE_BYTES": "10"}, "ATLAS_MAX_MESSAGE_BYTES='10': must be at least 10000"),
    ({"ATLAS_SINK_ENABLED": "sometimes"}, "expected 1/0, true/false, yes/no or on/off"),
    ({"ATLAS_ES_USERNAME": "elastic"}, "ATLAS_ES_USERNAME and ATLAS_ES_PASSWORD go together"),
    ({"ATLAS_KAFKA_SECURITY_PROTOCOL": "tls"}, "ATLAS_KAFKA_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT"),
])
def test_more_bad_values_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env(env)
    assert message in str(err.value)


def test_unset_and_empty_values_read_as_before() -> None:
    s = Settings.from_env({"ATLAS_WEB_HOST": "", "ATLAS_ES_PASSWORD": " p ", "ATLAS_ES_USERNAME": " u ",
                           "ATLAS_SPARK_MASTER": " ", "ATLAS_DEV_BROKER": " Tansu ", "ATLAS_METADATA_DIR": "~/m"})
    assert s.web_host == "" and s.es_password == " p " and s.es_username == "u" and s.spark_master == "local[*]"
    assert s.dev_broker == "tansu" and s.metadata_dir == Path("~/m").expanduser()
    d = Settings.from_env({})
    assert (d.broker_session_timeout, d.sink_enabled, d.sink_flush_bytes, d.dev_broker) == (45.0, True, 32 << 20, None)
    assert Settings().lake_uri == "" and Settings().store == "memory://"
    shown = str(Settings.from_env({"ATLAS_ES_API_KEY": "k3y", "ATLAS_ES_USERNAME": "u", "ATLAS_ES_PASSWORD": "pw9",
                                   "ATLAS_ES_URL": "https://u:s3cr3t@es:9200"}).describe())
    assert "k3y" not in shown and "pw9" not in shown and "s3cr3t" not in shown

"""Kafka, Elasticsearch and S3 security settings: validated with the setting's name, handed to
every client, and never shown in a repr or describe() (the Elasticsearch sink's own retry warnings
and connection options: tests/unit/sinks/test_elasticsearch.py)."""

from __future__ import annotations

from pathlib import Path

import faust
import pytest

from atlas_stream.app import faust_settings
from atlas_stream.errors import SettingsError
from atlas_stream.kafka_security import client_kwargs
from atlas_stream.settings import Settings


@pytest.mark.parametrize(("env", "message"), [
    ({"ATLAS_KAFKA_SECURITY_PROTOCOL": "TLS"}, "ATLAS_KAFKA_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT, SSL"),
    ({"ATLAS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "ATLAS_KAFKA_SASL_USERNAME": "u", "ATLAS_KAFKA_SASL_PASSWORD": "p",
      "ATLAS_KAFKA_SASL_MECHANISM": "GSSAPI"}, "ATLAS_KAFKA_SASL_MECHANISM='GSSAPI': expected one of PLAIN"),
    ({"ATLAS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ATLAS_KAFKA_SASL_USERNAME": "u"},
     "ATLAS_KAFKA_SASL_PASSWORD is not set"),
    ({"ATLAS_KAFKA_SSL_CERTFILE": "/c.pem"}, "ATLAS_KAFKA_SSL_CERTFILE and ATLAS_KAFKA_SSL_KEYFILE go together"),
    ({"ATLAS_ES_USERNAME": "elastic"}, "ATLAS_ES_USERNAME and ATLAS_ES_PASSWORD go together"),
])
def test_bad_security_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message.replace("(", r"\(")):
        Settings.from_env(env)


def test_sasl_ssl_reaches_faust_and_the_plain_clients(tmp_path: Path) -> None:
    import ssl

    ca = tmp_path / "ca.pem"
    ca.write_text(_ca_pem())
    s = Settings.from_env({"ATLAS_KAFKA_SECURITY_PROTOCOL": "sasl_ssl", "ATLAS_KAFKA_SASL_MECHANISM": "scram-sha-512",
                           "ATLAS_KAFKA_SASL_USERNAME": "alice", "ATLAS_KAFKA_SASL_PASSWORD": "pw-1",
                           "ATLAS_KAFKA_SSL_CAFILE": str(ca)})
    creds = faust_settings(s)["broker_credentials"]
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol.value == "SASL_SSL"
    assert creds.mechanism.value == "SCRAM-SHA-512" and creds.username == "alice" and creds.password == "pw-1"
    kwargs = client_kwargs(s.kafka_security)
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_plain_password"] == "pw-1"
    assert kwargs["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    assert faust_settings(Settings.from_env({}))["broker_credentials"] is None
    assert client_kwargs(Settings.from_env({}).kafka_security) == {}


def test_an_unreadable_ca_file_names_the_setting() -> None:
    s = Settings.from_env({"ATLAS_KAFKA_SECURITY_PROTOCOL": "SSL", "ATLAS_KAFKA_SSL_CAFILE": "/nowhere/ca.pem"})
    with pytest.raises(SettingsError, match="ATLAS_KAFKA_SSL_CAFILE=/nowhere/ca.pem: cannot be read"):
        client_kwargs(s.kafka_security)


def test_secrets_stay_out_of_repr_and_describe() -> None:
    s = Settings.from_env({"ATLAS_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "ATLAS_KAFKA_SASL_USERNAME": "alice",
                           "ATLAS_KAFKA_SASL_PASSWORD": "kafka-secret", "ATLAS_ES_API_KEY": "es-key-secret",
                           "ATLAS_ES_USERNAME": "elastic", "ATLAS_ES_PASSWORD": "es-pw-secret",
                           "ATLAS_ES_URL": "https://elastic:url-secret@es:9200", "ATLAS_ADMIN_TOKEN": "tok-secret"})
    shown = repr(s) + str(s.describe()) + repr(s.kafka_security) + s.kafka_security.describe()
    for secret in ("kafka-secret", "es-key-secret", "es-pw-secret", "url-secret", "tok-secret"):
        assert secret not in shown
    assert s.describe()["es_url"] == "https://elastic:***@es:9200"
    assert s.describe()["kafka_security"] == "SASL_PLAINTEXT, PLAIN as 'alice'"


def _ca_pem() -> str:
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "unit CA")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_s3_region_and_ca_file_reach_the_lake(tmp_path: Path) -> None:
    from atlas_stream.sinks.lakefs import open_lake

    ca = tmp_path / "ca.pem"
    ca.write_text(_ca_pem())
    lake = open_lake("s3://bucket/lake", s3_endpoint="https://127.0.0.1:9", s3_region="eu-west-3", s3_ca_file=str(ca))
    assert lake.fs.region == "eu-west-3"  # type: ignore[attr-defined]
    with pytest.raises(SettingsError, match="ATLAS_S3_CA_FILE=/nowhere.pem: no such file"):
        open_lake("s3://bucket/lake", s3_ca_file="/nowhere.pem")

"""A test CA and server certificates (made with ``cryptography``), and a real Kafka broker with a
SASL_SSL listener whose SCRAM users are created when its log directory is formatted."""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from atlas_stream.devbroker import choose_dev_broker, free_port
from atlas_stream.devkafka import KafkaCluster

from .secrets_check import secret

USER = "alice"


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(folder: Path, common: str = "Atlas Test CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate, Path]:
    """A self-signed CA; returns its key, certificate and the PEM file of the certificate."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    path = folder / f"{common.replace(' ', '-').lower()}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key, cert, path


def make_server_cert(folder: Path, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate,
                     password: str) -> Path:
    """A certificate for 127.0.0.1/localhost signed by the CA, as a PKCS#12 key store."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name("localhost")).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    path = folder / "server.p12"
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        b"server", key, cert, [ca_cert], serialization.BestAvailableEncryption(password.encode())))
    return path


@dataclass
class SecureKafka:
    """A Kafka broker with a PLAINTEXT listener (``bootstrap``, for the test's own clients) and a
    SASL_SSL one (``secure``) that only SCRAM-SHA-256 user ``alice`` with ``password`` may use."""

    cluster: KafkaCluster
    secure_port: int
    password: str
    cafile: Path
    other_cafile: Path  # a CA that did not sign the broker's certificate

    @property
    def bootstrap(self) -> str:
        return self.cluster.bootstrap

    @property
    def secure(self) -> str:
        return f"127.0.0.1:{self.secure_port}"

    def env(self, **override: str) -> dict[str, str]:
        """ATLAS_* settings of a client of the SASL_SSL listener."""
        env = {"ATLAS_BROKER": f"kafka://{self.secure}", "ATLAS_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
               "ATLAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-256", "ATLAS_KAFKA_SASL_USERNAME": USER,
               "ATLAS_KAFKA_SASL_PASSWORD": self.password, "ATLAS_KAFKA_SSL_CAFILE": str(self.cafile)}
        env.update(override)
        return env


@pytest.fixture(scope="module")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    kind, note = choose_dev_broker(None)
    if kind != "kafka":
        pytest.skip(f"a SASL_SSL listener needs Apache Kafka: {note}")
    tmp = tmp_path_factory.mktemp("secure-kafka")
    ca_key, ca_cert, cafile = make_ca(tmp)
    _, _, other = make_ca(tmp, "Other CA")
    store_password = secrets.token_hex(8)
    store = make_server_cert(tmp, ca_key, ca_cert, store_password)
    password = secret("alice-" + secrets.token_hex(8))
    port = free_port()
    extra = {
        "ssl.keystore.type": "PKCS12", "ssl.keystore.location": str(store),
        "ssl.keystore.password": store_password, "ssl.key.password": store_password,
        "sasl.enabled.mechanisms": "SCRAM-SHA-256",
        "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config":
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
    }
    log = open(tmp / "broker-kafka.log", "w")
    cluster = KafkaCluster(free_port(), data_dir=tmp / "broker", log=log, extra=extra,
                           listeners={"SASL_SSL": port}, scram_users=[("SCRAM-SHA-256", USER, password)])
    cluster.start()
    try:
        yield SecureKafka(cluster, port, password, cafile, other)
    finally:
        cluster.stop()
        log.close()

"""Kafka security (TLS, SASL) for every Kafka client Atlas Stream builds, from one place.

:class:`KafkaSecurity` holds what ``ATLAS_KAFKA_*`` (or a contract's Kafka source) says;
:func:`client_kwargs` turns it into aiokafka keyword arguments, :func:`faust_credentials` into
Faust's ``broker_credentials``, and :func:`check_kafka` tries one login before a process starts,
so wrong credentials or an untrusted certificate end in one line naming the setting to fix.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import SettingsError

__all__ = ["MECHANISMS", "PROTOCOLS", "KafkaSecurity", "check_kafka", "client_kwargs", "faust_credentials"]

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    """How to reach a Kafka cluster. ``names`` says where each value came from (the environment
    variable or the contract key), so every error can name the setting to fix. The password never
    appears in a repr."""

    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    names: dict[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, values: dict[str, str | None], names: dict[str, str]) -> "KafkaSecurity":
        """Validated security from raw values keyed like the fields (missing keys: defaults)."""

        def get(key: str) -> str | None:
            raw = values.get(key)
            return str(raw).strip() or None if raw is not None else None

        protocol = (get("protocol") or "PLAINTEXT").upper()
        if protocol not in PROTOCOLS:
            raise SettingsError(f"{names['protocol']}={protocol!r}: expected one of {', '.join(PROTOCOLS)}")
        mechanism = get("sasl_mechanism")
        sasl = protocol.startswith("SASL_")
        if sasl:
            mechanism = (mechanism or "PLAIN").upper()
            if mechanism not in MECHANISMS:
                raise SettingsError(f"{names['sasl_mechanism']}={mechanism!r}: expected one of {', '.join(MECHANISMS)}")
            for key in ("sasl_username", "sasl_password"):
                if not get(key):
                    raise SettingsError(f"{names[key]} is not set: {names['protocol']}={protocol} needs it")
        certfile, keyfile = get("ssl_certfile"), get("ssl_keyfile")
        if bool(certfile) != bool(keyfile):
            raise SettingsError(f"{names['ssl_certfile']} and {names['ssl_keyfile']} go together "
                                "(a client certificate and its private key): set both or neither")
        return cls(protocol=protocol, sasl_mechanism=mechanism if sasl else None,
                   sasl_username=get("sasl_username") if sasl else None,
                   sasl_password=values.get("sasl_password") if sasl else None,
                   ssl_cafile=get("ssl_cafile"), ssl_certfile=certfile, ssl_keyfile=keyfile, names=dict(names))

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """One line for logs and status reports: never the password."""
        parts = [self.protocol]
        if self.sasl_mechanism:
            parts.append(f"{self.sasl_mechanism} as {self.sasl_username!r}")
        if self.ssl_cafile:
            parts.append(f"CA {self.ssl_cafile}")
        return ", ".join(parts)

    def name(self, key: str) -> str:
        return self.names.get(key, key)

    def ssl_context(self) -> ssl.SSLContext:
        """A context that verifies the brokers against ``ssl_cafile`` (else the system CAs)."""
        from aiokafka.helpers import create_ssl_context

        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, key)
            if path is not None:
                try:
                    with open(path, "rb"):
                        pass
                except OSError as exc:
                    raise SettingsError(f"{self.name(key)}={path}: cannot be read ({exc.strerror})") from None
        try:
            return create_ssl_context(cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile)
        except ssl.SSLError as exc:
            raise SettingsError(f"{self.name('ssl_cafile')}/{self.name('ssl_certfile')}/{self.name('ssl_keyfile')}: "
                                f"not a usable PEM certificate or key ({exc.reason or exc})") from None


PLAINTEXT = KafkaSecurity()


def client_kwargs(security: KafkaSecurity | None) -> dict[str, Any]:
    """aiokafka keyword arguments (producer, consumer, admin) for ``security``; ``{}`` for plaintext."""
    if security is None or security.protocol == "PLAINTEXT":
        return {}
    out: dict[str, Any] = {"security_protocol": security.protocol}
    if security.uses_ssl:
        out["ssl_context"] = security.ssl_context()
    if security.sasl_mechanism:
        out.update(sasl_mechanism=security.sasl_mechanism, sasl_plain_username=security.sasl_username,
                   sasl_plain_password=security.sasl_password)
    return out


def faust_credentials(security: KafkaSecurity) -> Any:
    """Faust's ``broker_credentials`` (``faust.SASLCredentials`` / ``faust.SSLCredentials``), or None."""
    import faust

    if security.protocol == "PLAINTEXT":
        return None
    context = security.ssl_context() if security.uses_ssl else None
    if security.sasl_mechanism:
        return faust.SASLCredentials(username=security.sasl_username, password=security.sasl_password,
                                     ssl_context=context, mechanism=security.sasl_mechanism)
    return faust.SSLCredentials(context)


def _explain(security: KafkaSecurity, where: str, exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    if security.sasl_password:
        text = text.replace(security.sasl_password, "***")
    low = text.lower()
    if isinstance(exc, ssl.SSLCertVerificationError) or "certificate verify failed" in low:
        return (f"Kafka at {where}: the broker's TLS certificate is not trusted ({exc.args[-1] if exc.args else exc}): "
                f"set {security.name('ssl_cafile')} to the CA that signed it, or renew an expired certificate")
    if isinstance(exc, ssl.SSLError) or "wrong version number" in low or "record layer failure" in low:
        return (f"Kafka at {where}: the TLS handshake failed ({text}): check "
                f"{security.name('protocol')}={security.protocol} against the listener at that port")
    if "mechanism" in low and ("unsupported" in low or "not enabled" in low or "enabled mechanisms" in low):
        return (f"Kafka at {where}: the broker does not offer SASL mechanism {security.sasl_mechanism}: "
                f"change {security.name('sasl_mechanism')} ({text})")
    if "authentication" in low or "sasl" in low:
        return (f"Kafka at {where} refused the SASL login of {security.sasl_username!r}: check "
                f"{security.name('sasl_username')} and {security.name('sasl_password')}")
    return f"Kafka at {where}: {text} (security: {security.describe()}; check {security.name('protocol')})"


async def check_kafka(bootstrap: Sequence[str], security: KafkaSecurity | None, timeout: float = 15.0) -> None:
    """Log in to the first answering bootstrap server once; raise SettingsError with one line
    naming the setting to fix when the credentials or certificates are refused.

    aiokafka's own clients swallow the cause into "Unable to bootstrap" and Faust retries it
    forever, so this connects with aiokafka's connection class directly. An unreachable cluster is
    not an error here (the clients wait for it as they always did); a connection the broker
    closes during the handshake (a protocol that does not match the listener) is, when it
    happens three times in a row.
    """
    from aiokafka.conn import create_conn
    from aiokafka.errors import KafkaConnectionError

    security = security or PLAINTEXT
    kwargs = client_kwargs(security)
    refused: str | None = None
    for server in bootstrap:
        host, _, port = server.rpartition(":")
        for attempt in range(3):
            try:
                conn = await asyncio.wait_for(create_conn(host, int(port), request_timeout_ms=int(timeout * 1000),
                                                          **kwargs), timeout)
            except KafkaConnectionError as exc:
                refused = _explain(security, server, exc)
                await asyncio.sleep(0.5 * (attempt + 1))
                continue
            except (OSError, asyncio.TimeoutError) as exc:
                cause = exc if isinstance(exc, ssl.SSLError) else exc.__cause__ or exc.__context__
                if isinstance(cause, ssl.SSLError):
                    refused = _explain(security, server, cause)
                break  # not reachable now: the clients keep trying
            except Exception as exc:  # SASL and TLS failures come in several classes
                refused = _explain(security, server, exc)
                break
            conn.close()
            return
    if refused:
        raise SettingsError(refused)

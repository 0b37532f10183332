"""Kafka cluster ids for the development broker's format step."""

from __future__ import annotations

import uuid

import pytest

from atlas_stream.devkafka import cluster


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    # 0xf8 encodes to "-" in URL-safe base64: the storage tool took such an id for an option.
    draws = iter([uuid.UUID(bytes=b"\xf8" + b"\x01" * 15), uuid.UUID(bytes=b"\x10" * 16)])
    monkeypatch.setattr(cluster.uuid, "uuid4", lambda: next(draws))
    made = cluster._new_cluster_id()
    assert made == "EBAQEBAQEBAQEBAQEBAQEA" and len(made) == 22

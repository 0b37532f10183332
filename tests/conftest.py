"""Fixtures shared by tests/unit and tests/integration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .batch_samples import ROOT


@pytest.fixture
def fs_batch_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ATLAS_* cleared; the sample contracts of metadata/, an empty landing/transactions folder and
    a lake under ``tmp_path`` (returned)."""
    for key in list(os.environ):
        if key.startswith("ATLAS_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ATLAS_LANDING_DIR", str(tmp_path / "landing"))
    monkeypatch.setenv("ATLAS_LAKE_URI", str(tmp_path / "lake"))
    monkeypatch.setenv("ATLAS_METADATA_DIR", str(ROOT / "metadata"))
    (tmp_path / "landing" / "transactions").mkdir(parents=True)
    return tmp_path

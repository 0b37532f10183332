"""Fixtures of the source unit tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from atlas_stream.contracts import load_contract
from atlas_stream.model import Contract

#: The features of the ``orders`` table the database contracts read.
DB_FEATURES = [{"name": "id", "dtype": "bigint", "required": True}, {"name": "note", "dtype": "string"},
               {"name": "updated_at", "dtype": "timestamp"}]


@pytest.fixture
def db_contract(tmp_path: Path) -> Callable[..., Contract]:
    """Builds a database-source contract of one ``orders`` dataset: written to a real file and
    loaded by the real loader (``source`` adds to the dataset's source, ``env`` fills placeholders)."""
    def make(source_config: dict[str, Any], source: dict[str, Any] | None = None,
             env: dict[str, str] | None = None, key: str | None = "order_id") -> Contract:
        src: dict[str, Any] = {"name": "orders", "path": "orders", "features": DB_FEATURES, **(source or {})}
        if key:
            src["key"] = key
        renames = [{"type": "rename", "from": "id", "to": "order_id"}] \
            if any(f["name"] == "id" for f in src["features"]) else []
        doc = {"ocs_group_name": "shop", "source_type": "rdbms", "source_config": source_config,
               "dataset_config": [{"source": src, "transformations": renames, "destination": {"path": "shop/orders"}}]}
        path = tmp_path / "shop.json"
        path.write_text(json.dumps(doc))
        return load_contract(path, env or {})
    return make

"""Builders shared by the unit tests: model features and sample values. Plain functions rather than
fixtures, because tests call them at import time and inside ``parametrize`` lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from atlas_stream.model import Feature, parse_dtype
from atlas_stream.samples import SampleGenerator


def feat(name: str, dtype: str = "string", **kw: Any) -> Feature:
    """A contract feature of ``dtype`` (as a contract writes it) with constraints ``kw``."""
    return Feature(name, parse_dtype(dtype), **kw)


def sample_values(gen: SampleGenerator, n: int, when: datetime) -> list[Any]:
    """The first ``n`` sample values that are valid JSON (objects or not)."""
    out: list[Any] = []
    while len(out) < n:
        value, _ = gen.raw(when)
        try:
            out.append(orjson.loads(value))
        except orjson.JSONDecodeError:
            continue
    return out

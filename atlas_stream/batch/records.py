"""Rows that arrive as Python records (JSON lines, the per-batch fallback of readers) -> columns."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pyarrow as pa

from .arrow_values import Col, from_python

__all__ = ["columns_from_records"]

_ABSENT: Any = object()


def columns_from_records(records: Sequence[Mapping[str, Any]]) -> dict[str, Col]:
    """One column per key seen in ``records`` (first-seen order), with a presence mask for keys
    some records lack. Values are typed Arrow arrays when a column holds one JSON kind."""
    names: dict[str, None] = {}
    for rec in records:
        for key in rec:
            if key not in names:
                names[key] = None
    out: dict[str, Col] = {}
    for name in names:
        raw = [rec.get(name, _ABSENT) for rec in records]
        absent = [v is _ABSENT for v in raw]
        if not any(absent):
            out[name] = Col(from_python(raw))
        else:
            present = pa.array([not a for a in absent], pa.bool_())
            out[name] = Col(from_python([None if v is _ABSENT else v for v in raw]), present)
    return out

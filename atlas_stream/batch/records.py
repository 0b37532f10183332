"""Rows that arrive as Python records (JSON lines, the per-batch fallback of readers) -> columns."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pyarrow as pa

from .arrow_values import Col, from_python

__all__ = ["columns_from_records", "records_from_columns"]

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


def records_from_columns(cols: Mapping[str, Col], n: int) -> list[dict[str, Any]]:
    """The rows of a batch as records (a key a row lacks is left out): what ``--to-kafka``
    publishes, one JSON object per row."""
    names = list(cols)
    values = [col.values if isinstance(col.values, list) else col.values.to_pylist() for col in cols.values()]
    present = [col.present.to_pylist() if col.present is not None else None for col in cols.values()]
    if all(p is None for p in present):
        return [dict(zip(names, row)) for row in zip(*values)] if names else [{} for _ in range(n)]
    out: list[dict[str, Any]] = []
    for i in range(n):
        out.append({name: vals[i] for name, vals, here in zip(names, values, present) if here is None or here[i]})
    return out

"""A window of tier messages (JSON bytes) -> Arrow columns of the lake schema, decoded at once.

The fast path hands the whole window to pyarrow's JSON reader with an explicit schema (the
dataset's features, typed as the tier message carries them) and casts columns with
``pyarrow.compute``. When the reader cannot take the window (a value that is not JSON, a value
not in the tier message's canonical form, messages of several schema versions), the window is
decoded message by message with orjson: slower, with the same result (tests/unit/sinks/test_parquet.py).
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from ..dtypes import CoercionError, coerce
from ..model import Feature

__all__ = ["Window", "decode_window", "replays", "rows_to_table", "tier_message"]

log = logging.getLogger(__name__)

#: How the tier message carries each dtype (``record`` holds coerced values: dates, timestamps
#: and decimals as strings, cast here exactly as the per-message path casts them).
_JSON_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(), "bigint": pa.int64(), "float": pa.float64(), "double": pa.float64(),
    "string": pa.string(), "bool": pa.bool_(),
}
_QUALITY = pa.struct([("tier", pa.string()), ("score", pa.float64()), ("failures", pa.list_(pa.string()))])
_SOURCE = pa.struct([("topic", pa.string()), ("partition", pa.int64()), ("offset", pa.int64()),
                     ("timestamp", pa.float64())])
_NO_FAILURES = pa.scalar([], pa.list_(pa.string()))

FeaturesOf = Callable[["int | None"], Sequence[Feature]]


@dataclass
class Window:
    """The tier messages of one window, in offset order.

    ``positions`` are their indices in the window (the other messages were not tier messages);
    ``raw_key``/``raw_offset``/``raw_ts`` identify each one's raw record; ``dates`` and
    ``versions`` are what decides its file (ingest date, schema version). The columns are Arrow
    arrays on the fast path and lists on the per-message path.
    """

    positions: list[int]
    raw_key: Any
    raw_offset: Any
    raw_ts: Any
    dates: Any
    versions: Any
    ingested_at: Any
    parsed: pa.Table | None = None  # fast path: the reader's table of the tier messages
    messages: list[dict[str, Any]] | None = None  # per-message path

    def guard_columns(self, a: int, b: int) -> tuple[Any, Any, Any]:
        """``raw_key``, ``raw_offset`` and ``raw_ts`` of the tier messages ``a..b-1``."""
        if isinstance(self.raw_key, pa.Array):
            return self.raw_key.slice(a, b - a), self.raw_offset.slice(a, b - a), self.raw_ts.slice(a, b - a)
        return self.raw_key[a:b], self.raw_offset[a:b], self.raw_ts[a:b]

    def lake_table(self, rows: Sequence[int], features: Sequence[Feature], schema: pa.Schema) -> pa.Table:
        """Lake columns of the tier messages at ``rows`` (indices into ``positions``)."""
        if self.messages is not None:
            return rows_to_table([self.messages[i] for i in rows], features, schema)
        assert self.parsed is not None
        part = self.parsed if len(rows) == self.parsed.num_rows else self.parsed.take(pa.array(rows, pa.int64()))
        return _lake_columns(part, features, schema)


def decode_window(values: Sequence[bytes], features_of: FeaturesOf) -> Window:
    """Decode ``values`` (tier-topic message values); ``features_of(version)`` gives the lake
    features of a schema version."""
    first = _first_message(values)
    if first is not None:
        version = (first.get("schema") or {}).get("version")
        features = features_of(version)
        window = _fast(values, features, version)
        if window is not None:
            return window
    return _slow(values)


def _first_message(values: Sequence[bytes]) -> dict[str, Any] | None:
    for v in values:
        doc = tier_message(v)
        if doc is not None:
            return doc
    return None


def _fast(values: Sequence[bytes], features: Sequence[Feature], version: int | None) -> Window | None:
    buf = b"\n".join(values)
    # One JSON document a line: a value with a newline of its own, or an empty one, would shift rows.
    if buf.count(b"\n") != len(values) - 1 or not all(values):
        return None
    record = pa.struct([(f.name, _JSON_TYPES.get(f.dtype.name, pa.string())) for f in features])
    schema = pa.schema([("record", record), ("quality", _QUALITY), ("source", _SOURCE),
                        ("schema", pa.struct([("version", pa.int64())])), ("ingested_at", pa.string())])
    try:
        table = pj.read_json(io.BytesIO(buf), read_options=pj.ReadOptions(block_size=max(1 << 20, len(buf) // 2 + 1)),
                             parse_options=pj.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows != len(values):
        return None
    table = table.combine_chunks()
    quality, source = table.column("quality").chunk(0), table.column("source").chunk(0)
    ok = pc.is_valid(quality)
    for col in (quality.field("tier"), source.field("topic"), source.field("partition"), source.field("offset")):
        ok = pc.and_(ok, pc.is_valid(col))
    ok = pc.and_(ok, pc.is_valid(source))
    if pc.all(ok).as_py():
        positions = list(range(len(values)))
    else:
        positions = pc.indices_nonzero(ok).to_pylist()
        table = table.take(pa.array(positions, pa.int64()))
    if not table.num_rows:
        return None
    versions = pc.struct_field(table.column("schema").chunk(0), "version")
    if pc.count_distinct(versions, mode="all").as_py() != 1 or versions[0].as_py() != version:
        return None  # several schema versions in one window: each file needs its own features
    source = table.column("source").chunk(0)
    ingested = table.column("ingested_at").chunk(0)
    return Window(
        positions=positions,
        raw_key=pc.binary_join_element_wise(pc.struct_field(source, "topic"),
                                            pc.cast(pc.struct_field(source, "partition"), pa.string()), "|"),
        raw_offset=pc.struct_field(source, "offset"),
        raw_ts=pc.fill_null(pc.struct_field(source, "timestamp"), 0.0),
        dates=pc.fill_null(pc.utf8_slice_codeunits(ingested, 0, 10), ""),
        versions=pa.array([version] * table.num_rows, pa.int64()),
        ingested_at=ingested,
        parsed=table,
    )


def _slow(values: Sequence[bytes]) -> Window:
    positions: list[int] = []
    messages: list[dict[str, Any]] = []
    for i, v in enumerate(values):
        doc = tier_message(v)
        if doc is not None:
            positions.append(i)
            messages.append(doc)
    src = [m["source"] for m in messages]
    return Window(
        positions=positions,
        raw_key=[f"{s['topic']}|{s['partition']}" for s in src],
        raw_offset=[s["offset"] for s in src],
        raw_ts=[float(s.get("timestamp") or 0) for s in src],
        dates=[str(m.get("ingested_at") or "")[:10] for m in messages],
        versions=[(m.get("schema") or {}).get("version") for m in messages],
        ingested_at=[m.get("ingested_at") for m in messages],
        messages=messages,
    )


def tier_message(value: bytes | None) -> dict[str, Any] | None:
    """The tier message in ``value``, or None when it is not one."""
    try:
        doc = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict):
        return None
    q, s = doc.get("quality"), doc.get("source")
    if not (isinstance(q, dict) and isinstance(s, dict) and q.get("tier") is not None):
        return None
    if s.get("topic") is None or s.get("partition") is None or s.get("offset") is None:
        return None
    return doc


def replays(guard: dict[str, list[float]], keys: Any, offsets: Any, ts: Any) -> list[bool] | None:
    """Which records were already written (the scoring agent emitted them twice), updating
    ``guard`` ("<raw topic>|<partition>" -> [highest raw offset, newest timestamp]).

    None means none was: the common case, decided on Arrow columns. Otherwise the records are
    walked one by one: a raw offset at or below the guard's is a replay unless its timestamp is
    newer (a recreated raw topic, whose records are written and reset the guard).
    """
    if isinstance(keys, pa.Array):
        fast = _no_replays(guard, keys, offsets, ts)
        if fast is not None:
            guard.update(fast)
            return None
        keys, offsets, ts = keys.to_pylist(), offsets.to_pylist(), ts.to_pylist()
    out: list[bool] = []
    for key, offset, t in zip(keys, offsets, ts):
        seen = guard.get(key)
        if seen is not None and offset <= seen[0]:
            if t <= seen[1]:
                out.append(True)
                continue
            log.warning("raw offsets of %s start again (offset %d after %d, newer timestamp): a recreated "
                        "raw topic; its records are written", key, offset, seen[0])
        guard[key] = [offset, max(t, seen[1]) if seen and offset > seen[0] else t]
        out.append(False)
    return out if any(out) else None


def _no_replays(guard: dict[str, list[float]], keys: pa.Array, offsets: pa.Array,
                ts: pa.Array) -> dict[str, list[float]] | None:
    """The guard's new entries when every raw partition's offsets rise past the guard, else None."""
    updates: dict[str, list[float]] = {}
    for key in pc.unique(keys).to_pylist():
        mask = pc.equal(keys, key)
        off, t = offsets.filter(mask), ts.filter(mask)
        if len(off) > 1 and not pc.all(pc.greater(off.slice(1), off.slice(0, len(off) - 1))).as_py():
            return None
        seen = guard.get(key)
        first = off[0].as_py()
        if seen is not None and first <= seen[0]:
            return None
        newest = pc.max(t).as_py()
        updates[key] = [off[len(off) - 1].as_py(), max(newest, seen[1]) if seen else newest]
    return updates


def _lake_columns(parsed: pa.Table, features: Sequence[Feature], schema: pa.Schema) -> pa.Table:
    record = parsed.column("record").combine_chunks()
    children = dict(zip((f.name for f in record.type), record.flatten()))  # parent nulls folded in
    cols: list[pa.Array] = []
    for f in features:
        typ = schema.field(f.name).type
        col = children.get(f.name)
        if col is None:
            cols.append(pa.nulls(parsed.num_rows, typ))
        elif col.type == typ:
            cols.append(col)
        else:
            try:
                cols.append(pc.cast(col, typ))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                cols.append(_column(col.to_pylist(), f, typ))
    quality, source = parsed.column("quality").combine_chunks(), parsed.column("source").combine_chunks()
    cols.append(pc.struct_field(quality, "tier"))
    cols.append(pc.struct_field(quality, "score"))
    cols.append(pc.fill_null(pc.struct_field(quality, "failures"), _NO_FAILURES))
    cols.append(pc.cast(parsed.column("ingested_at").combine_chunks(), pa.timestamp("us", tz="UTC")))
    cols.append(pc.struct_field(source, "topic"))
    cols.append(pc.cast(pc.struct_field(source, "partition"), pa.int32()))
    cols.append(pc.struct_field(source, "offset"))
    return pa.Table.from_arrays(cols, schema=schema)


def _column(values: list[Any], feature: Feature, typ: pa.DataType) -> pa.Array:
    name = feature.dtype.name
    try:
        if name in ("date", "timestamp", "decimal"):
            return pc.cast(pa.array([None if v is None else str(v) for v in values], pa.string()), typ)
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    # Slow path, only when a value is not in the tier message's canonical form.
    out = []
    for v in values:
        try:
            out.append(None if v is None else coerce(v, feature.dtype))
        except CoercionError:
            out.append(None)
    return pa.array(out, typ)


def rows_to_table(messages: Sequence[dict[str, Any]], features: Sequence[Feature], schema: pa.Schema) -> pa.Table:
    """Tier messages (decoded) -> an Arrow table of the lake schema, message by message."""
    records = [m.get("record") or {} for m in messages]
    cols: list[pa.Array] = []
    for f in features:
        cols.append(_column([r.get(f.name) for r in records], f, schema.field(f.name).type))
    quality = [m["quality"] for m in messages]
    source = [m["source"] for m in messages]
    cols.append(pa.array([q["tier"] for q in quality], pa.string()))
    cols.append(pa.array([q.get("score") for q in quality], pa.float64()))
    cols.append(pa.array([list(q.get("failures") or ()) for q in quality], pa.list_(pa.string())))
    cols.append(pc.cast(pa.array([m.get("ingested_at") for m in messages], pa.string()), pa.timestamp("us", tz="UTC")))
    cols.append(pa.array([s["topic"] for s in source], pa.string()))
    cols.append(pa.array([s["partition"] for s in source], pa.int32()))
    cols.append(pa.array([s["offset"] for s in source], pa.int64()))
    return pa.Table.from_arrays(cols, schema=schema)

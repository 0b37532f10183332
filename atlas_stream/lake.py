"""The lake's fixed layout: folders, committed file names, and each dataset's Arrow schema.

Shared by the stream's Parquet sink and the batch adapters, so both write the same lake::

    <ATLAS_LAKE_URI>/<destination.path>/tier=<tier>/ingest_date=<YYYY-MM-DD>/
        <topic>+<partition>+<startOffset>+<endOffset>.parquet

Columns: the dataset's features (after ``destination.features`` projection) with the Arrow type
of their dtype, then the lake columns below. ``int`` and ``float`` are 64-bit because the quality
checks accept the 64-bit range for them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import pyarrow as pa

from .model import Dataset, DType, Feature

__all__ = [
    "LAKE_COLUMNS",
    "CommittedFile",
    "arrow_type",
    "committed_name",
    "dataset_features",
    "lake_schema",
    "parse_committed_name",
    "partition_dir",
    "tier_dir",
]

#: Offsets in committed names are zero-padded to this width (every int64 fits), so names sort.
OFFSET_WIDTH = 19

#: The columns every lake file has after the features, in this order.
LAKE_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("_tier", pa.string()),
    ("_score", pa.float64()),
    ("_failures", pa.list_(pa.string())),
    ("_ingested_at", pa.timestamp("us", tz="UTC")),
    ("_source_topic", pa.string()),
    ("_source_partition", pa.int32()),
    ("_source_offset", pa.int64()),
)

_SIMPLE_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "bigint": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_type(dtype: DType) -> pa.DataType:
    """The Arrow type a feature of ``dtype`` is stored as."""
    if dtype.name == "decimal":
        assert dtype.precision is not None and dtype.scale is not None
        return pa.decimal128(dtype.precision, dtype.scale)
    return _SIMPLE_TYPES[dtype.name]


def dataset_features(dataset: Dataset, schema: Sequence[Feature] | None = None) -> tuple[Feature, ...]:
    """The features that become columns: ``schema`` (default: the contract's) in order, narrowed
    to ``destination.features`` when the contract lists them."""
    features = tuple(schema if schema is not None else dataset.schema)
    wanted = dataset.destination.features
    if wanted is None:
        return features
    by_name = {f.name: f for f in features}
    return tuple(by_name[name] for name in wanted if name in by_name)


def lake_schema(features: Sequence[Feature], metadata: dict[str, str] | None = None) -> pa.Schema:
    """Arrow schema of a lake file: the features, then LAKE_COLUMNS."""
    fields = [pa.field(f.name, arrow_type(f.dtype)) for f in features]
    fields += [pa.field(name, typ, nullable=name not in ("_tier", "_source_topic")) for name, typ in LAKE_COLUMNS]
    return pa.schema(fields, metadata=metadata)


def tier_dir(destination_path: str, tier: str) -> str:
    """``<destination.path>/tier=<tier>``, relative to the lake root (no leading or trailing /)."""
    return f"{destination_path.strip('/')}/tier={tier}"


def partition_dir(destination_path: str, tier: str, ingest_date: str) -> str:
    """``<destination.path>/tier=<tier>/ingest_date=<YYYY-MM-DD>``, relative to the lake root."""
    return f"{tier_dir(destination_path, tier)}/ingest_date={ingest_date}"


@dataclass(frozen=True)
class CommittedFile:
    """What a committed file's name says: the topic partition and the offsets it holds.

    ``series`` counts restarts of the topic's offsets (a recreated topic): series 0 files are
    named exactly ``<topic>+<partition>+<start>+<end>.parquet``; later series add ``.s<N>``
    before the extension so that they never overwrite an earlier series' files.
    """

    topic: str
    partition: int
    start: int
    end: int
    series: int = 0

    @property
    def name(self) -> str:
        return committed_name(self.topic, self.partition, self.start, self.end, self.series)


def committed_name(topic: str, partition: int, start: int, end: int, series: int = 0) -> str:
    """``<topic>+<partition>+<start>+<end>.parquet`` with zero-padded offsets (inclusive range)."""
    suffix = f".s{series}" if series else ""
    return f"{topic}+{partition}+{start:0{OFFSET_WIDTH}d}+{end:0{OFFSET_WIDTH}d}{suffix}.parquet"


_COMMITTED = re.compile(r"^(?P<topic>.+)\+(?P<partition>\d+)\+(?P<start>\d+)\+(?P<end>\d+)(?:\.s(?P<series>\d+))?\.parquet$")


def parse_committed_name(name: str) -> CommittedFile | None:
    """The CommittedFile a base name describes, or None for any other file."""
    m = _COMMITTED.match(name)
    if not m:
        return None
    return CommittedFile(m["topic"], int(m["partition"]), int(m["start"]), int(m["end"]), int(m["series"] or 0))

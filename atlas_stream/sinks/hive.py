"""Hive DDL for a dataset's lake folder: an external Parquet table partitioned like the lake
(``tier=<tier>/ingest_date=<YYYY-MM-DD>``), and the ``MSCK REPAIR TABLE`` that finds partitions."""

from __future__ import annotations

import re

import pyarrow as pa

from ..errors import ConfigError
from ..lake import LAKE_COLUMNS, arrow_type, dataset_features
from ..model import Dataset

__all__ = ["PARTITION_COLUMNS", "hive_ddl", "hive_type", "table_name"]

#: The lake's partition folders, as Hive partition columns.
PARTITION_COLUMNS: tuple[tuple[str, str], ...] = (("tier", "STRING"), ("ingest_date", "STRING"))


def hive_type(typ: pa.DataType) -> str:
    """Hive type of an Arrow type used in lake files."""
    if pa.types.is_int64(typ):
        return "BIGINT"
    if pa.types.is_int32(typ):
        return "INT"
    if pa.types.is_float64(typ):
        return "DOUBLE"
    if pa.types.is_string(typ):
        return "STRING"
    if pa.types.is_boolean(typ):
        return "BOOLEAN"
    if pa.types.is_date32(typ):
        return "DATE"
    if pa.types.is_timestamp(typ):
        return "TIMESTAMP"
    if pa.types.is_decimal(typ):
        return f"DECIMAL({typ.precision},{typ.scale})"
    if pa.types.is_list(typ):
        return f"ARRAY<{hive_type(typ.value_type)}>"
    raise ValueError(f"no Hive type for Arrow type {typ}")


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def table_name(dataset: Dataset) -> str:
    """``<group>_<dataset>``, lower case, with any character Hive does not allow unquoted as ``_``."""
    return re.sub(r"[^a-z0-9_]", "_", f"{dataset.group}_{dataset.name}".lower())


def hive_ddl(dataset: Dataset, lake_uri: str, database: str | None = None) -> str:
    """``CREATE EXTERNAL TABLE IF NOT EXISTS`` over ``<lake_uri>/<destination.path>``, then
    ``MSCK REPAIR TABLE``. Columns: the features, then the lake columns (``_tier`` included),
    as in lake.lake_schema; ``tier`` and ``ingest_date`` are the partition columns."""
    columns = [(f.name, arrow_type(f.dtype)) for f in dataset_features(dataset)] + list(LAKE_COLUMNS)
    taken = {name.lower() for name, _ in columns}
    for name, _ in PARTITION_COLUMNS:
        if name in taken:
            raise ConfigError(f"dataset {dataset.subject}: feature {name!r} has the name of a lake partition "
                              "folder; rename it (a `rename` transformation) to query the lake with Hive")
    table = _quote(table_name(dataset))
    if database:
        table = f"{_quote(database)}.{table}"
    location = f"{lake_uri.rstrip('/')}/{dataset.destination.path.strip('/')}".replace("'", "\\'")
    body = ",\n".join(f"  {_quote(name)} {hive_type(typ)}" for name, typ in columns)
    partitions = ", ".join(f"{_quote(name)} {typ}" for name, typ in PARTITION_COLUMNS)
    return (
        f"CREATE EXTERNAL TABLE IF NOT EXISTS {table} (\n{body}\n)\n"
        f"PARTITIONED BY ({partitions})\n"
        "STORED AS PARQUET\n"
        f"LOCATION '{location}';\n"
        f"MSCK REPAIR TABLE {table};\n"
    )

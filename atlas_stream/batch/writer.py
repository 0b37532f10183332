"""Lake output of a batch run, through the stream's lake layer (:mod:`atlas_stream.sinks.lakefs`:
file://, s3://, hdfs://, webhdfs://): temporary files, committed by rename at the end, replacing
the previous output of the same input.

Files land in the stream's layout, ``<destination.path>/tier=<tier>/ingest_date=<date>/``,
named ``batch-<dataset>-<input id>-<run id>-<part>.parquet`` (``<part>`` is ``0`` for the arrow
engine, the Spark partition for the spark engine). The name holds no ``+``, so it can never be
taken for a stream file (``<topic>+<partition>+<start>+<end>.parquet``, see
lake.parse_committed_name), and the stream's files are never touched. ``<input id>`` hashes the
group, the dataset and its source (path pattern or table): a second run on the same input deletes
the files of earlier runs with the same id once its own files are committed, so rows are never
duplicated. While a run writes, its files carry the lake's temporary name
(``_tmp.<name>.<random>.tmp``, :func:`~atlas_stream.sinks.lakefs.temp_name`, the sinks'
convention): a failed run removes them and leaves the previous output as it was.

Steps of a commit, in order: close every temporary file; rename each to its final name (undone
if one rename fails); delete the earlier runs' files of the same input and any temporary file of
this input left behind (a killed run, a failed Spark task attempt).
"""

from __future__ import annotations

import hashlib
import posixpath
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import LakeUnavailable
from ..lake import dataset_features, partition_dir
from ..model import Dataset
from ..sinks.lakefs import TMP_PREFIX, TMP_SUFFIX, Lake, temp_name

__all__ = ["LakeError", "LakeWriter", "Staged", "abort_run", "commit_run", "input_id"]

#: Rows buffered per tier before a row group is written.
ROW_GROUP_ROWS = 128 * 1024


#: Lake columns with few distinct values per file: dictionary-encoded.
_FEW_VALUES = ("_tier", "_failures", "_ingested_at", "_source_topic", "_source_partition")


def dictionary_columns(dataset: Dataset) -> list[str]:
    """Columns worth Parquet's dictionary encoding: the lake's repeated columns and features
    with ``allowed`` values, bool or date. Identifiers, amounts, times and free text are written
    plain: trying a dictionary on them first (pyarrow's default) took a third of the write time."""
    few = [f.name for f in dataset_features(dataset) if f.allowed or f.dtype.name in ("bool", "date")]
    return few + list(_FEW_VALUES)


class LakeError(LakeUnavailable):
    """The lake cannot be written (permission, missing bucket, full disk, ...)."""


def input_id(dataset: Dataset, source: str) -> str:
    """12 hex digits naming a dataset's input: the same input gives the same id in every run."""
    return hashlib.sha256(f"{dataset.group}\0{dataset.name}\0{source}".encode()).hexdigest()[:12]


def file_prefix(dataset: Dataset, source: str) -> str:
    """The start of every batch file name of this input (``batch-<dataset>-<input id>-``)."""
    return f"batch-{dataset.name}-{input_id(dataset, source)}-"


@dataclass(frozen=True)
class Staged:
    """A finished temporary file and the name it is committed under (both relative to the lake root)."""

    tier: str
    temp: str
    final: str
    rows: int


@dataclass
class _Part:
    tier: str
    temp: str
    final: str
    writer: pq.ParquetWriter
    stream: Any
    pending: list[pa.Table]
    rows: int = 0
    buffered: int = 0


class LakeWriter:
    """Writes one dataset's scored rows for one run (or one Spark task of it). ``close()`` finishes
    the temporary files, ``commit()`` also publishes them, ``abort()`` undoes."""

    def __init__(self, lake: Lake, dataset: Dataset, schema: pa.Schema, source: str, run_id: str,
                 ingest_date: str, part: str = "0") -> None:
        self.lake = lake
        self.dataset = dataset
        self.schema = schema
        self.ingest_date = ingest_date
        self.prefix = file_prefix(dataset, source)
        self.run_id = run_id
        self.part = part
        self.base = dataset.destination.path.strip("/")
        self.parts: dict[str, _Part] = {}

    def check(self) -> None:
        """Fail now, before any input is read, when the lake cannot be written."""
        probe = f"{self.base}/{temp_name('batch-probe')}"
        try:
            self.lake.check()
            with self.lake.open_output(probe) as out:
                out.write(b"")
            self.lake.delete(probe)
        except (LakeUnavailable, OSError) as exc:
            raise LakeError(f"cannot write to the lake at {self.lake.full(self.base)}: {_reason(exc)}") from None

    def write(self, tier: str, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        part = self.parts.get(tier)
        if part is None:
            part = self.parts[tier] = self._open(tier)
        part.pending.append(table)
        part.buffered += table.num_rows
        if part.buffered >= ROW_GROUP_ROWS:
            self._flush(part)

    def _open(self, tier: str) -> _Part:
        folder = partition_dir(self.dataset.destination.path, tier, self.ingest_date)
        name = f"{self.prefix}{self.run_id}-{self.part}.parquet"
        temp = f"{folder}/{temp_name(name)}"
        try:
            stream = self.lake.open_output(temp)
            writer = pq.ParquetWriter(stream, self.schema, compression="snappy",
                                      use_dictionary=dictionary_columns(self.dataset))
        except (LakeUnavailable, OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot write {self.lake.full(temp)}: {_reason(exc)}") from None
        return _Part(tier, temp, f"{folder}/{name}", writer, stream, [])

    def _flush(self, part: _Part) -> None:
        if not part.pending:
            return
        table = pa.concat_tables(part.pending) if len(part.pending) > 1 else part.pending[0]
        try:
            part.writer.write_table(table, row_group_size=max(1, table.num_rows))
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot write {self.lake.full(part.temp)}: {_reason(exc)}") from None
        part.rows += table.num_rows
        part.pending = []
        part.buffered = 0

    def close(self) -> list[Staged]:
        """Finish every temporary file; they are not visible to readers until committed."""
        try:
            for part in self.parts.values():
                self._flush(part)
                part.writer.close()
                part.stream.close()
        except (OSError, pa.ArrowException) as exc:
            self.abort()
            raise LakeError(f"cannot finish writing to {self.lake.full(self.base)}: {_reason(exc)}") from None
        return [Staged(p.tier, p.temp, p.final, p.rows) for p in self.parts.values()]

    def commit(self) -> list[str]:
        """close(), then :func:`commit_run`. Returns the committed paths."""
        return commit_run(self.lake, self.base, self.prefix, self.close())

    def abort(self) -> None:
        """Remove this writer's temporary files (nothing it committed stays either)."""
        for part in self.parts.values():
            _quiet(part.writer.close)
            _quiet(part.stream.close)
            _quiet(self.lake.delete, part.temp)
        self.parts = {}


def commit_run(lake: Lake, base: str, prefix: str, staged: list[Staged]) -> list[str]:
    """Rename every staged file to its final name, then delete the files of earlier runs of the
    same input (``prefix``) and every temporary file of it. Returns the committed paths (full)."""
    done: list[str] = []
    try:
        for item in staged:
            lake.move(item.temp, item.final)
            done.append(item.final)
    except (LakeUnavailable, OSError) as exc:
        for rel in done:  # undo: the earlier output stays the only one
            _quiet(lake.delete, rel)
        for item in staged:
            _quiet(lake.delete, item.temp)
        raise LakeError(f"cannot commit the output in {lake.full(base)}: {_reason(exc)}") from None
    keep = set(done)
    for entry in _ours(lake, base, prefix, temps=True, finals=True):
        if entry not in keep:
            lake.delete(entry)
    return [lake.full(rel) for rel in done]


def abort_run(lake: Lake, base: str, prefix: str, run_id: str) -> None:
    """Delete every temporary file of run ``run_id`` (what failed Spark tasks left behind)."""
    mark = f"{TMP_PREFIX}{prefix}{run_id}-"
    for rel in _ours(lake, base, prefix, temps=True, finals=False):
        if posixpath.basename(rel).startswith(mark):
            _quiet(lake.delete, rel)


def _ours(lake: Lake, base: str, prefix: str, *, temps: bool, finals: bool) -> list[str]:
    try:
        entries = lake.list_files(base)
    except LakeUnavailable as exc:
        raise LakeError(f"cannot list {lake.full(base)} to replace the previous output: {_reason(exc)}") from None
    out = []
    for entry in entries:
        name = posixpath.basename(entry.path)
        final = name.startswith(prefix) and name.endswith(".parquet")
        temp = name.startswith(TMP_PREFIX + prefix) and name.endswith(TMP_SUFFIX)
        if (final and finals) or (temp and temps):
            out.append(entry.path)
    return out


def _quiet(fn: Any, *args: Any) -> None:
    try:
        fn(*args)
    except Exception:  # cleaning up after a failure: the first error is the one to report
        pass


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, PermissionError) or "Permission denied" in text or "permission denied" in text:
        return f"permission denied ({text})"
    return text

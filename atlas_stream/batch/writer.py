"""Lake output of a batch run: temporary files, committed by rename at the end, replacing the
previous output of the same input.

Files land in the stream's layout, ``<destination.path>/tier=<tier>/ingest_date=<date>/``,
named ``batch-<dataset>-<input id>-<run id>-<n>.parquet``. The name holds no ``+``, so it can
never be taken for a stream file (``<topic>+<partition>+<start>+<end>.parquet``, see
lake.parse_committed_name), and the stream's files are never touched. ``<input id>`` hashes
the group, the dataset and its source (path pattern or table): a second run on the same input
deletes the files of earlier runs with the same id once its own files are committed, so rows
are never duplicated. While a run writes, its files are ``.batch-...parquet.tmp`` (hidden, and
not ``*.parquet``): a failed run removes them and leaves the previous output as it was.
"""

from __future__ import annotations

import hashlib
import posixpath
import uuid
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ..errors import AtlasError
from ..lake import partition_dir
from ..model import Dataset

__all__ = ["LakeError", "LakeWriter", "input_id"]

#: Rows buffered per tier before a row group is written.
ROW_GROUP_ROWS = 128 * 1024


class LakeError(AtlasError):
    """The lake cannot be written (permission, missing bucket, full disk, ...)."""


def input_id(dataset: Dataset, source: str) -> str:
    """12 hex digits naming a dataset's input: the same input gives the same id in every run."""
    return hashlib.sha256(f"{dataset.group}\0{dataset.name}\0{source}".encode()).hexdigest()[:12]


def _fs(lake_uri: str) -> tuple[pafs.FileSystem, str]:
    try:
        fs, root = pafs.FileSystem.from_uri(lake_uri)
    except (pa.ArrowInvalid, OSError) as exc:
        raise LakeError(f"lake {lake_uri}: {exc}") from None
    return fs, root.rstrip("/")


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
    """Writes one dataset's scored rows for one run. ``commit()`` publishes, ``abort()`` undoes."""

    def __init__(self, lake_uri: str, dataset: Dataset, schema: pa.Schema, source: str, run_id: str,
                 ingest_date: str) -> None:
        self.fs, self.root = _fs(lake_uri)
        self.lake_uri = lake_uri
        self.dataset = dataset
        self.schema = schema
        self.ingest_date = ingest_date
        self.prefix = f"batch-{dataset.name}-{input_id(dataset, source)}-"
        self.run_id = run_id
        self.base = f"{self.root}/{dataset.destination.path.strip('/')}"
        self.parts: dict[str, _Part] = {}
        self.committed: list[str] = []

    def check(self) -> None:
        """Fail now, before any input is read, when the lake cannot be written."""
        probe = f"{self.base}/.batch-probe-{uuid.uuid4().hex}.tmp"
        try:
            self.fs.create_dir(self.base, recursive=True)
            with self.fs.open_output_stream(probe) as out:
                out.write(b"")
            self.fs.delete_file(probe)
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot write to the lake at {self.base}: {_reason(exc)}") from None

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
        folder = f"{self.root}/{partition_dir(self.dataset.destination.path, tier, self.ingest_date)}"
        name = f"{self.prefix}{self.run_id}-0.parquet"
        final = f"{folder}/{name}"
        temp = f"{folder}/.{name}.tmp"
        try:
            self.fs.create_dir(folder, recursive=True)
            stream = self.fs.open_output_stream(temp)
            writer = pq.ParquetWriter(stream, self.schema, compression="snappy")
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot write {temp}: {_reason(exc)}") from None
        return _Part(tier, temp, final, writer, stream, [])

    def _flush(self, part: _Part) -> None:
        if not part.pending:
            return
        table = pa.concat_tables(part.pending) if len(part.pending) > 1 else part.pending[0]
        try:
            part.writer.write_table(table, row_group_size=max(1, table.num_rows))
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot write {part.temp}: {_reason(exc)}") from None
        part.rows += table.num_rows
        part.pending = []
        part.buffered = 0

    def _close(self) -> None:
        for part in self.parts.values():
            self._flush(part)
            part.writer.close()
            part.stream.close()

    def commit(self) -> list[str]:
        """Close, rename every temporary file to its final name, then delete the files of earlier
        runs of the same input. Returns the committed paths."""
        try:
            self._close()
        except (OSError, pa.ArrowException) as exc:
            self.abort()
            raise LakeError(f"cannot finish writing to {self.base}: {_reason(exc)}") from None
        done: list[str] = []
        try:
            for part in self.parts.values():
                self.fs.move(part.temp, part.final)
                done.append(part.final)
        except (OSError, pa.ArrowException) as exc:
            for path in done:  # undo: the earlier output stays the only one
                _quiet(self.fs.delete_file, path)
            self.abort()
            raise LakeError(f"cannot commit the output in {self.base}: {_reason(exc)}") from None
        self.committed = done
        self._delete_earlier(set(done))
        return done

    def _delete_earlier(self, keep: set[str]) -> None:
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=True, allow_not_found=True))
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"cannot list {self.base} to replace the previous output: {_reason(exc)}") from None
        for info in infos:
            name = posixpath.basename(info.path)
            ours = name.startswith(self.prefix) and name.endswith(".parquet")
            # a temporary file left behind by an earlier run that was killed
            stale = name.startswith("." + self.prefix) and name.endswith(".tmp")
            if info.type == pafs.FileType.File and (ours or stale) and info.path not in keep \
                    and f"-{self.run_id}-" not in name:
                self.fs.delete_file(info.path)

    def abort(self) -> None:
        """Remove this run's temporary files (nothing it committed stays either)."""
        for part in self.parts.values():
            _quiet(part.writer.close)
            _quiet(part.stream.close)
            _quiet(self.fs.delete_file, part.temp)
        self.parts = {}


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

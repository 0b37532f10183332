"""Batch inputs: files (CSV, JSON lines, JSON, Parquet) and database tables, as column batches.

Every reader is a blocking generator of :class:`RawBatch` with memory bounded by one batch:
pyarrow's streaming CSV reader (blocks of ``CSV_BLOCK_BYTES``), ``ParquetFile.iter_batches``,
JSON lines a chunk of lines at a time, and databases through a server-side cursor read with
``fetchmany``. Values are what the stream would see once the poller wrote the row as JSON:
CSV fields are text (empty fields stay empty strings, null tokens are the scorer's business),
Parquet and database decimals and times become their JSON text.
"""

from __future__ import annotations

import csv
import glob
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import ConfigError
from ..model import Contract, Dataset
from ..settings import Settings
from ..sources.files.options import FileOptions, landing_for
from ..sources.files.readers import BOM, Bad, Resume, read_json, read_jsonl
from .arrow_values import Col, json_default, json_view
from .records import columns_from_records

__all__ = ["BatchInputError", "FileInput", "RawBatch", "find_files"]

#: pyarrow CSV block size: one batch holds about this many bytes of the file.
CSV_BLOCK_BYTES = 2 * 1024 * 1024
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")


class BatchInputError(ConfigError):
    """The input of a batch run cannot be read (missing file, unreachable database, ...)."""


@dataclass
class RawBatch:
    """Rows of one source: ``cols`` (raw values), ``n`` rows, from ``source`` (a file or a
    table) starting at row ``first``; ``done`` is the progress so far (bytes or rows)."""

    cols: dict[str, Col]
    n: int
    source: str
    first: int
    done: int
    skipped: int = 0
    problems: list[str] = field(default_factory=list)
    #: Row numbers of the rows when they are not ``first, first + 1, ...`` (bad lines skipped).
    offsets: list[int] | pa.Array | None = None


def find_files(dataset: Dataset, contract: Contract) -> list[Path]:
    """The files ``source.path`` names (a file, a folder or a glob), sorted; hidden and
    temporary files are left out, as the file poller does."""
    index = contract.datasets.index(dataset)
    landing = landing_for(dataset.path, file=contract.file, path_at=f"$.dataset_config[{index}].source.path")
    root = landing.root
    if not root.is_dir():
        raise BatchInputError(f"{dataset.subject}: {dataset.path!r}: folder {root} does not exist")
    files: list[Path] = []
    for rel in glob.glob(landing.pattern, root_dir=root, recursive=True):
        name = os.path.basename(rel)
        if name.startswith((".", "~")) or name.endswith(_TEMP_SUFFIXES):
            continue
        if (root / rel).is_file():
            files.append(root / rel)
    if not files:
        raise BatchInputError(f"{dataset.subject}: no file matches {dataset.path!r} (looked in {root} for "
                              f"{landing.pattern!r})")
    return sorted(files)


class _Counting(io.RawIOBase):
    """A read-only file that counts the bytes handed out (the progress of the CSV reader)."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.f.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n or 0

    def close(self) -> None:
        self.f.close()
        super().close()


class FileInput:
    """The files of one ``fs`` dataset, read one after the other."""

    def __init__(self, contract: Contract, dataset: Dataset, settings: Settings, rows_per_batch: int) -> None:
        self.dataset = dataset
        self.options = FileOptions.from_contract(contract, dataset, settings)
        self.files = find_files(dataset, contract)
        self.rows = rows_per_batch
        self.max_line = settings.max_message_bytes + 1
        self.total: int | None = sum(p.stat().st_size for p in self.files)
        self.unit = "B"
        self.label = ", ".join(str(p) for p in self.files[:3]) + (f" and {len(self.files) - 3} more"
                                                                 if len(self.files) > 3 else "")
        for path in self.files:
            if self.options.format_of(path.name) is None:
                raise BatchInputError(f"{path}: unknown format (set source.format to csv, jsonl, json or parquet)")
        self.headers = self._same_columns()

    def _same_columns(self) -> dict[Path, list[str]]:
        """Every CSV file's header, checked before any row is read: a column missing in one of
        many files fails the run (its rows would all be rejected for a reason the data lacks)."""
        if not self.options.csv.header:
            return {}
        headers = {p: self._header(p) for p in self.files if self.options.format_of(p.name) == "csv"}
        union: dict[str, Path] = {}
        for path, names in headers.items():
            for name in names:
                union.setdefault(name, path)
        for path, names in headers.items():
            missing = [name for name in union if name not in names]
            if missing:
                raise BatchInputError(f"{path}: has no column {missing[0]!r}, which {union[missing[0]]} has: every "
                                      f"file of {self.dataset.subject} needs the same columns")
        return headers

    def batches(self) -> Iterator[RawBatch]:
        before = 0
        for path in self.files:
            fmt = self.options.format_of(path.name)
            size = path.stat().st_size
            try:
                if fmt == "csv":
                    yield from self._csv(path, before)
                elif fmt == "parquet":
                    yield from self._parquet(path, before, size)
                else:
                    yield from self._json(path, before, fmt == "json")
            except FileNotFoundError:
                raise BatchInputError(f"{path}: the file disappeared while it was being read") from None
            except PermissionError:
                raise BatchInputError(f"{path}: permission denied") from None
            except pa.ArrowInvalid as exc:
                raise BatchInputError(f"{path}: cannot be read: {str(exc).splitlines()[0][:300]}") from None
            before += size

    # ------------------------------------------------------------------ CSV

    def _header(self, path: Path) -> list[str]:
        opts = self.options.csv
        with open(path, "rb") as f:
            first = f.readline(self.max_line)
        text = first.removeprefix(BOM).decode(opts.codec, errors="replace")
        names = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quotechar), [])
        if not names or len(set(names)) != len(names) or not all(names):
            raise BatchInputError(f"{path}: line 1 is not a usable header (empty or repeated column names)")
        return names

    def _csv(self, path: Path, before: int) -> Iterator[RawBatch]:
        opts = self.options.csv
        names = self._header(path) if opts.header else list(opts.columns)
        skipped = [0]

        def skip(row: Any) -> str:
            skipped[0] += 1
            return "skip"

        raw = _Counting(open(path, "rb"))
        try:
            reader = pacsv.open_csv(
                io.BufferedReader(raw, CSV_BLOCK_BYTES),
                read_options=pacsv.ReadOptions(column_names=names, skip_rows=1 if opts.header else 0,
                                               block_size=CSV_BLOCK_BYTES, encoding=opts.codec),
                parse_options=pacsv.ParseOptions(delimiter=opts.delimiter, quote_char=opts.quotechar,
                                                 double_quote=True, escape_char=False, newlines_in_values=False,
                                                 ignore_empty_lines=True, invalid_row_handler=skip),
                convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in names},
                                                      strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
            row = 0
            reported = 0
            for batch in reader:
                n = batch.num_rows
                cols = {name: Col(batch.column(i)) for i, name in enumerate(batch.schema.names)}
                yield RawBatch(cols, n, str(path), row, before + raw.count, skipped[0] - reported)
                reported = skipped[0]
                row += n
            if skipped[0] > reported:
                yield RawBatch({}, 0, str(path), row, before + raw.count, skipped[0] - reported)
        finally:
            raw.close()

    # ------------------------------------------------------------------ Parquet, JSON

    def _parquet(self, path: Path, before: int, size: int) -> Iterator[RawBatch]:
        with pq.ParquetFile(path) as pf:
            total = max(1, pf.metadata.num_rows)
            row = 0
            for batch in pf.iter_batches(batch_size=self.rows):
                cols = {name: Col(json_view(batch.column(i), json_default))
                        for i, name in enumerate(batch.schema.names)}
                yield RawBatch(cols, batch.num_rows, str(path), row, before + size * (row + batch.num_rows) // total)
                row += batch.num_rows

    def _json(self, path: Path, before: int, array: bool) -> Iterator[RawBatch]:
        reader = read_json if array else read_jsonl
        row = good = 0
        for chunk in reader(path, str(path), Resume(), self.rows, self.max_line):
            rows = [item for item in chunk.items if not isinstance(item, Bad)]
            bad = [item.error for item in chunk.items if isinstance(item, Bad)]
            good += len(rows)
            if bad and not good:
                raise BatchInputError(f"{path}: is not {'a JSON array' if array else 'JSON lines'} as the contract "
                                      f"declares ({bad[0]})")
            yield RawBatch(columns_from_records([r.record for r in rows]), len(rows), str(path), row,
                           before + chunk.resume.offset, len(bad), bad[:5], [r.ordinal for r in rows])
            row = chunk.resume.next

"""CSV files: pyarrow's streaming reader for clean files, a line-tracking reader for the rest.

Every column is read as text (the worker's type checks must see the original text; null tokens
are the worker's business, empty fields stay empty strings). Which reader a file gets is decided
once, before anything of it is published (:func:`plan_csv`), and recorded in the checkpoint, so
that row ordinals never change across restarts:
- ``arrow``: pyarrow read the whole file without a single problem in a first pass (no Python
  objects): right field count on every row, valid UTF-8, header on line 1, no huge row; and a
  byte scan found every quote balanced on its line and none inside an unquoted field (pyarrow
  silently glues lines together behind a stray quote, and drops quotes that end a field early).
  Ordinal = data row number, from 0.
- ``python``: anything else. Python's csv module (strict) on a line stream that tracks line
  numbers and byte offsets; each bad record goes to the dead-letter topic with its file and
  line, and reading goes on: invalid bytes, over-long lines, wrong field counts, broken quoting.
  A quoted field that does not close into a valid record within ``max_record_lines`` lines is
  taken as a stray quote: its first line is a dead letter and reading resumes on the next line.
"""

from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from ...errors import RecordError
from .readers import Bad, Chunk, Line, Lines, Resume, Row, too_long

__all__ = ["CsvOptions", "CsvPlan", "plan_csv", "read_csv"]

#: pyarrow block size: rows longer than this make the file go to the line-tracking reader.
BLOCK_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class CsvOptions:
    delimiter: str = ","
    quotechar: str = '"'
    header: bool = True
    #: Python codec name; files in any other encoding than UTF-8 use the line-tracking reader.
    encoding: str = "utf-8"
    #: Column names when ``header`` is false (the dataset's source features).
    columns: tuple[str, ...] = ()
    #: Longest line (bytes, line end included) that can still hold a publishable record.
    max_line_bytes: int = 1_000_001
    #: Most lines a quoted field may span.
    max_record_lines: int = 1000

    @property
    def utf8(self) -> bool:
        return codecs.lookup(self.encoding).name in ("utf-8", "utf-8-sig")

    @property
    def codec(self) -> str:
        return "utf-8" if self.utf8 else self.encoding


@dataclass(frozen=True)
class CsvPlan:
    reader: str  # "arrow" | "python"
    columns: tuple[str, ...] | None  # None: no usable header (every record is a dead letter)
    start: Resume  # where the data starts (after the header)
    why: str  # why this reader (or why the header is unusable)


@dataclass(slots=True)
class _Record:
    lines: list[Line]
    fields: list[str] | None
    error: str | None

    @property
    def raw(self) -> bytes:
        return b"".join(line.data for line in self.lines)


def _next_record(lines: Lines, opts: CsvOptions, ncols: int | None, where: str) -> _Record | None:
    """The next record, skipping blank lines; None at the end of the file."""
    first = lines.next()
    while first is not None and first.size is None and not first.data.strip(b"\r\n"):
        first = lines.next()
    if first is None:
        return None
    if first.size is not None:
        return _Record([first], None, too_long(where, first, opts.max_line_bytes))
    try:
        text = first.data.decode(opts.codec)
    except UnicodeDecodeError as exc:
        return _Record([first], None, f"{where} line {first.number}: not valid {opts.codec} "
                                      f"(byte 0x{first.data[exc.start]:02x} at column {exc.start + 1})")
    consumed = [first]

    class _Stop(RecordError):
        """The quoted field runs into the next record or past the limits: broken quoting."""

    def feed() -> Iterator[str]:
        yield text
        size = len(first.data)
        while True:
            nxt = lines.next()
            if nxt is None:
                return
            consumed.append(nxt)
            size += len(nxt.data)
            if nxt.size is not None or len(consumed) > opts.max_record_lines or size > opts.max_line_bytes:
                raise _Stop
            yield nxt.data.decode(opts.codec)

    error = None
    fields: list[str] | None = None
    try:
        fields = next(csv.reader(feed(), delimiter=opts.delimiter, quotechar=opts.quotechar,
                                 doublequote=True, strict=True))
    except csv.Error as exc:
        error = f"broken quoting: {exc}"
    except (_Stop, UnicodeDecodeError):
        error = "broken quoting"
    if fields is not None and ncols is not None and len(fields) != ncols:
        error = f"expected {ncols} fields, got {len(fields)}"
    if error is None:
        return _Record(consumed, fields, None)
    if len(consumed) > 1:
        # A quote that never closes into a valid record: a stray quote on this line. Give the
        # lines we looked at back and go on with the next one.
        lines.push_back(consumed[1:])
        return _Record([first], None, f"{where} line {first.number}: broken quoting: a quoted field opened "
                                      "here does not close into a valid record (the line is skipped, "
                                      "reading goes on with the next one)")
    return _Record(consumed, None, f"{where} line {first.number}: {error}")


def _set_field_limit(limit: int) -> None:
    # The csv module refuses fields over 128 KiB by default; our limit is the line length.
    if csv.field_size_limit() < limit:
        csv.field_size_limit(limit)


def plan_csv(path: Path, opts: CsvOptions, max_row_bytes: int) -> CsvPlan:
    """Choose the reader for ``path`` (blocking; one pass with pyarrow over a clean file)."""
    _set_field_limit(opts.max_line_bytes)
    columns: tuple[str, ...] = opts.columns
    start = Resume()
    with open(path, "rb") as f:
        lines = Lines(f, 0, 1, opts.max_line_bytes)
        if opts.header:
            record = _next_record(lines, opts, None, str(path))
            if record is None:
                return CsvPlan("python", (), start, "empty file")
            if record.error is not None or not record.fields:
                return CsvPlan("python", None, start, f"no usable header: {record.error or 'empty header'}")
            columns = tuple(record.fields)
            offset, number = lines.resume_point()
            start = Resume(0, offset, number)
            if record.lines[0].number != 1 or len(record.lines) != 1:
                return CsvPlan("python", columns, start, "the header is not exactly line 1")
    if not opts.utf8:
        return CsvPlan("python", columns, start, f"encoding {opts.encoding}")
    problem = _arrow_problem(path, opts, columns, max_row_bytes) or _quote_problem(path, opts)
    if problem:
        return CsvPlan("python", columns, start, problem)
    return CsvPlan("arrow", columns, start, "clean")


def _arrow_reader(path: Path, opts: CsvOptions, columns: tuple[str, ...], handler: object = None) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        path,
        read_options=pacsv.ReadOptions(column_names=list(columns), skip_rows=1 if opts.header else 0,
                                       block_size=BLOCK_BYTES),
        # No quoted newlines in a file given to pyarrow (see _quote_problem): rows end at line ends.
        parse_options=pacsv.ParseOptions(delimiter=opts.delimiter, quote_char=opts.quotechar, double_quote=True,
                                         escape_char=False, newlines_in_values=False, ignore_empty_lines=True,
                                         invalid_row_handler=handler),
        convert_options=pacsv.ConvertOptions(column_types={c: pa.string() for c in columns},
                                             strings_can_be_null=False, quoted_strings_can_be_null=False),
    )


def _arrow_problem(path: Path, opts: CsvOptions, columns: tuple[str, ...], max_row_bytes: int) -> str | None:
    """Why pyarrow cannot read ``path`` cleanly, or None."""
    if not columns or len(set(columns)) != len(columns):
        return "empty or repeated column names"

    def refuse(row: object) -> str:
        return "error"  # one bad row is enough to choose the other reader

    try:
        reader = _arrow_reader(path, opts, columns, refuse)
        for batch in reader:
            if batch.num_rows == 0:
                continue
            sizes = pc.binary_length(batch.column(0))
            for column in batch.columns[1:]:
                sizes = pc.add(sizes, pc.binary_length(column))
            if pc.max(sizes).as_py() > max_row_bytes:
                return "a row too large for the fast reader"
    except (pa.ArrowInvalid, pa.ArrowException, OSError) as exc:
        return f"pyarrow: {str(exc).splitlines()[0][:200]}"
    return None


def _quote_problem(path: Path, opts: CsvOptions) -> str | None:
    """Why the quoting of ``path`` may be read differently by pyarrow and by a strict parser:
    a line with an odd number of quotes (a quoted field over several lines, or never closed), or
    a quote between two ordinary characters (text after a closing quote, a quote inside an
    unquoted field). None when every quote is plainly balanced on its line."""
    q = opts.quotechar.encode()
    plain = re.escape(opts.delimiter.encode() + b"\r\n" + q)
    inside = re.compile(b"[^" + plain + b"]" + re.escape(q) + b"[^" + plain + b"]")
    carry = b""
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK_BYTES)
            data = carry + block
            cut = len(data) if not block else data.rfind(b"\n") + 1
            body, carry = data[:cut], data[cut:]
            if q in body:
                if inside.search(body):
                    return "a quote inside a field"
                if any(line.count(q) % 2 for line in body.split(b"\n")):
                    return "a quoted field that does not close on its line"
            if not block:
                return None
            if len(carry) > 4 * BLOCK_BYTES:
                return "a very long line"


def read_csv(path: Path, where: str, opts: CsvOptions, plan: CsvPlan, start: Resume, chunk_rows: int) -> Iterator[Chunk]:
    """Chunks of the file from ``start`` with the planned reader (blocking generator)."""
    if plan.reader == "arrow":
        assert plan.columns is not None
        return _read_arrow(path, opts, plan.columns, start, chunk_rows)
    return _read_python(path, where, opts, plan, start, chunk_rows)


def _read_arrow(path: Path, opts: CsvOptions, columns: tuple[str, ...], start: Resume, chunk_rows: int) -> Iterator[Chunk]:
    row = 0  # ordinal of the first row of the current batch
    for batch in _arrow_reader(path, opts, columns):
        end = row + batch.num_rows
        offset = max(0, start.next - row)
        while row + offset < end:
            part = batch.slice(offset, chunk_rows)
            first = row + offset
            items: list[Row | Bad] = [Row(first + i, rec) for i, rec in enumerate(part.to_pylist())]
            offset += part.num_rows
            yield Chunk(items, Resume(first + part.num_rows))
        row = end


def _read_python(path: Path, where: str, opts: CsvOptions, plan: CsvPlan, start: Resume,
                 chunk_rows: int) -> Iterator[Chunk]:
    _set_field_limit(opts.max_line_bytes)
    columns = plan.columns
    ncols = len(columns) if columns is not None else None
    ordinal = start.next
    with open(path, "rb") as f:
        lines = Lines(f, start.offset, start.line, opts.max_line_bytes)
        chunk = Chunk()
        while True:
            record = _next_record(lines, opts, ncols, where)
            if record is None:
                break
            line = record.lines[0].number
            if columns is None:
                chunk.items.append(Bad(ordinal, f"{where} line {line}: {plan.why}", record.raw, line))
            elif record.error is not None:
                chunk.items.append(Bad(ordinal, record.error, record.raw, line))
            else:
                assert record.fields is not None
                chunk.items.append(Row(ordinal, dict(zip(columns, record.fields)), line))
            ordinal += 1
            if len(chunk.items) >= chunk_rows:
                offset, number = lines.resume_point()
                chunk.resume = Resume(ordinal, offset, number)
                yield chunk
                chunk = Chunk()
        offset, number = lines.resume_point()
        chunk.resume = Resume(ordinal, offset, number)
        yield chunk

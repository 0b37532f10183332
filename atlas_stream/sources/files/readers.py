"""Streaming file readers (JSON lines, JSON arrays, Parquet) and the items all readers yield.

Readers are plain blocking generators (the file poller runs them in a thread). Each yields
:class:`Chunk` objects: rows and bad inputs in file order, numbered by a deterministic ordinal,
and the point to resume from after them. Nothing here knows about Kafka.
"""

from __future__ import annotations

import codecs
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

import orjson

from ...errors import RecordError
from ...messages import decode_raw

__all__ = ["BOM", "Bad", "Chunk", "Line", "Lines", "Resume", "Row", "read_json", "read_jsonl", "read_parquet"]

BOM = codecs.BOM_UTF8
#: A JSON file holding one array is loaded whole; beyond this size use JSON lines.
MAX_JSON_ARRAY_BYTES = 256 * 1024 * 1024


@dataclass(slots=True)
class Row:
    """A record read from the file. ``text`` is the original JSON when it can be kept as is."""

    ordinal: int
    record: dict[str, Any]
    line: int | None = None
    text: bytes | None = None


@dataclass(slots=True)
class Bad:
    """Input that is not a record: it goes to the dead-letter topic with ``error``."""

    ordinal: int
    error: str
    raw: bytes
    line: int | None = None


@dataclass(slots=True)
class Resume:
    """Where to read on: the next ordinal and, for line-based readers, its byte offset and line."""

    next: int = 0
    offset: int = 0
    line: int = 1

    def to_dict(self) -> dict[str, int]:
        return {"next": self.next, "offset": self.offset, "line": self.line}


@dataclass(slots=True)
class Chunk:
    items: list[Row | Bad] = field(default_factory=list)
    resume: Resume = field(default_factory=Resume)


@dataclass(slots=True)
class Line:
    """A physical line: its number (1-based), byte offset and bytes (with the line end). ``size``
    is set when the line was longer than the reader's limit (``data`` then holds its start)."""

    number: int
    offset: int
    data: bytes
    size: int | None = None


class Lines:
    """Physical lines of a binary file with numbers and offsets, bounded in length, with
    push-back (a reader that looked ahead for a closing quote can give lines back)."""

    def __init__(self, f: IO[bytes], offset: int, number: int, limit: int) -> None:
        f.seek(offset)
        self.f = f
        self.number = number
        self.limit = limit
        self.pending: deque[Line] = deque()

    def next(self) -> Line | None:
        if self.pending:
            return self.pending.popleft()
        start = self.f.tell()
        data = self.f.readline(self.limit)
        if not data:
            return None
        line = Line(self.number, start, data)
        self.number += 1
        if start == 0 and data.startswith(BOM):
            line.data = data[len(BOM):]
        if len(data) >= self.limit and not data.endswith(b"\n"):
            size = len(data)
            while True:  # drain the rest of the line without keeping it
                more = self.f.readline(1 << 20)
                size += len(more)
                if not more or more.endswith(b"\n"):
                    break
            line.size = size
        return line

    def push_back(self, lines: list[Line]) -> None:
        self.pending.extendleft(reversed(lines))

    def resume_point(self) -> tuple[int, int]:
        """(byte offset, line number) of the next line to read."""
        if self.pending:
            return self.pending[0].offset, self.pending[0].number
        return self.f.tell(), self.number


def _is_blank(data: bytes) -> bool:
    return not data.strip(b"\r\n")


def too_long(where: str, line: Line, limit: int) -> str:
    return (f"{where} line {line.number}: {line.size} bytes, longer than the largest record that can be "
            f"published ({limit - 1} bytes, ATLAS_MAX_MESSAGE_BYTES)")


def read_jsonl(path: Path, where: str, start: Resume, chunk_rows: int, max_line_bytes: int) -> Iterator[Chunk]:
    """JSON lines: one object per line; the ordinal of a line is its number - 1. Blank lines are
    skipped; a line that is not a JSON object (or not UTF-8, or too long) is a Bad."""
    with open(path, "rb") as f:
        lines = Lines(f, start.offset, start.line, max_line_bytes)
        chunk = Chunk()
        while True:
            line = lines.next()
            if line is None:
                break
            if line.size is not None:
                chunk.items.append(Bad(line.number - 1, too_long(where, line, max_line_bytes), line.data, line.number))
            elif not _is_blank(line.data):
                text = line.data.strip()
                try:
                    chunk.items.append(Row(line.number - 1, decode_raw(text), line.number, text))
                except RecordError as exc:
                    chunk.items.append(Bad(line.number - 1, f"{where} line {line.number}: {exc}", line.data, line.number))
            if len(chunk.items) >= chunk_rows:
                chunk.resume = _resume(lines)
                yield chunk
                chunk = Chunk()
        chunk.resume = _resume(lines)
        yield chunk


def _resume(lines: Lines) -> Resume:
    offset, number = lines.resume_point()
    return Resume(number - 1, offset, number)


def read_json(path: Path, where: str, start: Resume, chunk_rows: int, max_line_bytes: int) -> Iterator[Chunk]:
    """``.json`` files: one JSON array of objects (loaded whole, up to 256 MiB), or else JSON lines.
    An array file that cannot be loaded is one Bad (ordinal 0) for the whole file."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if not head.removeprefix(BOM).lstrip().startswith(b"["):
        yield from read_jsonl(path, where, start, chunk_rows, max_line_bytes)
        return
    size = path.stat().st_size
    if size > MAX_JSON_ARRAY_BYTES:
        if start.next == 0:
            yield Chunk([Bad(0, f"{where}: a JSON array of {size} bytes is too large to load "
                                f"(over {MAX_JSON_ARRAY_BYTES} bytes): write JSON lines instead", head)], Resume(1))
        return
    raw = path.read_bytes().removeprefix(BOM)
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        if start.next == 0:
            yield Chunk([Bad(0, f"{where}: not valid JSON: {exc}", raw)], Resume(1))
        return
    chunk = Chunk()
    for i in range(start.next, len(doc)):
        element = doc[i]
        if isinstance(element, dict):
            chunk.items.append(Row(i, element))
        else:
            chunk.items.append(Bad(i, f"{where} element {i}: a JSON {type(element).__name__}, expected an object",
                                   orjson.dumps(element)))
        if len(chunk.items) >= chunk_rows:
            chunk.resume = Resume(i + 1)
            yield chunk
            chunk = Chunk()
    chunk.resume = Resume(max(start.next, len(doc)))
    yield chunk


def read_parquet(path: Path, where: str, start: Resume, chunk_rows: int) -> Iterator[Chunk]:
    """Parquet through ``ParquetFile.iter_batches``; the ordinal is the row number. Resuming skips
    whole row groups. A file that is not Parquet is one Bad (ordinal 0); a file that breaks
    part way ends with one Bad for the rest."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...: all mean "not Parquet"
        if start.next == 0:
            with open(path, "rb") as f:
                yield Chunk([Bad(0, f"{where}: not a readable Parquet file: {exc}", f.read(1 << 16))], Resume(1))
        return
    with pf:
        meta = pf.metadata
        first_group, row = 0, 0
        while first_group < meta.num_row_groups and row + meta.row_group(first_group).num_rows <= start.next:
            row += meta.row_group(first_group).num_rows
            first_group += 1
        groups = list(range(first_group, meta.num_row_groups))
        ordinal = start.next
        try:
            for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=groups) if groups else ():
                end = row + batch.num_rows
                if end > ordinal:
                    rows = batch.slice(ordinal - row).to_pylist()
                    items: list[Row | Bad] = [Row(ordinal + i, rec) for i, rec in enumerate(rows)]
                    ordinal += len(items)
                    yield Chunk(items, Resume(ordinal))
                row = end
        except Exception as exc:
            # Past every row the file claims to hold, so that a restart does not try again.
            yield Chunk([Bad(ordinal, f"{where} row {ordinal}: the rest of the file cannot be read: {exc}", b"")],
                        Resume(max(ordinal + 1, meta.num_rows)))

"""The file poller: landing folders (file, folder or glob) -> raw topics, exactly once.

A file is read only once it has stopped growing, by the reader its format needs, in batches that
are each published and checkpointed (see :class:`~atlas_stream.sources.runner.SourceRunner`). Its
rows have positions ``<file id>:<ordinal>``; the file id hashes the file's path under the landing
root, its size and its first 64 KiB, so it is stable across restarts and moves. When its last
batch is durable the file is marked complete, then archived (``archive_dir``) or recorded as
done, and that is checkpointed too: a restart at any point neither loses nor repeats a row.
"""

from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import shutil
import time
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, AsyncGenerator, Iterator, Protocol

import orjson

from ...messages import record_key
from ...model import Contract, Dataset
from ...settings import Settings
from ..interface import Batch, DatasetSource, OutRecord, dead_letter
from ..checkpoint import fsync_dir
from .csvfile import CsvPlan, plan_csv, read_csv
from .options import FileOptions, Landing, json_default
from .readers import Bad, Chunk, Resume, Row, read_json, read_jsonl, read_parquet

__all__ = ["FileSource", "Progress", "file_identity"]

IDENTITY_BYTES = 64 * 1024
_TEMP_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload", ".filepart")


class Progress(Protocol):
    def file_started(self, source: str, where: str) -> None: ...
    def file_progress(self, source: str, where: str, rows: int, dead: int) -> None: ...
    def file_done(self, source: str, where: str, rows: int, dead: int, note: str) -> None: ...


def file_identity(path: Path, rel: str, size: int) -> str:
    """16 hex digits from the path under the landing root, the size and the first 64 KiB."""
    digest = hashlib.sha256(rel.encode() + b"\0" + str(size).encode() + b"\0")
    with open(path, "rb") as f:
        digest.update(f.read(IDENTITY_BYTES))
    return digest.hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class _Seen:
    stat: tuple[int, int, int]  # size, mtime_ns, inode
    since: float  # monotonic time the stat was first seen like this


class FileSource(DatasetSource):
    """One dataset of an ``fs`` contract. Position (JSON): ``{"files": {id: entry}, "done": {id:
    {"path", "at"}}}`` where an entry tracks a file being read (reader, next ordinal, byte offset,
    line) or read completely but not yet archived."""

    kind = "file"

    def __init__(self, contract: Contract, dataset: Dataset, settings: Settings, options: FileOptions,
                 landing: Landing, progress: Progress | None = None, once: bool = False) -> None:
        super().__init__("file", contract, dataset, settings)
        self.options = options
        self.landing = landing
        self.progress = progress
        self.once = once
        self._seen: dict[str, _Seen] = {}
        self._ids: dict[tuple[str, tuple[int, int, int]], str] = {}
        self._refused: set[str] = set()
        self._waiting = 0

    def lag(self) -> int | None:
        """Files found and settled but not read completely yet."""
        return max(0, self._waiting)

    # ------------------------------------------------------------------ finding files

    def _scan(self) -> dict[str, tuple[int, int, int]]:
        """Candidate files under the landing root: rel path -> (size, mtime_ns, inode)."""
        root = self.landing.root
        if not root.is_dir():
            self._refuse(str(root), f"landing folder {root} does not exist (yet)")
            return {}
        found: dict[str, tuple[int, int, int]] = {}
        for rel in glob.glob(self.landing.pattern, root_dir=root, recursive=True):
            name = os.path.basename(rel)
            if name.startswith((".", "~")) or name.endswith(_TEMP_SUFFIXES) or self.landing.in_archive(rel):
                continue
            full = root / rel
            real = Path(os.path.realpath(full))
            if not real.is_relative_to(root):
                self._refuse(rel, f"refused {full}: it resolves to {real}, outside the landing root {root}")
                continue
            try:
                st = real.stat()
            except OSError:
                continue  # vanished meanwhile
            if os.path.isfile(real):
                found[Path(rel).as_posix()] = (st.st_size, st.st_mtime_ns, st.st_ino)
        return found

    def _refuse(self, key: str, message: str) -> None:
        if key not in self._refused:
            self._refused.add(key)
            self.report(message)

    def _observe(self, listing: dict[str, tuple[int, int, int]]) -> None:
        now = time.monotonic()
        for rel, stat in listing.items():
            seen = self._seen.get(rel)
            if seen is None or seen.stat != stat:
                self._seen[rel] = _Seen(stat, now)
        for rel in list(self._seen):
            if rel not in listing:
                del self._seen[rel]

    def _settled(self, rel: str) -> bool:
        return time.monotonic() - self._seen[rel].since >= self.options.settle_seconds

    async def _settled_files(self) -> tuple[set[str], dict[str, tuple[int, int, int]]]:
        """(every candidate file, the files whose size and mtime did not change across two looks
        ``settle_seconds`` apart)."""
        listing = await asyncio.to_thread(self._scan)
        self._observe(listing)
        waiting = [rel for rel in listing if not self._settled(rel)]
        if waiting:
            await asyncio.sleep(max(self.options.settle_seconds - (time.monotonic() - self._seen[rel].since)
                                    for rel in waiting) + 0.01)
            listing = await asyncio.to_thread(self._scan)
            self._observe(listing)
        growing = sorted(rel for rel in listing if not self._settled(rel))
        if growing and self.once:
            self.report(f"still being written, left for a later run: {', '.join(growing[:5])}"
                        + (f" and {len(growing) - 5} more" if len(growing) > 5 else ""))
        return set(listing), {rel: stat for rel, stat in listing.items() if self._settled(rel)}

    def _identity(self, rel: str, stat: tuple[int, int, int]) -> str | None:
        key = (rel, stat)
        fid = self._ids.get(key)
        if fid is None:
            try:
                fid = file_identity(self.landing.root / rel, rel, stat[0])
            except OSError:
                return None
            self._ids[key] = fid
        return fid

    # ------------------------------------------------------------------ one pass

    async def poll(self, position: Any) -> AsyncGenerator[Batch, None]:
        pos = position if isinstance(position, dict) else {}
        pos.setdefault("files", {})
        pos.setdefault("done", {})
        present, listing = await self._settled_files()
        ids = await asyncio.to_thread(lambda: {rel: self._identity(rel, st) for rel, st in listing.items()})
        self._ids = {k: v for k, v in self._ids.items() if k[0] in listing}
        new = sorted((st[1], rel) for rel, st in listing.items()
                     if ids[rel] is not None and ids[rel] not in pos["done"] and ids[rel] not in pos["files"])
        self._waiting = len(pos["files"]) + len(new)
        # aclosing: when the runner closes this pass, the file being read is closed at once.
        for fid, entry in list(pos["files"].items()):  # files a previous run did not finish
            async with aclosing(self._resume(pos, fid, entry)) as batches:
                async for batch in batches:
                    yield batch
        for _, rel in new:
            fid = ids[rel]
            assert fid is not None
            async with aclosing(self._start(pos, rel, listing[rel], fid)) as batches:
                async for batch in batches:
                    yield batch
        # Forget files recorded as done once they are gone, so that the record stays small.
        for fid in [f for f, done in pos["done"].items() if done["path"] not in present]:
            del pos["done"][fid]

    async def _resume(self, pos: dict[str, Any], fid: str, entry: dict[str, Any]) -> AsyncGenerator[Batch, None]:
        rel = entry["path"]
        if not entry.get("complete"):
            stat = await asyncio.to_thread(self._stat, rel)
            if stat is None or await asyncio.to_thread(self._identity, rel, stat) != fid:
                self.report(f"{self.landing.root / rel} changed or disappeared while it was being read: "
                            f"{entry.get('rows', 0)} rows were published, the rest of it is not read")
                del pos["files"][fid]
                self._waiting -= 1
                yield Batch([], pos)
                return
        async with aclosing(self._read(pos, fid, entry)) as batches:
            async for batch in batches:
                yield batch

    def _stat(self, rel: str) -> tuple[int, int, int] | None:
        try:
            st = (self.landing.root / rel).stat()
        except OSError:
            return None
        return st.st_size, st.st_mtime_ns, st.st_ino

    async def _start(self, pos: dict[str, Any], rel: str, stat: tuple[int, int, int], fid: str) -> AsyncGenerator[Batch, None]:
        path = self.landing.root / rel
        fmt = self.options.format_of(rel)
        if fmt is None:
            self._refuse(rel, f"{path}: unknown format (set source.format to csv, jsonl, json or parquet)")
            self._waiting -= 1
            return
        entry: dict[str, Any] = {"path": rel, "size": stat[0], "mtime_ns": stat[1], "format": fmt,
                                 "reader": fmt, "complete": False, "rows": 0, "dead": 0, **Resume().to_dict()}
        if fmt == "csv":
            try:
                plan = await asyncio.to_thread(plan_csv, path, self.options.csv, self.max_bytes // 4)
            except OSError as exc:
                self.report(f"cannot read {path}: {exc}")
                self._waiting -= 1
                return
            entry.update(reader=plan.reader, columns=plan.columns, why=plan.why, **plan.start.to_dict())
        pos["files"][fid] = entry
        yield Batch([], pos)  # the reader choice is durable before any row is published
        async with aclosing(self._read(pos, fid, entry)) as batches:
            async for batch in batches:
                yield batch

    def _chunks(self, entry: dict[str, Any]) -> Iterator[Chunk]:
        path = self.landing.root / entry["path"]
        where = str(path)
        start = Resume(entry["next"], entry["offset"], entry["line"])
        size = self.options.batch_size
        fmt = entry["format"]
        if fmt == "csv":
            columns = entry.get("columns")
            plan = CsvPlan(entry["reader"], tuple(columns) if columns is not None else None, start, entry.get("why", ""))
            return read_csv(path, where, self.options.csv, plan, start, size)
        if fmt == "parquet":
            return read_parquet(path, where, start, size)
        reader = read_json if fmt == "json" else read_jsonl
        return reader(path, where, start, size, self.max_bytes + 1)

    async def _read(self, pos: dict[str, Any], fid: str, entry: dict[str, Any]) -> AsyncGenerator[Batch, None]:
        where = str(self.landing.root / entry["path"])
        started = time.monotonic()
        if not entry.get("complete"):
            if self.progress:
                self.progress.file_started(self.source_id, where)
            try:
                chunks = await asyncio.to_thread(self._chunks, entry)
            except OSError as exc:
                self.report(f"cannot read {where}: {exc}")
                return
            # Read ahead: the next chunk is converted in a thread while this one is published.
            # Its position is handed over only after this batch is durable, as the runner needs.
            ahead = asyncio.ensure_future(asyncio.to_thread(self._next_records, chunks, fid, where))
            try:
                while True:
                    try:
                        out = await ahead
                    except OSError as exc:
                        self.report(f"reading {where} failed, will retry: {exc}")
                        return
                    if out is None:
                        break
                    ahead = asyncio.ensure_future(asyncio.to_thread(self._next_records, chunks, fid, where))
                    records, resume = out
                    entry.update(resume.to_dict())
                    batch = Batch(records, pos)
                    yield batch
                    entry["rows"] += batch.sent_rows
                    entry["dead"] += batch.sent_dead
                    if self.progress:
                        self.progress.file_progress(self.source_id, where, entry["rows"], entry["dead"])
            finally:
                # A thread cannot be interrupted: let it finish its chunk (dropped) before the
                # reader is closed, or the close would meet a generator still running.
                await asyncio.gather(ahead, return_exceptions=True)
                chunks.close()  # type: ignore[attr-defined]
            entry["complete"] = True
            if self.options.archive_dir is not None:
                yield Batch([], pos)  # complete is durable before the file moves
        note = "recorded as done"
        if self.options.archive_dir is not None:
            try:
                moved = await asyncio.to_thread(self._archive, entry["path"], fid)
            except OSError as exc:
                self.report(f"cannot archive {where}, will retry: {exc}")
                return
            note = f"archived to {moved}" if moved else "archived"
        else:
            pos["done"][fid] = {"path": entry["path"], "at": _now()}
        del pos["files"][fid]
        self._waiting -= 1
        yield Batch([], pos)
        if self.progress:
            self.progress.file_done(self.source_id, where, entry["rows"], entry["dead"],
                                    f"{note}, {time.monotonic() - started:.1f} s")

    def _next_records(self, chunks: Iterator[Chunk], fid: str, where: str) -> tuple[list[OutRecord], Resume] | None:
        chunk = next(chunks, None)
        if chunk is None:
            return None
        return self._records(chunk, fid, where), chunk.resume

    def _records(self, chunk: Chunk, fid: str, where: str) -> list[OutRecord]:
        """Rows -> raw records (keyed), bad input and unpublishable rows -> dead letters."""
        out: list[OutRecord] = []
        raw_topic_, keys, limit = self.raw_topic, self.key_fields, self.max_bytes
        for item in chunk.items:
            position = f"{fid}:{item.ordinal}"
            if isinstance(item, Row):
                at = f"line {item.line}" if item.line is not None else f"row {item.ordinal}"
                try:
                    value = item.text if item.text is not None else orjson.dumps(item.record, default=json_default)
                    key = record_key(item.record, keys)
                except TypeError as exc:
                    out.append(self._dead(position, f"{where} {at}: cannot be written as JSON: {exc}",
                                          repr(item.record).encode(), where, item))
                    continue
                if len(value) > limit:
                    out.append(self._dead(position, f"{where} {at}: the record is {len(value)} bytes, larger than "
                                                    f"ATLAS_MAX_MESSAGE_BYTES ({limit})", value, where, item))
                else:
                    out.append(OutRecord(raw_topic_, key, value, position))
            else:
                out.append(self._dead(position, item.error, item.raw, where, item))
        return out

    def _dead(self, position: str, error: str, raw: bytes, where: str, item: Row | Bad) -> OutRecord:
        return dead_letter(self.dlq, self.dataset.name, self.source_id, position, error, raw, self.max_bytes,
                           file=where, line=item.line, row=item.ordinal)

    def _archive(self, rel: str, fid: str) -> Path | None:
        """Move a completely read file under the archive folder (same relative path). None when
        it is gone already (moved before a crash)."""
        assert self.landing.archive is not None
        src = self.landing.root / rel
        if not os.path.lexists(src):
            return None
        dest = self.landing.archive / rel
        if os.path.lexists(dest):
            dest = dest.with_name(f"{dest.stem}.{fid}{dest.suffix}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(src, dest)
        except OSError:
            shutil.move(src, dest)  # another filesystem: copy, then delete
        fsync_dir(dest.parent)
        fsync_dir(src.parent)
        return dest

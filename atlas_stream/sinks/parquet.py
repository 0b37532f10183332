"""Parquet sink: one writer per tier-topic partition, row groups into a temporary file that is
committed by rename under a name that says which offsets it holds (Kafka Connect's HDFS sink).

Guarantees (see docs/lake.md):

- A committed file ``<topic>+<partition>+<start>+<end>.parquet`` holds every record of tier
  offsets ``start..end`` that was not already in an earlier file; nothing else is ever renamed
  into the lake, so a crash leaves only temporary files, which recovery deletes.
- The next offset to write is recovered from the committed names (``recover``), never from the
  consumer group: offsets are committed to Kafka only after the files covering them.
- A raw record that the scoring agent emitted twice (at-least-once) is written once: each file's
  footer carries, per raw partition, the highest raw offset and timestamp written so far.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Callable, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import metrics
from ..lake import CommittedFile, dataset_features, lake_schema, parse_committed_name, partition_dir, tier_dir
from ..model import Dataset, Feature
from ..retry import RetryPolicy, retry_sync
from .base import TP, Flushed, Recovered, TierSink
from .lakefs import Lake, LakeUnavailable
from .tier_arrow import Window, decode_window, replays

if TYPE_CHECKING:
    from .router import Route

__all__ = ["Committed", "Limits", "ParquetSink", "PartitionWriter", "Recovery", "TMP_PREFIX", "recover"]

log = logging.getLogger(__name__)

#: Temporary files start with this prefix (readers skip names starting with ``_``) and end with
#: ``.tmp`` (a ``*.parquet`` glob never matches them).
TMP_PREFIX = "_tmp."
META_KEY = "atlas.sink"
#: Committing a file to a lake that is down: 0.5 s doubling to 30 s, jittered, until it works.
COMMIT_RETRY = RetryPolicy(first=0.5, cap=30.0)


@dataclass(frozen=True)
class Limits:
    """When a window closes (a row group is written) and when a file is committed."""

    flush_seconds: float = 10.0
    flush_rows: int = 50_000
    flush_bytes: int = 32 * 1024 * 1024
    rotate_seconds: float = 300.0
    rotate_rows: int = 1_000_000
    rotate_bytes: int = 256 * 1024 * 1024


@dataclass
class Recovery:
    """What the committed files of one topic partition say: where to go on from."""

    series: int = 0
    next_offset: int | None = None  # None: no file yet, start wherever the consumer starts
    guard: dict[str, list[float]] = field(default_factory=dict)  # "<raw topic>|<p>" -> [offset, ts]
    last: dict[str, Any] | None = None  # the newest file's last consumed record (offset, source, ingested_at)
    files: int = 0
    removed_tmp: int = 0


def recover(lake: Lake, dataset_path: str, tier: str, topic: str, partition: int, staging: Path | None) -> Recovery:
    """Scan the tier's folder for this partition's committed and temporary files (blocking)."""
    mine: list[tuple[CommittedFile, str]] = []
    path: str
    removed = 0
    tmp_mark = f"{TMP_PREFIX}{topic}+{partition}+"
    for entry in lake.list_files(tier_dir(dataset_path, tier)):
        base = entry.path.rsplit("/", 1)[-1]
        if base.startswith(tmp_mark):
            lake.delete(entry.path)
            removed += 1
            continue
        parsed = parse_committed_name(base)
        if parsed and parsed.topic == topic and parsed.partition == partition:
            mine.append((parsed, entry.path))
    if staging is not None and staging.is_dir():
        for staged in staging.glob(f"{tmp_mark}*"):
            staged.unlink(missing_ok=True)
            removed += 1
    rec = Recovery(files=len(mine), removed_tmp=removed)
    if not mine:
        return rec
    newest, path = max(mine, key=lambda fp: (fp[0].series, fp[0].end))
    rec.series, rec.next_offset = newest.series, newest.end + 1
    meta = lake.read_parquet_metadata(path).metadata or {}
    if META_KEY.encode() in meta:
        state = orjson.loads(meta[META_KEY.encode()])
        rec.guard, rec.last = state.get("guard", {}), state.get("last")
    return rec


FeaturesFor = Callable[[Dataset, "int | None"], Sequence[Feature]]


@dataclass(frozen=True)
class Committed:
    """A file this writer committed: its name's offsets, its path in the lake, its rows."""

    file: CommittedFile
    path: str
    rows: int


class PartitionWriter:
    """Writes the records of one tier-topic partition to the lake.

    Call ``consume`` for every record in offset order (the caller filters replays of tier
    offsets), ``flush`` when ``due``; ``commit`` renames the open file into the lake. Both return
    the files they committed. The buffer holds the messages' bytes; a window is decoded at once
    on Arrow (``tier_arrow``) in a thread. The caller runs one coroutine at a time (the router's
    lock per partition); ``consume`` needs none when it is called on the event loop (a flush takes
    the buffer whole before its thread starts).
    """

    def __init__(self, lake: Lake, dataset: Dataset, tier: str, topic: str, partition: int, recovery: Recovery,
                 limits: Limits, staging: Path, features_for: FeaturesFor) -> None:
        self.lake, self.dataset, self.tier, self.topic, self.partition = lake, dataset, tier, topic, partition
        self.limits, self.staging, self.features_for = limits, staging, features_for
        self.series = recovery.series
        self.guard: dict[str, list[float]] = {k: list(v) for k, v in recovery.guard.items()}
        #: Offsets below this are in committed files or were replays: safe to commit to Kafka.
        self.committed_next: int | None = recovery.next_offset
        self.last: dict[str, Any] | None = recovery.last
        self._values: list[bytes] = []
        self._offsets: list[int] = []
        self._buffer_bytes = 0
        self._window_started = 0.0
        self._pending_start: int | None = None  # first decoded offset not in a committed file
        self._decoded_end: int | None = None  # last offset of the windows already decoded
        self._key: tuple[str, int | None] | None = None  # (ingest_date, schema version) of the open file
        self._writer: pq.ParquetWriter | None = None
        self._sink: Any = None
        self._tmp: str | Path | None = None
        self._schema: pa.Schema | None = None
        self._features: Sequence[Feature] = ()
        self._file_rows = 0
        self._file_opened = 0.0
        self._first_seen = 0.0
        self.skipped = 0
        self.not_tier = 0

    # -- consuming -------------------------------------------------------------------------
    def consume(self, offset: int, value: bytes | None) -> None:
        """Take the message at ``offset`` (its value's bytes, decoded when the window closes)."""
        if not self._values:
            self._window_started = time.monotonic()
            if self._writer is None:
                self._first_seen = time.time()
        self._values.append(value or b"")
        self._offsets.append(offset)
        self._buffer_bytes += len(value or b"")

    def due(self, now: float) -> bool:
        lim = self.limits
        if self._values and (len(self._values) >= lim.flush_rows or self._buffer_bytes >= lim.flush_bytes
                             or now - self._window_started >= lim.flush_seconds):
            return True
        return self._writer is not None and now - self._file_opened >= lim.rotate_seconds

    def safe_next(self) -> int | None:
        """The offset up to which Kafka may be told everything is written."""
        return self.committed_next

    def restart_series(self, offset: int) -> None:
        """The topic's offsets started again at ``offset`` (call after ``commit``): later files
        form a new series, and raw offsets seen so far say nothing about the new records."""
        self.series += 1
        self.guard.clear()
        self.committed_next = offset
        self._decoded_end = None

    # -- writing -----------------------------------------------------------------------------
    async def flush(self) -> list[Committed]:
        """Write the buffer as row groups; commit the file when it is big or old enough (or
        when the window holds records of another ingest date or schema version)."""
        lim = self.limits
        done = await self._write_buffer()
        if self._writer is not None and (self._file_rows >= lim.rotate_rows
                                         or self._file_size() >= lim.rotate_bytes
                                         or time.monotonic() - self._file_opened >= lim.rotate_seconds):
            done += await self.commit()
        return done

    async def commit(self) -> list[Committed]:
        """Flush, then rename the open file into the lake under its committed name."""
        done = await self._write_buffer()
        if self._writer is not None:
            assert self._decoded_end is not None
            done.append(await asyncio.to_thread(self._commit_open, self._decoded_end))
            self._pending_start = None
        return done

    async def _write_buffer(self) -> list[Committed]:
        if not self._values:
            return []
        values, offsets = self._values, self._offsets
        self._values, self._offsets, self._buffer_bytes = [], [], 0
        return await asyncio.to_thread(self._write_window, values, offsets)

    def _write_window(self, values: list[bytes], offsets: list[int]) -> list[Committed]:
        """Decode one window, drop replays, and write it; a change of ingest date or schema
        version commits the open file at that record first (blocking: runs in a thread)."""
        if self._pending_start is None:
            self._pending_start = offsets[0]
        prev_end, self._decoded_end = self._decoded_end, offsets[-1]
        win = decode_window(values, lambda v: dataset_features(self.dataset, self.features_for(self.dataset, v)))
        if len(win.positions) < len(values):
            bad = [offsets[i] for i in sorted(set(range(len(values))) - set(win.positions))]
            self.not_tier += len(bad)
            log.error("%s: %d message(s) are not tier messages and were skipped (offsets %s%s)", self.name, len(bad),
                      ", ".join(map(str, bad[:5])), ", ..." if len(bad) > 5 else "")
        done: list[Committed] = []
        for a, b in _runs(win):
            key = (_at(win.dates, a), _at(win.versions, a))
            at = win.positions[a]
            if self._writer is not None and self._key != key:
                end = offsets[at - 1] if at > 0 else prev_end
                assert end is not None
                # The footer's guard and last record are those of the rows before ``at``: the
                # guard is updated run by run, so it never claims rows of a later file.
                done.append(self._commit_open(end))
                self._pending_start = offsets[at]
            dup = replays(self.guard, *win.guard_columns(a, b))
            kept = range(a, b) if dup is None else [a + i for i, d in enumerate(dup) if not d]
            self.skipped += (b - a) - len(kept)
            raw_topic, raw_partition = _at(win.raw_key, b - 1).rsplit("|", 1)
            self.last = {"offset": offsets[win.positions[b - 1]], "source": [raw_topic, int(raw_partition),
                         _at(win.raw_offset, b - 1)], "ingested_at": _at(win.ingested_at, b - 1)}
            if not kept:
                continue
            if self._writer is None:
                self._open(key)
            assert self._writer is not None and self._schema is not None
            self._writer.write_table(win.lake_table(kept, self._features, self._schema))
            self._file_rows += len(kept)
        if self._writer is None:
            # Nothing open: every offset decoded so far is in a committed file, or was a replay.
            self.committed_next, self._pending_start = offsets[-1] + 1, None
        return done

    def _open(self, key: tuple[str, int | None]) -> None:
        date, version = key
        self._key = key
        self._features = dataset_features(self.dataset, self.features_for(self.dataset, version))
        self._schema = lake_schema(self._features, {"atlas.subject": self.dataset.subject, "atlas.schema_version": str(version)})
        name = f"{TMP_PREFIX}{self.topic}+{self.partition}+{self._pending_start}.{uuid.uuid4().hex[:12]}.parquet.tmp"
        if self.lake.staged:
            self.staging.mkdir(parents=True, exist_ok=True)
            self._tmp = self.staging / name
            self._sink = None
            self._writer = pq.ParquetWriter(str(self._tmp), self._schema, compression="snappy")
        else:
            self._tmp = f"{partition_dir(self.dataset.destination.path, self.tier, date)}/{name}"
            self._sink = self.lake.open_output(self._tmp)
            self._writer = pq.ParquetWriter(self._sink, self._schema, compression="snappy")
        self._file_rows = 0
        self._file_opened = time.monotonic()

    def _commit_open(self, end: int) -> Committed:
        """Rename the open file into the lake as holding offsets ``_pending_start..end`` (blocking)."""
        assert self._pending_start is not None and self._key is not None
        done = CommittedFile(self.topic, self.partition, self._pending_start, end, self.series)
        final = f"{partition_dir(self.dataset.destination.path, self.tier, self._key[0])}/{done.name}"
        nrows = self._file_rows
        self._close(final)
        metrics.SINK_COMMITS.labels("parquet", self.dataset.subject, self.tier).inc()
        metrics.SINK_ROWS.labels("parquet", self.dataset.subject, self.tier).inc(nrows)
        metrics.SINK_COMMIT_SECONDS.labels("parquet").observe(max(0.0, time.time() - self._first_seen))
        log.info("%s: committed %s (%d rows)", self.name, final, nrows)
        self.committed_next = end + 1
        self._key = None
        self._first_seen = time.time()
        return Committed(done, final, nrows)

    def _file_size(self) -> int:
        if self._sink is not None:
            return int(self._sink.tell())
        if isinstance(self._tmp, Path) and self._tmp.exists():
            return self._tmp.stat().st_size
        return 0

    def _close(self, final: str) -> None:
        assert self._writer is not None
        self._writer.add_key_value_metadata({META_KEY: orjson.dumps({"guard": self.guard, "last": self.last,
                                                                     "series": self.series}).decode()})
        self._writer.close()
        if self._sink is not None:
            self._sink.close()
        tmp, self._writer, self._sink, self._tmp = self._tmp, None, None, None
        if isinstance(tmp, Path):
            _retry_forever(lambda: self.lake.publish(tmp, final), self.name)
            tmp.unlink(missing_ok=True)
        else:
            assert isinstance(tmp, str)
            _retry_forever(lambda: self.lake.move(tmp, final), self.name)

    def discard(self) -> None:
        """Drop the open file and the buffer (partition revoked, or a failed write): the records
        are read again from the last committed offset."""
        writer, sink, tmp = self._writer, self._sink, self._tmp
        self._writer = self._sink = self._tmp = None
        self._values, self._offsets, self._buffer_bytes = [], [], 0
        self._pending_start = self._decoded_end = None
        self._key = None
        for closer in (writer, sink):
            try:
                if closer is not None:
                    closer.close()
            except Exception:  # noqa: BLE001 - best effort on a file being thrown away
                pass
        try:
            if isinstance(tmp, Path):
                tmp.unlink(missing_ok=True)
            elif tmp is not None:
                self.lake.delete(tmp)
        except Exception as exc:  # noqa: BLE001 - recovery deletes it later
            log.warning("%s: could not delete %s (%s); the next recovery deletes it", self.name, tmp, exc)

    @property
    def name(self) -> str:
        return f"parquet {self.topic}[{self.partition}]"


def _at(column: Any, i: int) -> Any:
    """Element ``i`` of an Arrow array or a list, as a Python value."""
    return column[i].as_py() if isinstance(column, pa.Array) else column[i]


def _runs(win: Window) -> list[tuple[int, int]]:
    """The tier messages of ``win`` cut where the ingest date or schema version changes: ranges
    ``[a, b)`` of indices into ``win.positions``."""
    n = len(win.positions)
    if not n:
        return []
    if isinstance(win.dates, pa.Array) and pc.count_distinct(win.dates).as_py() <= 1:
        return [(0, n)]  # the usual window: one date (and the fast path has one version)
    dates = win.dates.to_pylist() if isinstance(win.dates, pa.Array) else win.dates
    versions = win.versions.to_pylist() if isinstance(win.versions, pa.Array) else win.versions
    cuts = [i for i in range(1, n) if dates[i] != dates[i - 1] or versions[i] != versions[i - 1]]
    return list(zip([0, *cuts], [*cuts, n]))


def _retry_forever(op: Callable[[], None], who: str) -> None:
    """Run a commit step until it succeeds: nothing is acknowledged before it is written.
    A destination that already exists means an earlier attempt of this very step succeeded."""

    def attempt() -> None:
        try:
            op()
        except FileExistsError:
            log.warning("%s: the committed file already exists (an earlier attempt succeeded)", who)

    def failed(exc: BaseException, attempt: int, delay: float) -> None:
        metrics.SINK_ERRORS.labels("parquet").inc()
        log.error("%s: cannot commit to the lake (%s); retrying in %.1fs. Nothing is acknowledged "
                  "until it is written: check that the lake is reachable", who, exc, delay)

    retry_sync(attempt, retry_on=(LakeUnavailable, OSError), policy=COMMIT_RETRY, on_retry=failed)


class ParquetSink(TierSink):
    """The ``TierSink`` of the lake: one ``PartitionWriter`` per partition, files committed by
    rename. ``flush`` reports as safe only offsets in committed files (or replays); the committed
    names say where each partition resumes (``recovers``), so the router flushes it last."""

    name = "parquet"
    recovers = True

    def __init__(self, lake: Lake, limits: Limits, staging: Path, features_for: FeaturesFor) -> None:
        self.lake, self.limits, self.staging, self.features_for = lake, limits, staging, features_for
        self.writers: dict[TP, PartitionWriter] = {}

    def takes(self, route: Route) -> bool:
        return route.parquet

    async def assign(self, tp: TP, route: Route) -> Recovered:
        topic, partition = tp
        rec = await asyncio.to_thread(recover, self.lake, route.dataset.destination.path, route.tier, topic, partition,
                                      self.staging)
        self.writers[tp] = PartitionWriter(self.lake, route.dataset, route.tier, topic, partition, rec, self.limits,
                                           self.staging, self.features_for)
        log.info("parquet %s[%d]: recovered from %d committed file(s): series %d, next offset %s%s", topic, partition,
                 rec.files, rec.series, rec.next_offset,
                 f", {rec.removed_tmp} temporary file(s) deleted" if rec.removed_tmp else "")
        return Recovered(rec.next_offset, rec.last)

    def add(self, tp: TP, offset: int, value: bytes | None) -> bool:
        w = self.writers[tp]
        w.consume(offset, value)  # decoded with its window, on Arrow
        return w.due(time.monotonic())

    def due(self, now: float) -> list[TP]:
        return [tp for tp, w in self.writers.items() if w.due(now)]

    async def flush(self, tps: Collection[TP], *, commit: bool = False) -> Flushed:
        out = Flushed()
        for tp in tps:
            w = self.writers.get(tp)
            if w is None:
                continue
            for c in await (w.commit() if commit else w.flush()):
                out.committed.append((tp, {"sink": self.name, "tier": w.tier, "topic": tp[0], "partition": tp[1],
                                           "end": c.file.end, "rows": c.rows, "file": c.path}))
            safe = w.safe_next()
            if safe is not None:
                out.safe[tp] = safe
        return out

    async def restart(self, tp: TP, offset: int, after: int | None) -> int | None:
        w = self.writers[tp]
        w.restart_series(offset)
        log.warning("parquet %s[%d]: the topic's offsets started again (at %d, after %s): it was recreated. "
                    "Earlier files are kept; new files form series %d (named ...+<end>.s%d.parquet)",
                    tp[0], tp[1], offset, after, w.series, w.series)
        return w.safe_next()

    async def revoke(self, tps: Collection[TP]) -> None:
        for tp in tps:
            w = self.writers.pop(tp, None)
            if w is not None:
                await asyncio.to_thread(w.discard)

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
from typing import Any, Callable, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import metrics
from ..dtypes import CoercionError, coerce
from ..lake import CommittedFile, dataset_features, lake_schema, parse_committed_name, partition_dir, tier_dir
from ..model import Dataset, Feature
from .lakefs import Lake, LakeUnavailable

__all__ = ["Limits", "PartitionWriter", "Recovery", "TMP_PREFIX", "recover", "rows_to_table"]

log = logging.getLogger(__name__)

#: Temporary files start with this prefix (readers skip names starting with ``_``) and end with
#: ``.tmp`` (a ``*.parquet`` glob never matches them).
TMP_PREFIX = "_tmp."
META_KEY = "atlas.sink"


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
    """Tier messages -> an Arrow table of the lake schema."""
    records = [m.get("record") or {} for m in messages]
    cols: list[pa.Array] = []
    for f in features:
        cols.append(_column([r.get(f.name) for r in records], f, schema.field(f.name).type))
    quality = [m["quality"] for m in messages]
    source = [m["source"] for m in messages]
    cols.append(pa.array([q["tier"] for q in quality], pa.string()))
    cols.append(pa.array([q["score"] for q in quality], pa.float64()))
    cols.append(pa.array([list(q.get("failures") or ()) for q in quality], pa.list_(pa.string())))
    cols.append(pc.cast(pa.array([m.get("ingested_at") for m in messages], pa.string()), pa.timestamp("us", tz="UTC")))
    cols.append(pa.array([s["topic"] for s in source], pa.string()))
    cols.append(pa.array([s["partition"] for s in source], pa.int32()))
    cols.append(pa.array([s["offset"] for s in source], pa.int64()))
    return pa.Table.from_arrays(cols, schema=schema)


FeaturesFor = Callable[[Dataset, "int | None"], Sequence[Feature]]


class PartitionWriter:
    """Writes the records of one tier-topic partition to the lake.

    Call ``consume`` for every record in offset order (the caller filters replays), ``flush``
    when ``due``; ``commit`` renames the open file into the lake. Not thread-safe: the caller
    holds ``lock`` around every coroutine.
    """

    def __init__(self, lake: Lake, dataset: Dataset, tier: str, topic: str, partition: int, recovery: Recovery,
                 limits: Limits, staging: Path, features_for: FeaturesFor) -> None:
        self.lake, self.dataset, self.tier, self.topic, self.partition = lake, dataset, tier, topic, partition
        self.limits, self.staging, self.features_for = limits, staging, features_for
        self.lock = asyncio.Lock()
        self.series = recovery.series
        self.guard: dict[str, list[float]] = {k: list(v) for k, v in recovery.guard.items()}
        #: Offsets below this are in committed files or were replays: safe to commit to Kafka.
        self.committed_next: int | None = recovery.next_offset
        self.last: dict[str, Any] | None = recovery.last
        self._buffer: list[dict[str, Any]] = []
        self._buffer_bytes = 0
        self._window_started = 0.0
        self._pending_start: int | None = None  # first offset consumed since the last commit
        self._pending_end: int | None = None
        self._key: tuple[str, int | None] | None = None  # (ingest_date, schema version) of file+buffer
        self._writer: pq.ParquetWriter | None = None
        self._sink: Any = None
        self._tmp: str | Path | None = None
        self._schema: pa.Schema | None = None
        self._features: Sequence[Feature] = ()
        self._file_rows = 0
        self._file_opened = 0.0
        self._first_seen = 0.0
        self.skipped = 0
        self.last_file: str | None = None
        self.last_rows = 0

    # -- consuming -------------------------------------------------------------------------
    def is_replay(self, message: dict[str, Any]) -> bool:
        """True when this raw record was already written (the scoring agent emitted it twice)."""
        src = message.get("source") or {}
        key = f"{src.get('topic')}|{src.get('partition')}"
        offset, ts = src.get("offset", -1), float(src.get("timestamp") or 0)
        seen = self.guard.get(key)
        if seen is not None and offset <= seen[0]:
            if ts <= seen[1]:
                return True
            log.warning("%s: raw offsets of %s start again (offset %d after %d, newer timestamp): "
                        "a recreated raw topic; its records are written", self.name, key, offset, seen[0])
        self.guard[key] = [offset, max(ts, seen[1]) if seen and offset > seen[0] else ts]
        return False

    def rolls(self, message: dict[str, Any]) -> bool:
        """True when ``message`` cannot join the open file (other ingest date or schema version)."""
        return self._key is not None and self._key != _file_key(message)

    def consume(self, offset: int, message: dict[str, Any], nbytes: int) -> None:
        """Take the record at ``offset`` (call ``commit`` first when ``rolls`` says so)."""
        if self._pending_start is None:
            self._pending_start = offset
        self._pending_end = offset
        src = message.get("source") or {}
        self.last = {"offset": offset, "source": [src.get("topic"), src.get("partition"), src.get("offset")],
                     "ingested_at": message.get("ingested_at")}
        if self.is_replay(message):
            self.skipped += 1
            return
        if not self._buffer:
            self._window_started = time.monotonic()
            if self._writer is None:
                self._first_seen = time.time()
        self._key = _file_key(message)
        self._buffer.append(message)
        self._buffer_bytes += nbytes

    def skip(self, offset: int) -> None:
        """Cover ``offset`` without writing anything (a message that is not a tier message)."""
        if self._pending_start is None:
            self._pending_start = offset
        self._pending_end = offset
        self.skipped += 1

    def due(self, now: float) -> bool:
        lim = self.limits
        if self._buffer and (len(self._buffer) >= lim.flush_rows or self._buffer_bytes >= lim.flush_bytes
                             or now - self._window_started >= lim.flush_seconds):
            return True
        return self._writer is not None and now - self._file_opened >= lim.rotate_seconds

    @property
    def idle(self) -> bool:
        """Nothing buffered and no open file."""
        return not self._buffer and self._writer is None

    def safe_next(self) -> int | None:
        """The offset up to which Kafka may be told everything is written."""
        if self.idle and self._pending_end is not None:
            return self._pending_end + 1  # only replays since the last commit
        return self.committed_next

    # -- writing -----------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write the buffer as a row group; commit the file when it is big or old enough."""
        if self._buffer:
            rows, self._buffer, self._buffer_bytes = self._buffer, [], 0
            await asyncio.to_thread(self._write, rows)
        lim = self.limits
        if self._writer is not None and (self._file_rows >= lim.rotate_rows
                                         or self._file_size() >= lim.rotate_bytes
                                         or time.monotonic() - self._file_opened >= lim.rotate_seconds):
            await self.commit()
        elif self.idle:
            self._settle()

    async def commit(self) -> CommittedFile | None:
        """Flush, then rename the open file into the lake under its committed name."""
        if self._buffer:
            rows, self._buffer, self._buffer_bytes = self._buffer, [], 0
            await asyncio.to_thread(self._write, rows)
        if self._writer is None:
            self._settle()
            return None
        assert self._pending_start is not None and self._pending_end is not None and self._key is not None
        done = CommittedFile(self.topic, self.partition, self._pending_start, self._pending_end, self.series)
        final = f"{partition_dir(self.dataset.destination.path, self.tier, self._key[0])}/{done.name}"
        nrows = self._file_rows
        await asyncio.to_thread(self._close, final)
        metrics.SINK_COMMITS.labels("parquet", self.dataset.subject, self.tier).inc()
        metrics.SINK_ROWS.labels("parquet", self.dataset.subject, self.tier).inc(nrows)
        metrics.SINK_COMMIT_SECONDS.labels("parquet").observe(max(0.0, time.time() - self._first_seen))
        log.info("%s: committed %s (%d rows)", self.name, final, nrows)
        self.last_file, self.last_rows = final, nrows
        self.committed_next = done.end + 1
        self._pending_start = self._pending_end = None
        self._key = None
        return done

    def _settle(self) -> None:
        # Only replays since the last commit: they count as written.
        if self._pending_end is not None and not self._buffer and self._writer is None:
            self.committed_next = self._pending_end + 1
            self._pending_start = self._pending_end = None
            self._key = None

    def _write(self, rows: list[dict[str, Any]]) -> None:
        if self._writer is None:
            self._open(rows[0])
        assert self._writer is not None and self._schema is not None
        self._writer.write_table(rows_to_table(rows, self._features, self._schema))
        self._file_rows += len(rows)

    def _open(self, first: dict[str, Any]) -> None:
        version = (first.get("schema") or {}).get("version")
        self._features = dataset_features(self.dataset, self.features_for(self.dataset, version))
        self._schema = lake_schema(self._features, {"atlas.subject": self.dataset.subject, "atlas.schema_version": str(version)})
        date = _file_key(first)[0]
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
        self._buffer, self._buffer_bytes = [], 0
        self._pending_start = self._pending_end = None
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


def _file_key(message: dict[str, Any]) -> tuple[str, int | None]:
    return (str(message.get("ingested_at") or "")[:10], (message.get("schema") or {}).get("version"))


def _retry_forever(op: Callable[[], None], who: str) -> None:
    """Run a commit step until it succeeds: nothing is acknowledged before it is written.
    A destination that already exists means an earlier attempt of this very step succeeded."""
    delay = 0.5
    while True:
        try:
            op()
            return
        except FileExistsError:
            log.warning("%s: the committed file already exists (an earlier attempt succeeded)", who)
            return
        except (LakeUnavailable, OSError) as exc:
            metrics.SINK_ERRORS.labels("parquet").inc()
            log.error("%s: cannot commit to the lake (%s); retrying in %.1fs. Nothing is acknowledged "
                      "until it is written: check that the lake is reachable", who, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

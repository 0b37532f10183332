"""``python -m atlas_stream batch --ocs <group>``: score a contract's files or tables into the lake.

No broker is needed: batches are read, transformed and scored with the stream's semantics
(:class:`~atlas_stream.batch.arrow_quality.BatchScorer`) and written in the lake layout. With
``--to-kafka`` the rows are published to the raw topics instead (a backfill the stream scores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone
from typing import Any, Iterator, Protocol

import orjson

from ..contracts import contract_for_group
from ..errors import AtlasError, ConfigError
from ..messages import record_key
from ..model import Contract, Dataset, Tier
from ..settings import Settings, arrow_pool_chosen
from ..sinks.lakefs import LakeConfig
from ..topics import raw_topic
from .arrow_values import json_default
from .overlap import Overlapped
from .progress import Progress, Summary
from .readers import FileInput, RawBatch
from .records import records_from_columns
from .scoring import Scored, TierSplit, add_counts
from .writer import LakeWriter

__all__ = ["BATCH_KINDS", "run_batch", "run_id"]

BATCH_KINDS = ("fs", "rdbms")
#: Rows per batch for Parquet, JSON and databases when neither --fetch-size nor the contract says.
DEFAULT_ROWS = 50_000
#: Threads scoring batches while a reader thread reads and the main thread writes.
WORKERS = max(1, min(4, os.cpu_count() or 1))
#: Scored (or being scored) batches waiting for the main thread: with the one it writes and the
#: one the reader holds, ``WORKERS + 8`` batches in memory. While the main thread writes a row
#: group (128 Ki rows, every ~9 batches; 70 ms of CPU and more when the cores are shared) the
#: workers go on scoring: with room for only ``WORKERS + 1`` they stood idle a third of the time
#: (the bench's 3 M rows: 3.1 s instead of 3.6 s after start-up; 2 GB peak RSS +45 MB).
AHEAD = WORKERS + 6


class Input(Protocol):
    label: str
    total: int | None
    unit: str

    def batches(self) -> Iterator[RawBatch]: ...


def _contract(settings: Settings, group: str) -> Contract:
    return contract_for_group(settings.metadata_dir, group)


def _datasets(contract: Contract, name: str | None) -> list[Dataset]:
    chosen = [ds for ds in contract.datasets if name is None or ds.name == name]
    if not chosen:
        names = ", ".join(ds.name for ds in contract.datasets)
        raise ConfigError(f"contract {contract.group!r} has no dataset {name!r} (it has: {names})")
    return chosen


def _input(contract: Contract, ds: Dataset, settings: Settings, fetch_size: int | None) -> tuple[Input, str]:
    """The dataset's input and the text that identifies it across runs."""
    if contract.source_type == "rdbms":
        # SQLAlchemy is imported only for database contracts (start-up time of file runs).
        from ..sources.database.config import safe_url
        from .database import DatabaseInput

        db = DatabaseInput(contract, ds, fetch_size)
        return db, f"{safe_url(db.url)}|{db.label}"
    files = FileInput(contract, ds, settings, fetch_size or DEFAULT_ROWS)
    return files, ds.path


def run_batch(args: argparse.Namespace, settings: Settings) -> int:
    contract = _contract(settings, args.ocs)
    if contract.source_type not in BATCH_KINDS:
        raise ConfigError(f"contract {contract.group!r} has source_type {contract.source_type!r}: the batch "
                          f"command reads {' and '.join(BATCH_KINDS)} contracts")
    if args.fetch_size is not None and args.fetch_size < 1:
        raise ConfigError(f"--fetch-size {args.fetch_size}: must be at least 1")
    if args.max_rejected is not None and not 0 <= args.max_rejected <= 1:
        raise ConfigError(f"--max-rejected {args.max_rejected}: a share between 0 and 1 (0.05 is 5 %)")
    if args.engine == "spark" and args.to_kafka:
        raise ConfigError("--to-kafka publishes with the arrow engine only: drop --engine spark")
    datasets = _datasets(contract, args.dataset)
    if args.engine == "arrow":
        _jemalloc()
    started = datetime.now(timezone.utc)
    summary = Summary(contract.group, "kafka" if args.to_kafka else "lake")
    clock = time.monotonic()
    try:
        if args.engine == "spark":
            from .spark import run_spark

            run_spark(contract, datasets, settings, args.fetch_size, started, summary)
        for ds in datasets if args.engine == "arrow" else ():
            source, key = _input(contract, ds, settings, args.fetch_size)
            if args.to_kafka:
                asyncio.run(_publish(source, ds, settings, summary))
            else:
                _to_lake(source, key, ds, settings, started, summary)
    except KeyboardInterrupt:
        print("batch: interrupted; nothing of this run was committed to the lake", file=sys.stderr)
        return 130
    summary.seconds = time.monotonic() - clock
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(summary.text())
    return _rejected_check(summary, args.max_rejected)


def _jemalloc() -> None:
    """Arrow's jemalloc pool instead of its default (mimalloc) unless ``ARROW_DEFAULT_MEMORY_POOL``
    says otherwise: it hands freed pages back sooner (about 20 MB less peak RSS on the bench's
    3 M rows, at the same speed; buffers of Arrow's C++ internals stay in the default pool)."""
    import pyarrow as pa

    if arrow_pool_chosen():
        return
    try:
        pa.set_memory_pool(pa.jemalloc_memory_pool())
    except NotImplementedError:  # a pyarrow built without jemalloc
        pass


def _rejected_check(summary: Summary, limit: float | None) -> int:
    """3 (and a line on stderr) when a dataset's rejected share is above ``--max-rejected``."""
    if limit is None or summary.mode != "lake":
        return 0
    over = [(name, d["tiers"].get(Tier.REJECTED, 0) / d["rows"]) for name, d in summary.datasets.items() if d["rows"]]
    over = [(name, share) for name, share in over if share > limit]
    for name, share in over:
        print(f"batch: {summary.group}.{name}: {share:.1%} of the rows were rejected, above --max-rejected "
              f"{limit:.1%}", file=sys.stderr)
    return 3 if over else 0


def _count(summary: Summary, ds: Dataset, raw: RawBatch) -> dict[str, Any]:
    stats = summary.dataset(ds.name)
    stats["rows"] += raw.n
    stats["skipped"] += raw.skipped
    stats["problems"] += raw.problems[: max(0, 10 - len(stats["problems"]))]
    return stats


def run_id(started: datetime) -> str:
    return started.strftime("%Y%m%dT%H%M%S%fZ")


def _to_lake(source: Input, key: str, ds: Dataset, settings: Settings, started: datetime, summary: Summary) -> None:
    """Read, score and write one dataset. A reader thread reads the batches and hands them to a
    small scoring pool (pyarrow's CSV reader and kernels release the GIL) while this thread
    writes the scored ones (Parquet encoding releases it too), in input order; at most
    ``WORKERS + 8`` batches are in memory at a time (:class:`~.overlap.Overlapped`)."""
    split = TierSplit(ds, started)
    lake = LakeConfig.from_settings(settings).open()
    writer = LakeWriter(lake, ds, split.schema, key, run_id(started), started.date().isoformat())
    writer.check()
    progress = Progress(ds.subject, source.total, source.unit)

    def score(raw: RawBatch) -> Scored | None:
        scored = split.score(raw)
        raw.cols = {}  # the input's text is not needed any more while the batch waits for the writer
        return scored

    try:
        with Overlapped(source.batches(), score, WORKERS, AHEAD) as batches:
            for raw, scored in batches:
                stats = _count(summary, ds, raw)
                if scored is not None:
                    add_counts(stats, scored.tiers, scored.failures)
                    for tier, part in scored.parts:
                        writer.write(tier, part)
                progress.update(raw.n, raw.done, source.total)
        summary.dataset(ds.name)["files"] += writer.commit()
    except BaseException:
        writer.abort()
        raise
    finally:
        progress.close()


async def _publish(source: Input, ds: Dataset, settings: Settings, summary: Summary) -> None:
    from ..sources.interface import source_key_fields
    from ..sources.publisher import OutRecord, Publisher

    topic = raw_topic(ds.group, ds.name)
    keys = source_key_fields(ds)
    source_id = f"batch:{ds.group}.{ds.name}"
    publisher = Publisher(settings, client_id="atlas-batch")
    await publisher.start([topic])
    progress = Progress(f"{ds.subject} -> {topic}", source.total, source.unit)
    batches = source.batches()
    try:
        while True:
            raw = await asyncio.to_thread(next, batches, None)
            if raw is None:
                break
            _count(summary, ds, raw)
            offsets = raw.offsets if raw.offsets is not None else range(raw.first, raw.first + raw.n)
            out = []
            for rec, offset in zip(records_from_columns(raw.cols, raw.n), offsets):
                try:
                    value = orjson.dumps(rec, default=json_default)
                except TypeError as exc:
                    raise AtlasError(f"{raw.source} row {offset}: cannot be written as JSON: {exc}") from None
                out.append(OutRecord(topic, record_key(rec, keys), value, f"{raw.source}:{offset}"))
            if out:
                await publisher.publish_batch(out, source_id)
            progress.update(raw.n, raw.done, source.total)
    finally:
        progress.close()
        await publisher.stop()

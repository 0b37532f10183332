"""``python -m atlas_stream poll --ocs <group>``: run a contract's pollers until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from typing import IO

from ..contracts import contract_for_group
from ..contract_schema import json_path
from ..errors import BrokerUnavailable, ConfigError
from ..model import Contract
from ..settings import Settings
from ..topics import SOURCE_STATUS_TOPIC
from .base import Backoff, PolledSource, Publisher, SourceRunner, select_datasets, sleep_unless
from .file_options import FileOptions, landing_for
from .files import FileSource

__all__ = ["POLLED_KINDS", "TerminalProgress", "build_sources", "run_poller"]

log = logging.getLogger(__name__)

#: Source types of the contract schema that have no poller in this build yet.
#: source_type values the poll command reads; websocket/stream records arrive through the gateway.
POLLED_KINDS: tuple[str, ...] = ("fs", "rdbms", "api", "kafka")
_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


class TerminalProgress:
    """A line per file with the rows published: rewritten in place on a terminal, printed once
    when the file is done otherwise."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last = 0.0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def file_started(self, source: str, where: str) -> None:
        if self.tty:
            self._write(f"\r\x1b[K{source} {where}: reading")

    def file_progress(self, source: str, where: str, rows: int, dead: int) -> None:
        now = time.monotonic()
        if self.tty and now - self._last > 0.2:
            self._last = now
            self._write(f"\r\x1b[K{source} {where}: {rows} rows published, {dead} to the DLQ")

    def file_done(self, source: str, where: str, rows: int, dead: int, note: str) -> None:
        line = f"{source} {where}: {rows} rows published, {dead} to the DLQ ({note})"
        self._write(f"\r\x1b[K{line}\n" if self.tty else f"{line}\n")


def _contract(settings: Settings, group: str) -> Contract:
    return contract_for_group(settings.metadata_dir, group)


def build_sources(contract: Contract, settings: Settings, dataset: str | None = None, once: bool = False,
                  progress: TerminalProgress | None = None) -> list[tuple[PolledSource, float]]:
    """(source, poll interval) for every dataset of an ``fs`` contract (or only ``dataset``)."""
    datasets = select_datasets(contract, dataset)
    out: list[tuple[PolledSource, float]] = []
    for ds in datasets:
        index = contract.datasets.index(ds)
        options = FileOptions.from_contract(contract, ds, settings)
        landing = landing_for(ds.path, options.archive_dir, file=contract.file,
                              path_at=json_path(("dataset_config", index, "source", "path")),
                              archive_at=options.archive_at)
        out.append((FileSource(contract, ds, settings, options, landing, progress, once), options.poll_interval))
    return out


# REST API and Kafka pollers (their own modules; imported only when used)
REST_AND_KAFKA = ("api", "kafka")


def _rest_or_kafka_sources(kind: str, contract: Contract, settings: Settings,
                           dataset: str | None) -> list[tuple[PolledSource, float]]:
    if kind == "api":
        from .rest import build_rest_sources

        return build_rest_sources(contract, settings, dataset)
    from .kafka_source import build_kafka_sources

    return build_kafka_sources(contract, settings, dataset)


def run_poller(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of the ``poll`` command. Fatal configuration problems raise ConfigError (one
    line on stderr, exit 2); a broker that stays down makes ``--once`` give up after a minute."""
    logging.basicConfig(level=_LEVELS.get(settings.log_level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    contract = _contract(settings, args.ocs)
    kind = contract.source_type
    if kind not in POLLED_KINDS:
        print(f"error: contract {contract.group!r} has source_type {kind!r}: its records arrive through the "
              "gateway (python -m atlas_stream gateway); there is nothing to poll", file=sys.stderr)
        return 2
    if args.interval is not None and args.interval <= 0:
        raise ConfigError(f"--interval {args.interval}: must be positive")
    if kind in REST_AND_KAFKA:  # sources/rest.py, sources/kafka_source.py
        sources = _rest_or_kafka_sources(kind, contract, settings, args.dataset)
        if not sources:
            return 0  # every dataset is a Kafka topic consumed directly: checked and explained, nothing to copy
    elif kind == "rdbms":  # sources/database.py
        from .database import build_database_sources

        sources = build_database_sources(contract, settings, args.dataset)
    else:
        sources = build_sources(contract, settings, args.dataset, args.once, TerminalProgress())
    try:
        return asyncio.run(_run(sources, settings, args.once, args.interval))
    except KeyboardInterrupt:
        return 130


async def _run(sources: list[tuple[PolledSource, float]], settings: Settings, once: bool,
               interval: float | None) -> int:
    stop = asyncio.Event()
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # second Ctrl-C: stop now; the checkpoints keep everything exact
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    for source, _ in sources:
        await source.check()
    publisher = Publisher(settings)
    topics = [t for source, _ in sources for t in source.topics()] + [SOURCE_STATUS_TOPIC]
    await _start(publisher, topics, stop, once)
    try:
        if stop.is_set():
            return 0
        checkpoints = settings.data_dir / "checkpoints"
        runners = [SourceRunner(source, publisher, checkpoints, stop, once=once, interval=interval or every)
                   for source, every in sources]
        tasks = [asyncio.create_task(r.run(), name=r.source.source_id) for r in runners]
        done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        failed = [t for t in done if t.exception() is not None]
        if failed:
            stop.set()
            await asyncio.gather(*pending, return_exceptions=True)
            raise failed[0].exception()  # type: ignore[misc]
        return 0
    finally:
        await publisher.stop()


async def _start(publisher: Publisher, topics: list[str], stop: asyncio.Event, once: bool) -> None:
    backoff = Backoff()
    while not stop.is_set():
        try:
            await publisher.start(topics)
            return
        except BrokerUnavailable as exc:
            if once and backoff.failing_for() > 60:
                raise
            delay = backoff.next()
            log.warning("%s; retrying in %.1f s", exc, delay)
            await sleep_unless(stop, delay)

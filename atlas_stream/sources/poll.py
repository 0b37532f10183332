"""``python -m atlas_stream poll --ocs <group>``: run a contract's pollers until stopped."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from dataclasses import replace

from ..contracts import contract_for_group
from ..errors import BrokerUnavailable, ConfigError
from ..model import Contract
from ..settings import Settings
from ..topics import SOURCE_STATUS_TOPIC
from .interface import PolledSource
from .kinds import factory_for
from .publisher import Publisher
from .runner import SOURCE_RETRY, SourceRunner, sleep_unless

__all__ = ["run_poller"]

log = logging.getLogger(__name__)

_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


def _contract(settings: Settings, group: str) -> Contract:
    return contract_for_group(settings.metadata_dir, group)


def run_poller(args: argparse.Namespace, settings: Settings) -> int:
    """Entry point of the ``poll`` command. Fatal configuration problems raise ConfigError (one
    line on stderr, exit 2); a broker that stays down makes ``--once`` give up after a minute."""
    logging.basicConfig(level=_LEVELS.get(settings.log_level, logging.INFO), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    contract = _contract(settings, args.ocs)
    kind = contract.source_type
    build = factory_for(kind)
    if build is None:
        print(f"error: contract {contract.group!r} has source_type {kind!r}: its records arrive through the "
              "gateway (python -m atlas_stream gateway); there is nothing to poll", file=sys.stderr)
        return 2
    if args.interval is not None and args.interval <= 0:
        raise ConfigError(f"--interval {args.interval}: must be positive")
    sources = build(contract, settings, args.dataset, args.once)
    if not sources:
        return 0  # e.g. every dataset is a Kafka topic consumed directly: checked and explained, nothing to copy
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
    # --once gives up after a minute without a broker; a long-running poller waits for it.
    backoff = replace(SOURCE_RETRY, give_up_after=60.0 if once else None).backoff()
    while not stop.is_set():
        try:
            await publisher.start(topics)
            return
        except BrokerUnavailable as exc:
            if backoff.exhausted():
                raise
            delay = backoff.next()
            log.warning("%s; retrying in %.1f s", exc, delay)
            await sleep_unless(stop, delay)

"""The source interface: what a polled source is, what it yields, and what it promises.

Interfaces only (like bytewax's ``inputs.py``): the runner that drives a source is in
:mod:`.runner`, the kinds of source in the subpackages, chosen by ``source_type`` in :mod:`.kinds`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, AsyncGenerator, Callable, ClassVar, Literal

from ..errors import ConfigError
from ..messages import dlq_message
from ..model import Contract, Dataset
from ..settings import Settings
from ..topics import dlq_topic, raw_topic
from .publisher import HEADER_POSITION, HEADER_SOURCE, OutRecord

__all__ = [
    "HEADER_POSITION",
    "HEADER_SOURCE",
    "Batch",
    "DatasetSource",
    "OutRecord",
    "PolledSource",
    "SourceFactory",
    "SourceStatus",
    "dead_letter",
    "select_datasets",
    "source_key_fields",
]

log = logging.getLogger(__name__)

#: The ``state`` of a source status message (``atlas.sources.status``): ``running`` (reading or
#: serving), ``idle`` (caught up, waiting for the next poll), ``error`` (failing, being retried),
#: ``degraded`` (gateway: the broker refuses records), ``stopped`` (the final report).
SourceStatus = Literal["running", "idle", "error", "degraded", "stopped"]


@dataclass
class Batch:
    """Records to publish together, and the source position once they are durable.

    ``position`` is JSON the source understands (None means "from the start"). The runner fills
    ``sent_rows``/``sent_dead`` with what it actually published (records already published before
    a crash are skipped) before it asks the source for the next batch.
    """

    records: list[OutRecord]
    position: Any
    sent_rows: int = 0
    sent_dead: int = 0


def select_datasets(contract: Contract, dataset: str | None) -> list[Dataset]:
    """The contract's datasets, or only the one named (``poll --dataset``); ConfigError if unknown."""
    if dataset is None:
        return list(contract.datasets)
    chosen = [ds for ds in contract.datasets if ds.name == dataset]
    if not chosen:
        names = ", ".join(ds.name for ds in contract.datasets)
        raise ConfigError(f"contract {contract.group!r} has no dataset {dataset!r} (it has: {names})")
    return chosen


def dead_letter(dlq: str, dataset: str | None, source_id: str, position: str, error: str, raw: bytes,
                max_bytes: int, **where: Any) -> OutRecord:
    """A dead letter for input a source cannot turn into a record. ``where`` (file, line, row,
    table, ...) is added to the message's ``source`` next to the source id and position."""
    value = dlq_message(error, "source", {"source": source_id, "position": position, **where}, None, raw,
                        max_bytes, dataset=dataset)
    return OutRecord(dlq, None, value, position, dead=True)


class PolledSource(ABC):
    """A source read by polling: files now; database tables, REST APIs and Kafka later.

    Contract with :class:`SourceRunner`:
    - ``poll(position)`` is one pass: from ``position`` (None on the very first start) it yields
      :class:`Batch` objects until it has caught up, then returns.
    - The runner asks for the next batch only after the previous one is durable (acknowledged by
      the broker and checkpointed), so work that must follow durability (archiving a file,
      acknowledging upstream) goes right after a ``yield``.
    - Positions are deterministic: re-reading from a checkpointed position yields the same record
      under the same position string. Exactly-once publication rests on it.
    - Bad input never raises: it becomes a :func:`dead_letter`. Blocking I/O runs in threads.
    """

    kind: ClassVar[str] = "source"

    def __init__(self, source_id: str) -> None:
        self.source_id = source_id
        #: Set by the runner: report a problem that is not fatal (shown as ``last_error``).
        self.report: Callable[[str], None] = lambda message: log.warning("%s: %s", source_id, message)

    @abstractmethod
    def topics(self) -> list[str]:
        """Every topic the source writes (raw topics and dead-letter topic)."""

    @abstractmethod
    def poll(self, position: Any) -> AsyncGenerator[Batch, None]:
        """One pass over the source from ``position``."""

    async def check(self) -> None:
        """Raise SettingsError/ConfigError for what no retry can fix (wrong credentials), once at
        start; an unreachable source is not an error here. Default: nothing to check."""
        return None

    def lag(self) -> int | None:
        """How far behind the source is, in its own unit (None: unknown)."""
        return None


def source_key_fields(dataset: Dataset) -> tuple[str, ...]:
    """The contract's key fields as the source names them (renames undone): raw records are
    keyed before the worker transforms them. Derived keys cannot be computed here."""
    keys = list(dataset.key)
    for step in reversed(dataset.transformations):
        if step.op == "rename":
            back = {new: old for old, new in step.params["mapping"].items()}
            keys = [back.get(k, k) for k in keys]
    return tuple(keys)


class DatasetSource(PolledSource):
    """A polled source feeding one dataset: its raw topic, its group's DLQ, its key fields."""

    def __init__(self, prefix: str, contract: Contract, dataset: Dataset, settings: Settings) -> None:
        super().__init__(f"{prefix}:{contract.group}.{dataset.name}")
        self.contract = contract
        self.dataset = dataset
        self.raw_topic = raw_topic(contract.group, dataset.name)
        self.dlq = dlq_topic(contract.group)
        self.key_fields = source_key_fields(dataset)
        self.max_bytes = settings.max_message_bytes

    def topics(self) -> list[str]:
        return [self.raw_topic, self.dlq]


#: What a source kind's package exports as ``sources_for`` (see :mod:`.kinds`): (source, poll
#: interval in seconds) for every dataset of a contract, or only the one named; ``once`` is the
#: ``poll --once`` flag.
SourceFactory = Callable[[Contract, Settings, "str | None", bool], "list[tuple[PolledSource, float]]"]

"""The contract every tier sink implements (Parquet, Elasticsearch, ...), apart from the sinks."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..messages import DlqStage

if TYPE_CHECKING:
    from .router import Route

__all__ = ["Flushed", "Recovered", "RefusedRecord", "TP", "TierSink"]

#: A tier-topic partition: (topic, partition).
TP = tuple[str, int]


@dataclass(frozen=True)
class Recovered:
    """What a sink durably holds of a partition when it takes it.

    ``next_offset``: every offset below it is durably written (None: the sink cannot tell);
    ``last``: the last record it holds (``offset``, ``source`` [topic, partition, offset],
    ``ingested_at``), which lets the router check that the topic was not recreated since."""

    next_offset: int | None = None
    last: dict[str, Any] | None = None


@dataclass(frozen=True)
class RefusedRecord:
    """A record a sink will never take (e.g. a document Elasticsearch refused as bad): it goes to
    the dataset's dead-letter topic with ``reason``, then its offset counts as written."""

    tp: TP
    offset: int
    reason: str
    stage: DlqStage
    value: bytes | None


@dataclass
class Flushed:
    """What one ``flush`` made durable.

    ``safe``: per partition flushed, the offset below which everything the sink was given is
    durably written (partitions whose offset is not known yet are left out); ``refused``: records
    to dead-letter before those offsets are committed; ``committed``: (partition, detail) of what
    was committed, for the ``sink.commit`` event."""

    safe: dict[TP, int] = field(default_factory=dict)
    refused: list[RefusedRecord] = field(default_factory=list)
    committed: list[tuple[TP, dict[str, Any]]] = field(default_factory=list)


class TierSink(ABC):
    """One destination of tier messages (after quix-streams' ``BaseSink``).

    Life cycle: ``setup`` once; ``assign`` a partition before its first ``add``; ``add`` every
    record of the partition in offset order; ``flush`` when ``add`` or ``due`` says so; ``restart``
    when the topic's offsets started again; ``revoke`` partitions taken away; ``close`` at the end.

    Guarantees the router relies on:

    - **A failed flush acknowledges nothing.** ``flush`` either returns, and then every offset
      below each ``safe`` offset it reports is durably written (or in ``refused``), or raises and
      reports nothing: what it was given stays buffered or is read again from Kafka. The offset
      the router commits to Kafka is the minimum over the partition's sinks, so it never passes a
      record a sink has not durably written.
    - **Flush order.** The router flushes a partition's sinks in list order, and before it
      flushes a sink it flushes every sink listed before it. Sinks whose committed data says where
      the consumer resumes (``recovers``: the Parquet files, whose names give the next offset) come
      last, so the other sinks hold what was added before the flush began (Elasticsearch is
      flushed before a Parquet file is committed). A record that arrives while a flush of its
      partition runs waits for that flush to end, so it never reaches a later sink's flush
      without the earlier sinks'.
    - The router never runs two flushes of one sink's buffer at once: per partition when
      ``shared_buffer`` is False, for the whole sink when it is True (one bulk for all partitions).
    - ``add`` runs on the event loop and must not block; ``flush`` runs blocking I/O in a thread.
    """

    #: The sink's name in logs and events ("parquet", "elasticsearch").
    name: ClassVar[str]
    #: Its committed data says where the consumer resumes (``assign`` returns a position).
    recovers: ClassVar[bool] = False
    #: One buffer for every partition: ``flush`` sends all of it, whatever partitions it is asked for.
    shared_buffer: ClassVar[bool] = False

    async def setup(self) -> None:
        """Connect and prepare the destination (e.g. index templates); may raise ConfigError."""
        return None

    @abstractmethod
    def takes(self, route: Route) -> bool:
        """Does this sink take the records of ``route``'s tier topic?"""

    @abstractmethod
    async def assign(self, tp: TP, route: Route) -> Recovered:
        """Take partition ``tp``: recover what the destination already holds of it."""

    @abstractmethod
    def add(self, tp: TP, offset: int, value: bytes | None) -> bool:
        """Buffer the message at ``offset`` of ``tp``; True when ``tp`` should be flushed now."""

    @abstractmethod
    def due(self, now: float) -> Collection[TP]:
        """The partitions that should be flushed now (size or time window; ``now`` is monotonic)."""

    @abstractmethod
    async def flush(self, tps: Collection[TP], *, commit: bool = False) -> Flushed:
        """Write what is buffered for ``tps``; ``commit``: also close open files now (the
        partition restarts). See the class docstring for what a return and a raise mean."""

    @abstractmethod
    async def restart(self, tp: TP, offset: int, after: int | None) -> int | None:
        """The offsets of ``tp`` started again at ``offset`` (after ``after``): the topic was
        recreated. Called right after ``flush(commit=True)``; returns the new safe offset."""

    @abstractmethod
    async def revoke(self, tps: Collection[TP]) -> None:
        """Forget partitions taken away; what is buffered for them is dropped (the new owner
        reads it again from the committed offset)."""

    async def close(self) -> None:
        """Release connections. Buffered records are not written: ``flush`` first."""
        return None


"""The Kafka poller (``source_type: kafka``): an existing topic -> the dataset's raw topic, exactly once.

Each dataset names a topic in ``source.path``. Its JSON object values are copied to
``atlas.<group>.<dataset>.raw`` keyed by the contract's key fields; other values go to the
group's dead-letter topic with their topic, partition, offset and the reason. A record's
``atlas-pos`` is ``<topic>:<partition>:<offset>``; the position (JSON) is
``{"offsets": {"<partition>": <next offset>}, "next": <index of the partition read next>}``.
With ``source.consume_directly: true`` nothing is copied: the poller only checks the topic and
explains how the worker reads it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncGenerator

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from ...contract_schema import json_path
from ...errors import BrokerUnavailable, ConfigError, ContractError, RecordError, SettingsError
from ...kafka_admin import partitions_of
from ...kafka_security import KafkaSecurity, check_kafka, client_kwargs
from ...messages import decode_raw, dlq_message, record_key
from ...model import Contract, Dataset
from ...settings import Settings
from ...topics import raw_topic
from ..interface import Batch, DatasetSource, OutRecord, PolledSource

__all__ = ["KafkaConfig", "KafkaSource", "build_kafka_sources", "check_direct_topic"]

log = logging.getLogger(__name__)

_BROKER_ERRORS = (KafkaError, OSError, asyncio.TimeoutError)
#: A partition is left for the next pass when its position stops moving for this long short of the
#: end offset seen when the pass began (records removed by retention, only transaction markers left).
STALL_SECONDS = 10.0


def _servers(value: Any) -> list[str]:
    items = value.replace(";", ",").split(",") if isinstance(value, str) else list(value)
    return [str(s).strip().split("://", 1)[-1].rstrip("/") for s in items if str(s).strip()]


@dataclass(frozen=True)
class KafkaConfig:
    """A Kafka dataset's settings (``source_config`` defaults, ``source`` overrides)."""

    topic: str
    bootstrap: list[str]
    group_id: str
    batch_size: int = 500
    start: str = "earliest"
    consume_directly: bool = False
    poll_interval: float = 1.0
    #: the contract's ``security_protocol``, ``sasl_*`` and ``ssl_*`` keys when it names its own
    #: cluster; else ATLAS_KAFKA_* (the cluster of ATLAS_BROKER).
    security: KafkaSecurity = field(default_factory=KafkaSecurity)

    @classmethod
    def from_contract(cls, contract: Contract, dataset: Dataset, settings: Settings) -> "KafkaConfig":
        own, group = dict(dataset.source), dict(contract.source_config)
        index = contract.datasets.index(dataset)

        def get(key: str, default: Any) -> Any:
            return own.get(key, group.get(key, default))

        def fail(key: str, message: str) -> ContractError:
            loc = ("dataset_config", index, "source", key) if key in own else ("source_config", key)
            return ContractError(contract.file, json_path(loc), message)

        servers = get("bootstrap_servers", None)
        if servers is not None and (not isinstance(servers, (str, list)) or not _servers(servers)):
            raise fail("bootstrap_servers", "expected \"host:port,host:port\" or a list of host:port")
        group_id = get("group_id", f"atlas-source.{contract.group}.{dataset.name}")
        if not isinstance(group_id, str) or not group_id:
            raise fail("group_id", "expected a non-empty string")
        batch = get("batch_size", 500)
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise fail("batch_size", f"expected a whole number of at least 1, got {batch!r}")
        start = get("start", "earliest")
        if start not in ("earliest", "latest"):
            raise fail("start", f"expected earliest or latest, got {start!r}")
        direct = get("consume_directly", False)
        if not isinstance(direct, bool):
            raise fail("consume_directly", f"expected true or false, got {direct!r}")
        interval = get("poll_interval", 1.0)
        if isinstance(interval, bool) or not isinstance(interval, (int, float)) or interval <= 0:
            raise fail("poll_interval", f"expected a positive number of seconds, got {interval!r}")
        if not dataset.path.strip():
            raise ContractError(contract.file, json_path(("dataset_config", index, "source", "path")),
                                "the name of the Kafka topic to read")
        security = settings.kafka_security
        if servers is not None or any(get(key, None) is not None for key in _SECURITY_KEYS.values()):
            for key in _SECURITY_KEYS.values():
                value = get(key, None)
                if value is not None and not isinstance(value, str):
                    raise fail(key, f"expected a string (a ${{VAR}} placeholder for secrets), got {value!r}")
            names = {attr: f"{contract.file} " + json_path(
                         ("dataset_config", index, "source", key) if key in own else ("source_config", key))
                     for attr, key in _SECURITY_KEYS.items()}
            try:
                security = KafkaSecurity.build({attr: get(key, None) for attr, key in _SECURITY_KEYS.items()}, names)
            except SettingsError as exc:
                raise ContractError(contract.file, json_path(("source_config",)), str(exc)) from None
        return cls(topic=dataset.path.strip(), bootstrap=_servers(servers) if servers else settings.bootstrap_servers,
                   group_id=group_id, batch_size=batch, start=start, consume_directly=direct,
                   poll_interval=float(interval), security=security)


#: KafkaSecurity field -> contract key (``source_config`` or a dataset's ``source``).
_SECURITY_KEYS = {"protocol": "security_protocol", "sasl_mechanism": "sasl_mechanism",
                  "sasl_username": "sasl_username", "sasl_password": "sasl_password",
                  "ssl_cafile": "ssl_cafile", "ssl_certfile": "ssl_certfile", "ssl_keyfile": "ssl_keyfile"}


class KafkaSource(DatasetSource):
    """Copies one topic to a raw topic. Guarantee (with the runner): each source record lands once
    in the raw topic or the DLQ across any crash; the source consumer group's offsets are
    committed only after the records before them are acknowledged and checkpointed (they serve
    monitoring: the checkpoint is what a restart resumes from, the committed offset only when
    the checkpoint has no entry for a partition)."""

    kind = "kafka"

    def __init__(self, contract: Contract, dataset: Dataset, settings: Settings, config: KafkaConfig) -> None:
        super().__init__("kafka", contract, dataset, settings)
        self.config = config
        self._lag: int | None = None

    def lag(self) -> int | None:
        return self._lag

    async def check(self) -> None:
        await check_kafka(self.config.bootstrap, self.config.security)

    def _where(self) -> str:
        return f"topic {self.config.topic!r} on {','.join(self.config.bootstrap)}"

    async def poll(self, position: Any) -> AsyncGenerator[Batch, None]:
        saved = {int(p): int(o) for p, o in ((position or {}).get("offsets") or {}).items()}
        turn = int((position or {}).get("next", 0))
        cfg = self.config
        consumer = AIOKafkaConsumer(
            bootstrap_servers=cfg.bootstrap, client_id=f"atlas-{self.source_id}", group_id=cfg.group_id,
            enable_auto_commit=False, auto_offset_reset=cfg.start, isolation_level="read_committed",
            max_partition_fetch_bytes=2 * 1024 * 1024, **client_kwargs(cfg.security),
        )
        try:
            try:
                await consumer.start()
                tps = await self._assign(consumer, saved)
                ends = await consumer.end_offsets(tps)
                at = {tp: await consumer.position(tp) for tp in tps}
            except _BROKER_ERRORS as exc:
                raise BrokerUnavailable(f"{self._where()}: {type(exc).__name__}: {exc}") from None
            self._lag = sum(max(0, ends[tp] - at[tp]) for tp in tps)
            rows = dead = 0
            # Partitions take turns, one per batch, and the turn is part of the position (a
            # partition with nothing to read still takes its turn, as an empty batch). So the
            # first batch after a crash reads the same partition from the same offset as the batch
            # that was in flight, up to the same limit (batch_size, or the end offset, which only
            # grows): it holds every record that batch may have published, and the runner's
            # recovery skips those before the checkpoint can move past them.
            while any(at[tp] < ends[tp] for tp in tps):
                turn %= len(tps)
                tp = tps[turn]
                turn += 1
                messages = await self._read(consumer, tp, ends[tp]) if at[tp] < ends[tp] else []
                at[tp] = await consumer.position(tp)
                if not messages and at[tp] < ends[tp]:
                    log.info("%s: %s[%d] made no progress for %.0f s short of its end offset %d; it is left for "
                             "the next pass", self.source_id, tp.topic, tp.partition, STALL_SECONDS, ends[tp])
                    ends[tp] = at[tp]
                self._lag = sum(max(0, max(ends[t], consumer.highwater(t) or 0) - at[t]) for t in tps)
                batch = Batch([self._out(m) for m in messages],
                              {"offsets": {str(t.partition): o for t, o in at.items()}, "next": turn % len(tps)})
                yield batch
                rows, dead = rows + batch.sent_rows, dead + batch.sent_dead
                await self._commit(consumer, at)  # the batch is durable now
            if rows or dead:
                log.info("%s: pass done: %d record(s) published, %d to the DLQ; lag %s", self.source_id, rows,
                         dead, self._lag)
        finally:
            try:
                await asyncio.wait_for(consumer.stop(), 30)
            except Exception as exc:  # closing must not hide the error that led here
                log.debug("%s: closing the consumer: %r", self.source_id, exc)

    async def _read(self, consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> list[Any]:
        """Up to ``batch_size`` records of ``tp``, stopping only at that count or at ``end`` (or when
        the partition makes no progress for STALL_SECONDS: records removed meanwhile, or only
        transaction markers left)."""
        out: list[Any] = []
        moved_at = time.monotonic()
        try:
            while len(out) < self.config.batch_size and await consumer.position(tp) < end:
                got = await consumer.getmany(tp, timeout_ms=500, max_records=self.config.batch_size - len(out))
                messages = got.get(tp, [])
                if messages:
                    out.extend(messages)
                    moved_at = time.monotonic()
                elif time.monotonic() - moved_at > STALL_SECONDS:
                    break
        except _BROKER_ERRORS as exc:
            raise BrokerUnavailable(f"{self._where()}: {type(exc).__name__}: {exc}") from None
        return out

    async def _assign(self, consumer: AIOKafkaConsumer, saved: dict[int, int]) -> list[TopicPartition]:
        topic = self.config.topic
        parts = await partitions_of(consumer, topic)
        if not parts:
            raise ConfigError(f"{self.source_id}: {self._where()} does not exist (source.path names the topic "
                              "to copy; create it or fix the contract)")
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)  # no group membership: one poller per source (the runner's lock)
        for tp in tps:
            if tp.partition in saved:
                consumer.seek(tp, saved[tp.partition])
                continue
            committed = await consumer.committed(tp)
            if committed is not None:
                consumer.seek(tp, committed)
            elif self.config.start == "latest":
                await consumer.seek_to_end(tp)
            else:
                await consumer.seek_to_beginning(tp)
        return tps

    def _out(self, m: Any) -> OutRecord:
        position = f"{m.topic}:{m.partition}:{m.offset}"
        try:
            if m.value is not None and len(m.value) > self.max_bytes:
                raise RecordError(f"value of {len(m.value)} bytes is larger than ATLAS_MAX_MESSAGE_BYTES "
                                  f"({self.max_bytes})")
            record = decode_raw(m.value)
        except RecordError as exc:
            where = {"source": self.source_id, "position": position, "topic": m.topic, "partition": m.partition,
                     "offset": m.offset, "timestamp": m.timestamp}
            value = dlq_message(str(exc), "source", where, m.key, m.value, self.max_bytes, dataset=self.dataset.name)
            return OutRecord(self.dlq, None, value, position, dead=True)
        return OutRecord(self.raw_topic, record_key(record, self.key_fields), m.value, position)

    async def _commit(self, consumer: AIOKafkaConsumer, at: dict[TopicPartition, int]) -> None:
        try:
            await consumer.commit(dict(at))
        except _BROKER_ERRORS as exc:  # best effort: the checkpoint, not the group, is the truth
            log.warning("%s: committing offsets of group %r failed (%s: %s); the checkpoint keeps the position",
                        self.source_id, self.config.group_id, type(exc).__name__, exc)


async def check_direct_topic(config: KafkaConfig, raw: str, partitions: int) -> str:
    """For ``consume_directly``: check that the topic exists; returns what to tell the operator."""
    admin = AIOKafkaAdminClient(bootstrap_servers=config.bootstrap, **client_kwargs(config.security))
    try:
        await admin.start()
        # Listing first: describing a missing topic would make a broker that auto-creates topics create it.
        exists = config.topic in await admin.list_topics()
        topics = await admin.describe_topics([config.topic]) if exists else []
    except _BROKER_ERRORS as exc:
        raise BrokerUnavailable(f"Kafka at {','.join(config.bootstrap)}: {type(exc).__name__}: {exc}") from None
    finally:
        await admin.close()
    found = [t for t in topics if t.get("topic") == config.topic and not t.get("error_code")]
    if not found:
        raise ConfigError(f"consume_directly: topic {config.topic!r} does not exist on {','.join(config.bootstrap)}")
    count = len(found[0].get("partitions") or [])
    lines = [f"consume_directly: topic {config.topic!r} exists ({count} partitions); this poller copies nothing."]
    if config.topic != raw:
        lines.append(f"  The worker reads {raw!r}: have the producers write there (or mirror {config.topic!r} "
                     "into it), or drop consume_directly to let this poller copy the topic.")
    else:
        lines.append("  The worker reads it directly: run `python -m atlas_stream worker`.")
    if count != partitions:
        lines.append(f"  Warning: the worker's tables need {partitions} partitions (ATLAS_TOPIC_PARTITIONS) "
                     f"on its raw topics; this topic has {count}.")
    return "\n".join(lines)


def build_kafka_sources(contract: Contract, settings: Settings,
                        dataset: str | None = None) -> list[tuple[PolledSource, float]]:
    """(source, poll interval) for every dataset of a ``kafka`` contract (or only ``dataset``) that
    is copied; datasets consumed directly are checked and explained on stdout instead."""
    try:
        datasets = list(contract.datasets) if dataset is None else [contract.dataset(dataset)]
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    out: list[tuple[PolledSource, float]] = []
    for ds in datasets:
        config = KafkaConfig.from_contract(contract, ds, settings)
        if config.consume_directly:
            note = asyncio.run(check_direct_topic(config, raw_topic(contract.group, ds.name),
                                                  settings.topic_partitions))
            print(f"kafka:{contract.group}.{ds.name}: {note}", flush=True)
            continue
        out.append((KafkaSource(contract, ds, settings, config), config.poll_interval))
    return out

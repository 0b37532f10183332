"""Contracts at run time, and the per-message decision: raw bytes -> one tier topic or the DLQ."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from .contracts import load_contracts
from .errors import RecordError
from .messages import DlqStage, decode_raw, dlq_message, encode, record_key, tier_message
from .model import TIERS, Contract, Dataset, Feature, Tier
from .quality import DatasetScorer
from .schema_registry import fingerprint
from .topics import dlq_topic, raw_topic, tier_topic

__all__ = ["Catalog", "DatasetRuntime", "Outcome", "load_catalog"]

#: Longest unknown field name kept in drift statistics (hostile producers send anything).
MAX_DRIFT_FIELD = 100


@dataclass(frozen=True)
class Outcome:
    """Where one raw message goes. ``tier`` is None for dead letters."""

    topic: str
    key: bytes | None
    value: bytes
    tier: Tier | None
    failures: tuple[str, ...] = ()
    drift: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class DatasetRuntime:
    """One dataset's topics and scorers. Scorers are cached per registered schema version."""

    contract: Contract
    dataset: Dataset
    _scorers: dict[str, DatasetScorer] = field(default_factory=dict)

    def __post_init__(self) -> None:
        ds = self.dataset
        self.subject = ds.subject
        self.raw_topic = raw_topic(ds.group, ds.name)
        self.dlq_topic = dlq_topic(ds.group)
        self.tier_topics = {tier: tier_topic(ds.group, ds.name, tier) for tier in TIERS}
        self.contract_schema = [f.to_dict() for f in ds.schema]
        self.contract_scorer = DatasetScorer(
            ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values
        )
        self._scorers[fingerprint(self.contract_schema)] = self.contract_scorer

    def scorer(self, schema: Sequence[Mapping[str, Any]] | None) -> DatasetScorer:
        """Scorer for a registered schema version (the contract's own when None)."""
        if schema is None:
            return self.contract_scorer
        fp = fingerprint(list(schema))
        scorer = self._scorers.get(fp)
        if scorer is None:
            scorer = self.contract_scorer.with_schema(tuple(Feature.from_dict(f) for f in schema))
            self._scorers[fp] = scorer
        return scorer

    def process(
        self,
        value: bytes | None,
        key: bytes | None,
        source: Mapping[str, Any],
        registered: Mapping[str, Any] | None,
        max_bytes: int,
    ) -> Outcome:
        """Decide the fate of one raw message. Never raises for bad input.

        ``registered`` is the subject's latest accepted version from the schema registry
        (``{"version", "schema"}``), or None before the first registration is processed.
        """
        return self.process_many([(value, key, source)], registered, max_bytes)[0]

    def process_many(
        self,
        messages: Iterable[tuple[bytes | None, bytes | None, Mapping[str, Any]]],
        registered: Mapping[str, Any] | None,
        max_bytes: int,
    ) -> list[Outcome]:
        """:meth:`process` for a micro-batch of ``(value, key, source)``: one outcome per message,
        in order, each exactly what :meth:`process` gives for it alone (the scorer for the
        registered version is looked up once per batch, not once per message)."""
        schema = registered.get("schema") if registered else None
        version = registered.get("version") if registered else None
        scorer = self.scorer(schema)
        return [self._one(value, key, source, scorer, version, max_bytes) for value, key, source in messages]

    def _one(
        self, value: bytes | None, key: bytes | None, source: Mapping[str, Any], scorer: DatasetScorer,
        version: int | None, max_bytes: int,
    ) -> Outcome:
        try:
            raw = decode_raw(value)
        except RecordError as exc:
            return self._dead(str(exc), "decode", source, key, value, max_bytes)
        ingest_time = datetime.fromtimestamp(float(source["timestamp"]), tz=timezone.utc)
        try:
            scored = scorer.process(raw, ingest_time)
            message = encode(tier_message(scored, source, self.subject, version))
        except Exception as exc:  # a bug must not lose the record: dead-letter it with the reason
            return self._dead(f"scoring failed: {type(exc).__name__}: {exc}", "score", source, key, value, max_bytes)
        if len(message) > max_bytes:
            return self._dead(
                f"scored message of {len(message)} bytes exceeds ATLAS_MAX_MESSAGE_BYTES={max_bytes}",
                "publish", source, key, value, max_bytes,
            )
        tier = scored.report.tier
        out_key = record_key(scored.record, self.dataset.key) if self.dataset.key else key
        drift = tuple(name[:MAX_DRIFT_FIELD] for name in scored.extra)
        return Outcome(self.tier_topics[tier], out_key, message, tier, scored.report.failures, drift)

    def _dead(
        self, error: str, stage: DlqStage, source: Mapping[str, Any], key: bytes | None,
        value: bytes | None, max_bytes: int,
    ) -> Outcome:
        body = dlq_message(error, stage, source, key, value, max_bytes, dataset=self.dataset.name)
        return Outcome(self.dlq_topic, key, body, None, error=error)


@dataclass
class Catalog:
    """Every loaded contract, indexed by raw topic."""

    contracts: list[Contract]
    by_raw_topic: dict[str, DatasetRuntime]

    @property
    def datasets(self) -> list[DatasetRuntime]:
        return list(self.by_raw_topic.values())

    def output_topics(self) -> list[str]:
        names: list[str] = []
        for rt in self.by_raw_topic.values():
            names.extend(rt.tier_topics.values())
            if rt.dlq_topic not in names:
                names.append(rt.dlq_topic)
        return names


def load_catalog(metadata_dir: str | Any) -> Catalog:
    """Load and validate every contract (raises ContractError naming file and JSON path)."""
    contracts = load_contracts(metadata_dir)
    by_raw: dict[str, DatasetRuntime] = {}
    for contract in contracts:
        for ds in contract.datasets:
            rt = DatasetRuntime(contract, ds)
            by_raw[rt.raw_topic] = rt
    return Catalog(contracts, by_raw)

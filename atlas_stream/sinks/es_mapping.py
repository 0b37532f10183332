"""Elasticsearch naming, documents and index templates of the tier messages (pure: no client).

A document holds the record's features at the top level and the quality and lineage under
``atlas`` (``_tier``/``_score`` cannot be used: ``_tier`` is an Elasticsearch metadata field)::

    {<feature>: <value>, ...,
     "atlas": {"tier", "score", "failures", "passed", "counted", "ingested_at",
               "source": {"topic", "partition", "offset"}, "schema": {"subject", "version"},
               "extra"?, "invalid"?}}

Its ``_id`` is the raw position ``<raw topic>+<partition>+<offset>``, so a replay overwrites.
"""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any, Collection, Mapping

from ..errors import ConfigError
from ..lake import dataset_features
from ..model import TIERS, Dataset, DType

__all__ = [
    "ATLAS_FIELD",
    "TIME_FIELD",
    "document",
    "document_id",
    "field_mapping",
    "index_name",
    "index_prefix",
    "index_template",
    "message_index",
    "template_name",
]

#: The object that holds quality and lineage in every document.
ATLAS_FIELD = "atlas"
#: The time field of the indices (and of the Kibana data view).
TIME_FIELD = "atlas.ingested_at"

#: Elasticsearch metadata fields: a document that carries one at its root is refused.
_METADATA_FIELDS = frozenset({
    "_id", "_index", "_routing", "_source", "_size", "_ignored", "_ignored_source", "_tier",
    "_doc_count", "_field_names", "_seq_no", "_primary_term", "_version", "_nested_path",
    "_data_stream_timestamp", "_feature", "_meta", "_type", "_uid", "_parent", "_all",
})
#: Keyword terms longer than this are not indexed as keywords (Lucene refuses terms over 32766
#: bytes; 8191 characters of up to 4 UTF-8 bytes each always fit); the ``.text`` subfield still is.
KEYWORD_IGNORE_ABOVE = 8191
#: Decimals up to this precision are ``scaled_float`` (exact: value * 10**scale fits a long and
#: the value round-trips through a double); wider ones are ``double`` plus an ``exact`` keyword.
SCALED_FLOAT_MAX_PRECISION = 15

_TIMESTAMP = {"type": "date", "format": "strict_date_optional_time"}
_SIMPLE: dict[str, dict[str, Any]] = {
    "int": {"type": "long"},
    "bigint": {"type": "long"},
    "float": {"type": "double"},
    "double": {"type": "double"},
    "string": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE, "fields": {"text": {"type": "text"}}},
    "bool": {"type": "boolean"},
    "date": {"type": "date", "format": "strict_date"},
    "timestamp": _TIMESTAMP,
}
_ATLAS_MAPPING: dict[str, Any] = {
    "properties": {
        "tier": {"type": "keyword"},
        "score": {"type": "double"},
        "failures": {"type": "keyword"},
        "passed": {"type": "integer"},
        "counted": {"type": "integer"},
        "ingested_at": _TIMESTAMP,
        "source": {"properties": {
            "topic": {"type": "keyword"}, "partition": {"type": "integer"}, "offset": {"type": "long"},
        }},
        "schema": {"properties": {"subject": {"type": "keyword"}, "version": {"type": "integer"}}},
        # Kept in _source for the reader, never indexed: any shape is accepted, nothing refused.
        "extra": {"type": "object", "enabled": False},
        "invalid": {"type": "object", "enabled": False},
    },
}


def index_prefix(group: str, dataset: str) -> str:
    """``atlas-<group>-<dataset>-`` in lower case (index names must be lower case)."""
    return f"atlas-{group}-{dataset}-".lower()


def template_name(dataset: Dataset) -> str:
    return index_prefix(dataset.group, dataset.name).rstrip("-")


def index_name(group: str, dataset: str, tier: str, ingested_at: datetime | str) -> str:
    """``atlas-<group>-<dataset>-<tier>-YYYY.MM.DD``: the UTC date of ``ingested_at`` (a datetime
    or ISO text; naive means UTC), so a replayed record lands in the same index as the first time."""
    if isinstance(ingested_at, str):
        ingested_at = datetime.fromisoformat(ingested_at)
    if ingested_at.tzinfo is not None:
        ingested_at = ingested_at.astimezone(timezone.utc)
    return f"{index_prefix(group, dataset)}{tier.lower()}-{ingested_at:%Y.%m.%d}"


def message_index(message: Mapping[str, Any]) -> str:
    """The index of a decoded tier message (group and dataset from its schema subject)."""
    group, _, dataset = message["schema"]["subject"].partition(".")
    return index_name(group, dataset, message["quality"]["tier"], message["ingested_at"])


def document_id(source: Mapping[str, Any]) -> str:
    """``<raw topic>+<partition>+<offset>``: the raw record's position."""
    return f"{source['topic']}+{source['partition']}+{source['offset']}"


def document(message: Mapping[str, Any], features: Collection[str] | None = None) -> tuple[str, dict[str, Any]]:
    """``(_id, _source)`` of a decoded tier message. ``features`` narrows the record (pass the
    names of ``lake.dataset_features(dataset)`` to honour ``destination.features``)."""
    record = message["record"]
    if features is not None:
        record = {k: v for k, v in record.items() if k in features}
    quality, source, schema = message["quality"], message["source"], message["schema"]
    atlas: dict[str, Any] = {
        "tier": quality["tier"],
        "score": quality["score"],
        "failures": quality["failures"],
        "passed": quality["passed"],
        "counted": quality["counted"],
        "ingested_at": message["ingested_at"],
        "source": {"topic": source["topic"], "partition": source["partition"], "offset": source["offset"]},
        "schema": {"subject": schema["subject"], "version": schema["version"]},
    }
    for key in ("extra", "invalid"):
        if message.get(key):
            atlas[key] = message[key]
    doc = {k: v for k, v in record.items() if k != ATLAS_FIELD}
    doc[ATLAS_FIELD] = atlas
    return document_id(source), doc


def field_mapping(dtype: DType) -> dict[str, Any]:
    """The mapping of a feature of ``dtype`` (a fresh dict)."""
    if dtype.name == "decimal":
        assert dtype.precision is not None and dtype.scale is not None
        if dtype.precision <= SCALED_FLOAT_MAX_PRECISION:
            return {"type": "scaled_float", "scaling_factor": 10 ** dtype.scale}
        return {"type": "double", "fields": {"exact": {"type": "keyword"}}}
    mapping = dict(_SIMPLE[dtype.name])
    if "fields" in mapping:
        mapping["fields"] = {k: dict(v) for k, v in mapping["fields"].items()}
    return mapping


def _field_problem(name: str) -> str | None:
    if name == ATLAS_FIELD:
        return "is reserved for the quality and lineage object"
    if name in _METADATA_FIELDS:
        return "is an Elasticsearch metadata field"
    if not name.strip() or name.startswith(".") or name.endswith(".") or ".." in name:
        return "is not a valid Elasticsearch field name"
    return None


def _place(properties: dict[str, Any], name: str, mapping: dict[str, Any], where: str) -> None:
    # Elasticsearch reads a dot in a field name as an object path, in documents and mappings.
    *parents, leaf = name.split(".")
    node = properties
    for part in parents:
        child = node.setdefault(part, {"properties": {}})
        if "properties" not in child:
            raise ConfigError(f"{where}: feature {name!r} nests under {part!r}, which is a value field")
        node = child["properties"]
    if leaf in node:
        raise ConfigError(f"{where}: feature {name!r} collides with another feature's object path")
    node[leaf] = mapping


def index_template(dataset: Dataset) -> dict[str, Any]:
    """Composable index template body for the dataset's indices (``PUT _index_template/<name>``).

    One pattern per tier, ``atlas-<group>-<dataset>-<tier>-*``. The priority grows with the
    length of ``atlas-<group>-<dataset>-``: where two datasets' patterns overlap (dataset
    ``orders`` tier ``gold`` and dataset ``orders-gold``), one name is a prefix of the other,
    the longer one wins its own indices and Elasticsearch's same-priority overlap check passes.
    ``dynamic: false`` keeps an undeclared field in ``_source`` without indexing it, so only a
    value that contradicts its mapping is refused.
    """
    where = f"dataset {dataset.subject}"
    properties: dict[str, Any] = {}
    for feature in dataset_features(dataset):
        problem = _field_problem(feature.name)
        if problem:
            raise ConfigError(f"{where}: feature {feature.name!r} {problem}: rename it (a `rename` "
                              "transformation) to index the dataset in Elasticsearch")
        _place(properties, feature.name, field_mapping(feature.dtype), where)
    properties[ATLAS_FIELD] = copy.deepcopy(_ATLAS_MAPPING)
    prefix = index_prefix(dataset.group, dataset.name)
    return {
        "index_patterns": [f"{prefix}{tier}-*" for tier in TIERS],
        "priority": 100 + len(prefix),
        "template": {
            "mappings": {"dynamic": False, "date_detection": False, "properties": properties},
        },
        "_meta": {"managed_by": "atlas-stream", "subject": dataset.subject},
    }

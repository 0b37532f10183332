"""Kibana saved objects of a dataset: a data view over its indices and a tier-distribution pie.

Import the ndjson with ``POST /api/saved_objects/_import?overwrite=true`` (see
docs/elasticsearch.md). Ids are derived from the dataset, so importing again updates in place.
"""

from __future__ import annotations

import json
from typing import Any

from ..model import Dataset
from .es_mapping import TIME_FIELD, index_prefix

__all__ = ["data_view_id", "saved_objects", "visualization_id"]

_SEARCH_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def data_view_id(dataset: Dataset) -> str:
    return index_prefix(dataset.group, dataset.name).rstrip("-")


def visualization_id(dataset: Dataset) -> str:
    return f"{data_view_id(dataset)}-tiers"


def _compact(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True)


def saved_objects(dataset: Dataset) -> str:
    """ndjson: the data view (index pattern ``atlas-<group>-<dataset>-*``, time field
    ``atlas.ingested_at``), then a pie of the document count by ``atlas.tier`` that references it."""
    view_id = data_view_id(dataset)
    title = f"{dataset.subject} tiers"
    data_view = {
        "id": view_id,
        "type": "index-pattern",
        "attributes": {
            "title": f"{index_prefix(dataset.group, dataset.name)}*",
            "name": f"Atlas {dataset.subject}",
            "timeFieldName": TIME_FIELD,
        },
        "references": [],
        "migrationVersion": {"index-pattern": "7.11.0"},
    }
    vis_state = {
        "title": title,
        "type": "pie",
        "params": {
            "type": "pie", "addTooltip": True, "addLegend": True, "legendPosition": "right",
            "isDonut": True, "labels": {"show": True, "values": True, "last_level": True, "truncate": 100},
        },
        "aggs": [
            {"id": "1", "enabled": True, "type": "count", "schema": "metric", "params": {}},
            {"id": "2", "enabled": True, "type": "terms", "schema": "segment",
             "params": {"field": "atlas.tier", "size": 4, "order": "desc", "orderBy": "1",
                        "otherBucket": False, "missingBucket": False}},
        ],
    }
    search_source = {"query": {"query": "", "language": "kuery"}, "filter": [], "indexRefName": _SEARCH_REF}
    visualization = {
        "id": visualization_id(dataset),
        "type": "visualization",
        "attributes": {
            "title": title,
            "description": f"Documents of {dataset.subject} per quality tier",
            "visState": _compact(vis_state),
            "uiStateJSON": "{}",
            "version": 1,
            "kibanaSavedObjectMeta": {"searchSourceJSON": _compact(search_source)},
        },
        "references": [{"name": _SEARCH_REF, "type": "index-pattern", "id": view_id}],
        "migrationVersion": {"visualization": "7.10.0"},
    }
    return "".join(_compact(obj) + "\n" for obj in (data_view, visualization))

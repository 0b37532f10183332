"""The itest.orders dataset of tests/integration/contracts/itest.json: its topics, and the raw
records (one per expected outcome) that the stream, web and dashboard tests feed a worker."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

RAW = "atlas.itest.orders.raw"
#: Tier name -> tier topic.
TOPICS = {t: f"atlas.itest.orders.{t}" for t in ("gold", "silver", "bronze", "rejected")}
DLQ = "atlas.itest.dlq"
EVENTS = "atlas.events"


def now_iso(delta: timedelta = timedelta()) -> str:
    return (datetime.now(timezone.utc) + delta).isoformat()


def order_record(**fields: Any) -> dict[str, Any]:
    """A gold itest order; ``fields`` change it, and a field set to ``...`` is left out."""
    base = {"order_id": "O-1", "amount": 10.5, "quantity": 1, "currency": "USD", "note": "ok",
            "created_at": now_iso()}
    base.update(fields)
    return {k: v for k, v in base.items() if v is not ...}


# (name, raw value, expected topic, expected failures or DLQ error fragment)
CASES: list[tuple[str, bytes | None, str, Any]] = [
    ("gold", orjson.dumps(order_record(currency=" usd ")), "gold", []),
    ("silver_long_note", orjson.dumps(order_record(order_id="O-2", note="far too long a note")), "silver",
     ["max_length:note"]),
    ("silver_rule", orjson.dumps(order_record(order_id="O-3", amount=6000, quantity=1)), "silver",
     ["rule:big_orders_have_quantity"]),
    ("bronze", orjson.dumps(order_record(order_id="O-4", quantity="x", currency="JPY", note="far too long a note",
                                         created_at=now_iso(-timedelta(hours=2)), coupon="SPRING")),
     "bronze", ["type:quantity", "allowed:currency", "max_length:note", "schema", "freshness"]),
    ("rejected_missing_id", orjson.dumps(order_record(order_id=...)), "rejected", ["completeness:order_id"]),
    ("rejected_bool_amount", orjson.dumps(order_record(order_id="O-5", amount=True)), "rejected", ["type:amount"]),
    ("numeric_strings", orjson.dumps(order_record(order_id="O-6", amount="12.5", quantity="3")), "gold", []),
    ("nested_value", orjson.dumps(order_record(order_id="O-7", note={"a": [[[[{"b": 1}]]]]})), "silver",
     ["type:note"]),
    ("not_json", b"definitely not json", "dlq", "not valid JSON"),
    ("json_array", b'[{"order_id": "O-8"}]', "dlq", "JSON array"),
    ("json_scalar", b"42", "dlq", "JSON int"),
    ("tombstone", None, "dlq", "tombstone"),
    ("deep_nesting", b'{"order_id": "O-9", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}", "dlq", "nested"),
    ("one_mb_string", orjson.dumps(order_record(order_id="O-10", note="x" * 1_000_000)), "dlq",
     "ATLAS_MAX_MESSAGE_BYTES"),
]

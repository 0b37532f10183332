"""The schema changes the compatibility tests run under every mode, and the registry's verdict
for each (Confluent semantics): shared by test_schema_registry.py and test_schema_json.py."""

from __future__ import annotations

from typing import Any


def f(name: str, dtype: str, required: bool = False, **constraints: Any) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "required": required, **constraints}


V1 = [f("id", "int", True), f("amount", "double")]

# One previous version (V1); the same change under every mode.
CHANGES: dict[str, list[dict[str, Any]]] = {
    "add_optional": [*V1, f("note", "string")],
    "add_required": [*V1, f("note", "string", True)],
    "remove_optional": [f("id", "int", True)],
    "remove_required": [f("amount", "double")],
    "promote_int_to_bigint": [f("id", "bigint", True), f("amount", "double")],
    "narrow_double_to_float": [f("id", "int", True), f("amount", "float")],
}
OK = "registered"
NO = "refused"
#                          BACKWARD BACK_T FORWARD FORW_T FULL FULL_T NONE
EXPECTED: dict[str, tuple[str, ...]] = {
    "add_optional":          (OK, OK, OK, OK, OK, OK, OK),
    "add_required":          (NO, NO, OK, OK, NO, NO, OK),
    "remove_optional":       (OK, OK, OK, OK, OK, OK, OK),
    "remove_required":       (OK, OK, NO, NO, NO, NO, OK),
    "promote_int_to_bigint": (OK, OK, NO, NO, NO, NO, OK),
    "narrow_double_to_float": (NO, NO, OK, OK, NO, NO, OK),
}

"""Schema-registry rules: compatibility modes, versions, fingerprints (Confluent semantics)."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from typing import Any

import pytest

from atlas_stream.model import Feature, parse_dtype
from atlas_stream.schema_registry import (
    CONFIG_KEY,
    MODES,
    assign_schema_ids,
    can_read,
    check_compatibility,
    effective_mode,
    fingerprint,
    is_subject,
    get_version,
    latest,
    register,
    schema_ids,
    set_compatibility,
)

from .schema_changes import CHANGES, EXPECTED, NO, OK, V1, f

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
SUBJECT = "shop.orders"


def state_with(*schemas: list[dict[str, Any]], mode: str = "NONE") -> dict[str, Any]:
    """A subject holding ``schemas`` as versions 1..n (registered under NONE, then set to mode)."""
    state = None
    for schema in schemas:
        result = register(state, SUBJECT, schema, "NONE", NOW)
        assert result.outcome == "registered"
        state = result.state
    assert state is not None
    return set_compatibility(state, mode)


PROBLEMS: dict[tuple[str, str], str] = {
    ("add_required", "BACKWARD"): "field 'note': required by the new schema but missing from version 1",
    ("remove_required", "FORWARD"): "field 'id': required by version 1 but missing from the new schema",
    ("promote_int_to_bigint", "FORWARD"): "field 'id': type bigint cannot be read as int",
    ("narrow_double_to_float", "BACKWARD"): "field 'amount': type double cannot be read as float",
}


def test_modes_are_the_confluent_ones() -> None:
    assert MODES == ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE",
                     "FULL", "FULL_TRANSITIVE", "NONE")


@pytest.mark.parametrize("change", sorted(CHANGES))
@pytest.mark.parametrize("mode", MODES)
def test_one_change_under_every_mode(change: str, mode: str) -> None:
    state = state_with(V1, mode=mode)
    result = register(state, SUBJECT, CHANGES[change], None, NOW)
    expected = EXPECTED[change][MODES.index(mode)]
    assert result.outcome == expected, result.problems
    if expected == OK:
        assert result.version == 2 and result.problems == []
        assert latest(result.state)["schema"] == CHANGES[change]
    else:
        assert result.version == 1
        assert result.state == state
        assert result.problems


@pytest.mark.parametrize(("change", "mode"), sorted(PROBLEMS))
def test_problem_text_names_field_types_mode_and_version(change: str, mode: str) -> None:
    result = register(state_with(V1, mode=mode), SUBJECT, CHANGES[change], None, NOW)
    assert result.problems == [f"{PROBLEMS[change, mode]} ({mode} against version 1)"]


def test_full_reports_both_directions() -> None:
    # int -> string: neither direction can read the other
    result = register(state_with(V1, mode="FULL"), SUBJECT, [f("id", "string", True), f("amount", "double")],
                      None, NOW)
    assert result.problems == [
        "field 'id': type int cannot be read as string (FULL against version 1)",
        "field 'id': type string cannot be read as int (FULL against version 1)",
    ]


# Three versions where only the transitive modes see the problem with version 1.
BACKWARD_TRIPLE = (
    [f("id", "int", True)],
    [f("id", "int", True), f("email", "string")],
    [f("id", "int", True), f("email", "string", True)],
)
FORWARD_TRIPLE = (
    [f("id", "int", True), f("legacy", "string", True)],
    [f("id", "int", True), f("legacy", "string")],
    [f("id", "int", True)],
)


@pytest.mark.parametrize(("mode", "triple", "expected", "problem"), [
    ("BACKWARD", BACKWARD_TRIPLE, OK, None),
    ("BACKWARD_TRANSITIVE", BACKWARD_TRIPLE, NO,
     "field 'email': required by the new schema but missing from version 1 (BACKWARD_TRANSITIVE against version 1)"),
    ("FULL", BACKWARD_TRIPLE, OK, None),
    ("FULL_TRANSITIVE", BACKWARD_TRIPLE, NO,
     "field 'email': required by the new schema but missing from version 1 (FULL_TRANSITIVE against version 1)"),
    ("FORWARD", FORWARD_TRIPLE, OK, None),
    ("FORWARD_TRANSITIVE", FORWARD_TRIPLE, NO,
     "field 'legacy': required by version 1 but missing from the new schema (FORWARD_TRANSITIVE against version 1)"),
    ("FULL", FORWARD_TRIPLE, OK, None),
    ("FULL_TRANSITIVE", FORWARD_TRIPLE, NO,
     "field 'legacy': required by version 1 but missing from the new schema (FULL_TRANSITIVE against version 1)"),
    ("NONE", BACKWARD_TRIPLE, OK, None),
    ("NONE", FORWARD_TRIPLE, OK, None),
])
def test_transitive_modes_check_every_previous_version(
    mode: str, triple: tuple[list[dict[str, Any]], ...], expected: str, problem: str | None
) -> None:
    state = state_with(triple[0], triple[1], mode=mode)
    result = register(state, SUBJECT, triple[2], None, NOW)
    assert result.outcome == expected
    if expected == OK:
        assert result.version == 3 and [v["version"] for v in result.state["versions"]] == [1, 2, 3]
    else:
        assert result.problems == [problem]
        assert result.version == 2 and result.state == state


def test_none_accepts_anything() -> None:
    state = state_with(V1, mode="NONE")
    result = register(state, SUBJECT, [f("totally", "bool", True)], None, NOW)
    assert (result.outcome, result.version, result.problems) == ("registered", 2, [])


def test_first_version_is_always_registered_and_new_subject_follows_the_global_mode() -> None:
    result = register(None, SUBJECT, V1, None, NOW)
    assert result.outcome == "registered" and result.version == 1 and result.problems == []
    assert result.state == {
        "subject": SUBJECT,
        "versions": [{"version": 1, "id": fingerprint(V1), "schema_id": 1, "schema": V1,
                      "registered_at": NOW.isoformat()}],
    }
    assert effective_mode(result.state) == "BACKWARD" and effective_mode(result.state, "NONE") == "NONE"
    strict = register(None, SUBJECT, V1, "full_transitive", NOW)
    assert strict.outcome == "registered" and strict.state["compatibility"] == "FULL_TRANSITIVE"


def test_a_subject_without_its_own_mode_is_checked_under_the_global_one() -> None:
    first = register(None, SUBJECT, V1, None, NOW).state
    add_required = CHANGES["add_required"]
    assert register(first, SUBJECT, add_required, None, NOW).outcome == "refused"  # BACKWARD by default
    assert register(first, SUBJECT, add_required, None, NOW, default_mode="FORWARD").outcome == "registered"
    own = set_compatibility(first, "BACKWARD")
    assert register(own, SUBJECT, add_required, None, NOW, default_mode="NONE").outcome == "refused"


def test_schema_ids_are_given_once_and_shared_by_identical_schemas() -> None:
    a1 = register(None, "a.x", V1, None, NOW).state
    ids = schema_ids([a1])
    assert ids == {fingerprint(V1): 1}
    b1 = register(None, "b.y", V1, None, NOW, ids=ids).state  # same features elsewhere: same id
    assert b1["versions"][0]["schema_id"] == 1
    a2 = register(a1, "a.x", CHANGES["add_optional"], None, NOW, ids=schema_ids([a1, b1])).state
    assert [v["schema_id"] for v in a2["versions"]] == [1, 2]
    # Registering again changes nothing, ids included.
    again = register(a2, "a.x", CHANGES["add_optional"], None, NOW, ids=schema_ids([a2, b1]))
    assert again.outcome == "unchanged" and again.state == a2


def test_versions_stored_before_ids_get_them_in_subject_then_version_order() -> None:
    def old(state: dict[str, Any]) -> dict[str, Any]:
        state = copy.deepcopy(state)
        for v in state["versions"]:
            del v["schema_id"]
        return state

    b = old(state_with(V1, CHANGES["add_optional"]))
    a = old(register(None, "a.x", CHANGES["add_optional"], None, NOW).state)
    c = register(None, "c.z", [f("z", "bool")], None, NOW, ids={"elsewhere": 7}).state
    changed = assign_schema_ids({SUBJECT: b, "a.x": a, "c.z": c, CONFIG_KEY: {"compatibility": "FULL"}})
    assert set(changed) == {"a.x", SUBJECT}  # c.z already has its id; the config is no subject
    assert [v["schema_id"] for v in changed["a.x"]["versions"]] == [9]
    assert [v["schema_id"] for v in changed[SUBJECT]["versions"]] == [10, 9]
    assert "schema_id" not in a["versions"][0], "input untouched"
    assert assign_schema_ids({**changed, "c.z": c}) == {}
    assert is_subject("a.x") and not is_subject(CONFIG_KEY)


def test_identical_schema_is_unchanged_even_when_it_is_not_the_latest() -> None:
    v2 = CHANGES["add_optional"]
    state = state_with(V1, v2, mode="BACKWARD")
    again_latest = register(state, SUBJECT, copy.deepcopy(v2), None, NOW)
    assert (again_latest.outcome, again_latest.version) == ("unchanged", 2)
    old = register(state, SUBJECT, copy.deepcopy(V1), None, NOW)
    assert (old.outcome, old.version, old.problems) == ("unchanged", 1, [])
    assert old.state == state
    assert latest(old.state)["version"] == 2 and latest(old.state)["schema"] == v2


def test_refused_keeps_previous_latest_and_does_not_touch_the_input() -> None:
    state = state_with(V1, CHANGES["add_optional"], mode="BACKWARD")
    snapshot = copy.deepcopy(state)
    result = register(state, SUBJECT, [f("id", "string", True)], None, NOW)
    assert result.outcome == "refused" and result.version == 2
    assert result.problems == ["field 'id': type int cannot be read as string (BACKWARD against version 2)"]
    assert result.state == snapshot and state == snapshot
    assert latest(result.state)["schema"] == CHANGES["add_optional"]


def test_mode_argument_updates_the_stored_mode_before_checking() -> None:
    state = state_with(V1, mode="BACKWARD")
    loosened = register(state, SUBJECT, [f("id", "string", True)], "none", NOW)
    assert loosened.outcome == "registered" and loosened.state["compatibility"] == "NONE"
    kept = register(loosened.state, SUBJECT, [f("id", "bool", True)], None, NOW)
    assert kept.outcome == "registered" and kept.state["compatibility"] == "NONE"
    unchanged = register(state, SUBJECT, V1, "FULL", NOW)
    assert unchanged.outcome == "unchanged" and unchanged.state["compatibility"] == "FULL"
    assert state["compatibility"] == "BACKWARD"


@pytest.mark.parametrize(("writer", "reader", "ok"), [
    ("int", "int", True),
    ("int", "bigint", True),
    ("int", "float", True),
    ("int", "double", True),
    ("bigint", "float", True),
    ("bigint", "double", True),
    ("float", "double", True),
    ("bigint", "int", False),
    ("double", "float", False),
    ("float", "int", False),
    ("int", "string", False),
    ("string", "int", False),
    ("date", "timestamp", False),
    ("bool", "int", False),
    ("decimal(10,2)", "decimal(12,2)", True),
    ("decimal(10,2)", "decimal(11,3)", True),
    ("decimal(10,2)", "decimal(10,3)", False),  # one digit fewer before the point
    ("decimal(10,2)", "decimal(10,1)", False),  # scale shrinks
    ("int", "decimal(21,2)", True),
    ("bigint", "decimal(19,0)", True),
    ("int", "decimal(20,2)", False),
    ("decimal(5,0)", "int", False),
    ("decimal(5,2)", "double", False),
])
def test_type_promotions(writer: str, reader: str, ok: bool) -> None:
    problems = can_read([f("x", reader)], [f("x", writer)])
    assert problems == ([] if ok else [f"field 'x': type {writer} cannot be read as {reader}"])


def test_can_read_ignores_unknown_writer_fields_and_needs_missing_reader_fields_optional() -> None:
    writer = [f("a", "int", True), f("extra", "string", True)]
    assert can_read([f("a", "int", True), f("b", "string")], writer) == []
    assert can_read([f("a", "int", True), f("b", "string", True)], writer) == [
        "field 'b': required by the reader but missing from the writer"
    ]


def test_check_compatibility_with_no_previous_versions_and_bad_mode() -> None:
    assert check_compatibility(V1, [], "FULL") == []
    with pytest.raises(ValueError, match="BACKWARD_TRANSITIVE"):
        check_compatibility(V1, [V1], "SIDEWAYS")


def test_fingerprint_ignores_key_order_but_not_content_or_field_order() -> None:
    a = [{"name": "id", "dtype": "int", "required": True}, {"name": "b", "dtype": "string", "required": False}]
    shuffled = [{"required": True, "dtype": "int", "name": "id"}, {"dtype": "string", "required": False, "name": "b"}]
    assert fingerprint(a) == fingerprint(shuffled)
    assert len(fingerprint(a)) == 64
    assert fingerprint(a) != fingerprint(list(reversed(a)))
    assert fingerprint(a) != fingerprint([a[0], {**a[1], "max_length": 3}])


def test_features_are_accepted_as_schemas() -> None:
    features = [Feature("id", parse_dtype("integer"), required=True, min=1)]
    result = register(None, SUBJECT, features, None, NOW)
    assert latest(result.state)["schema"] == [{"name": "id", "dtype": "int", "required": True, "min": 1}]
    assert fingerprint(features) == fingerprint([{"name": "id", "dtype": "int", "required": True, "min": 1}])


def test_get_version_and_latest() -> None:
    state = state_with(V1, CHANGES["add_optional"])
    assert get_version(state, 1)["schema"] == V1
    assert get_version(state, "latest") == latest(state) == state["versions"][1]
    assert get_version(state, 3) is None
    assert latest(None) is None and get_version(None, "latest") is None
    assert latest({"subject": SUBJECT, "compatibility": "BACKWARD", "versions": []}) is None


def test_set_compatibility_validates_and_copies() -> None:
    state = state_with(V1, mode="BACKWARD")
    assert set_compatibility(state, "forward_transitive")["compatibility"] == "FORWARD_TRANSITIVE"
    assert state["compatibility"] == "BACKWARD"
    with pytest.raises(ValueError) as info:
        set_compatibility(state, "SIDEWAYS")
    assert "SIDEWAYS" in str(info.value)
    for mode in MODES:
        assert mode in str(info.value)


def test_register_refuses_an_unknown_mode() -> None:
    with pytest.raises(ValueError, match="unknown compatibility mode"):
        register(None, SUBJECT, V1, "SIDEWAYS", NOW)

"""Query parameters: defaults, typed values, and refusals that say why."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from atlas_stream.web.params import BadRequest, Param, parse_query

SPEC = {"limit": Param("int", 50, 1, 500), "source": Param("str", None, high=10)}


def _q(**kv: str) -> MultiDict[str]:
    return MultiDict(kv)


def test_query_defaults_and_values() -> None:
    assert parse_query(_q(), "", SPEC) == {"limit": 50, "source": None}
    assert parse_query(_q(limit="7", source="a"), "limit=7&source=a", SPEC) == {"limit": 7, "source": "a"}


@pytest.mark.parametrize("query, fragment", [
    (MultiDict([("limit", "0")]), "from 1 to 500"),
    (MultiDict([("limit", "-1")]), "whole number"),
    (MultiDict([("limit", "99999999999999999999")]), "whole number"),
    (MultiDict([("limit", "1"), ("limit", "2")]), "given 2 times"),
    (MultiDict([("evil", "1")]), "unknown query parameter"),
    (MultiDict([("source", "x" * 11)]), "longer than 10"),
    (MultiDict([("source", "a\x00b")]), "control characters"),
])
def test_query_refusals(query: MultiDict[str], fragment: str) -> None:
    with pytest.raises(BadRequest, match=fragment):
        parse_query(query, "x", SPEC)


def test_huge_query_string_is_refused_before_parsing() -> None:
    with pytest.raises(BadRequest, match="longer than 2048"):
        parse_query(_q(), "a" * 5000, SPEC)

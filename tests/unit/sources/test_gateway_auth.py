"""Gateway authentication and routing: who may connect where, decided at the handshake."""

from __future__ import annotations

from http import HTTPStatus
from pathlib import Path

import pytest

from atlas_stream.contracts import load_contracts
from atlas_stream.sources.gateway.auth import (
    GroupAuth,
    Refusal,
    check_token,
    group_auth,
    presented_token,
)
from atlas_stream.sources.gateway.routes import Route, RouteTable

ROOT = Path(__file__).resolve().parents[3]
CONTRACTS = ROOT / "tests" / "integration" / "contracts_gateway"
TOKEN = "t0ken-for-unit-tests"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return RouteTable(load_contracts(CONTRACTS, {"GW_TOKEN": TOKEN}), max_records=10_000)


def test_policy_comes_from_the_contract() -> None:
    assert group_auth("g", {"auth_token": "abc"}) == GroupAuth(token=b"abc")
    assert group_auth("g", {"auth": "none"}).open
    assert group_auth("g", {"auth": "NONE"}).open
    assert group_auth("g", {"auth_token": "abc", "auth": "none"}).token == b"abc"  # the token wins
    for config in ({}, {"auth": "token"}, {"auth": None}):
        problem = group_auth("g", config).problem
        assert problem is not None and "neither source_config.auth_token nor" in problem
    for config in ({"auth_token": ""}, {"auth_token": 42}):
        problem = group_auth("g", config).problem
        assert problem is not None and "empty or not a string" in problem


def test_the_token_never_shows_in_a_repr() -> None:
    assert "abc" not in repr(group_auth("g", {"auth_token": "abc"}))


@pytest.mark.parametrize(("authorization", "query", "expected"), [
    ("Bearer abc", None, "abc"),
    ("bearer   abc ", None, "abc"),
    (None, "abc", "abc"),
    ("Bearer abc", "other", "abc"),
    ("Basic dXNlcjpwYXNz", "abc", "abc"),
    ("Bearer ", None, None),
    (None, "", None),
    (None, None, None),
])
def test_the_token_is_a_bearer_header_or_a_query_parameter(authorization: str | None, query: str | None,
                                                           expected: str | None) -> None:
    assert presented_token(authorization, query) == expected


def test_token_check() -> None:
    auth = GroupAuth(token=b"abc")
    assert check_token("g", auth, "abc") is None
    assert check_token("g", auth, None) == Refusal(HTTPStatus.UNAUTHORIZED, check_token("g", auth, None).message)
    assert check_token("g", auth, "abd").status == HTTPStatus.FORBIDDEN
    assert check_token("g", auth, "ab").status == HTTPStatus.FORBIDDEN
    assert check_token("g", auth, "é").status == HTTPStatus.FORBIDDEN  # non-ASCII: no TypeError
    assert check_token("g", GroupAuth(open=True), None) is None
    refused = check_token("g", GroupAuth(problem="says neither"), TOKEN)
    assert refused == Refusal(HTTPStatus.FORBIDDEN, "says neither")


def test_only_websocket_and_stream_datasets_are_routes(table: RouteTable) -> None:
    assert {(r.group, r.dataset) for r in table.routes} == {
        ("gwsecure", "events"), ("gwsecure", "readings"), ("gwopen", "clicks"), ("gwnoauth", "things")}
    events = table.resolve(f"/ingest/gwsecure/events?token={TOKEN}", None)
    assert events == Route("gwsecure", "events", "atlas.gwsecure.events.raw", ("event_id",), 10_000)
    assert isinstance(events, Route) and events.source == "gateway:gwsecure.events"
    readings = table.resolve("/ingest/gwsecure/readings", f"Bearer {TOKEN}")
    assert isinstance(readings, Route) and readings.key == ("site", "sensor")
    assert isinstance(table.resolve("/ingest/gwopen/clicks", None), Route)
    things = next(r for r in table.routes if r.group == "gwnoauth")
    assert table.problem_of(things) is not None and table.problems() == [table.problem_of(things)]
    assert table.problem_of(readings) is None


@pytest.mark.parametrize(("path", "authorization", "status", "words"), [
    ("/ingest/gwsecure/events", None, 401, "needs a token"),
    ("/ingest/gwsecure/events?token=nope", None, 403, "wrong token"),
    ("/ingest/gwsecure/events", "Bearer nope", 403, "wrong token"),
    ("/ingest/gwsecure/nosuch", None, 401, "needs a token"),  # datasets stay hidden without the token
    (f"/ingest/gwsecure/nosuch?token={TOKEN}", None, 404, "unknown dataset 'nosuch' in group 'gwsecure'"),
    ("/ingest/nosuch/events", None, 404, "unknown group 'nosuch'"),
    ("/ingest/gwfiles/sales", None, 403, "source_type 'fs'"),
    ("/ingest/gwnoauth/things", None, 403, "neither source_config.auth_token nor"),
    ("/ingest/gwsecure", None, 404, "/ingest/<group>/<dataset>"),
    ("/healthz", None, 404, "/ingest/<group>/<dataset>"),
])
def test_refusals_say_why(table: RouteTable, path: str, authorization: str | None, status: int,
                          words: str) -> None:
    refusal = table.resolve(path, authorization)
    assert isinstance(refusal, Refusal)
    assert refusal.status == status and words in refusal.message
    assert TOKEN not in refusal.message


def test_a_group_max_batch_lowers_the_frame_limit() -> None:
    contracts = load_contracts(ROOT / "metadata", {})
    table = RouteTable(contracts, max_records=10_000)
    streaming = [r for r in table.routes if r.group == "ecommerce_transactions_streaming"]
    assert streaming and all(r.max_records == 500 for r in streaming)  # source_config.max_batch

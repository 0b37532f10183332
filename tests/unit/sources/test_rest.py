"""REST source: contract settings, records in responses, and page-to-page navigation (no network)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from atlas_stream.contracts import load_contract
from atlas_stream.errors import ContractError
from atlas_stream.model import Contract
from atlas_stream.settings import Settings
from atlas_stream.sources.rest.source import RestPosition, RestSource, build_rest_sources, records_of
from atlas_stream.sources.rest.config import PAGINATION_TYPES, RestConfig
from atlas_stream.sources.rest.pagination import PAGINATORS, BasePaginator, Page

TOKEN = "s3cret-token-value"
FEATURES = [{"name": "id", "dtype": "int", "required": True}]


def _contract(tmp_path: Path, config: dict[str, Any], **source: Any) -> Contract:
    doc = {
        "ocs_group_name": "shop",
        "source_type": "api",
        "source_config": config,
        "dataset_config": [{"source": {"name": "items", "path": source.pop("path", "/items"), "key": "id",
                                       "features": FEATURES, **source},
                            "destination": {"path": "shop/items"}}],
    }
    path = tmp_path / "shop.json"
    path.write_text(json.dumps(doc))
    return load_contract(path, {"API_TOKEN": TOKEN, "API_KEY": "k-123456"})


def _source(tmp_path: Path, config: dict[str, Any], **source: Any) -> RestSource:
    contract = _contract(tmp_path, config, **source)
    ds = contract.datasets[0]
    return RestSource(contract, ds, Settings(), RestConfig.from_contract(contract, ds))


def test_config_merges_source_config_and_dataset_settings(tmp_path: Path) -> None:
    source = _source(tmp_path, {"base_url": "https://api.test/v2/", "auth": {"type": "bearer", "token": "${API_TOKEN}"},
                                "headers": {"Accept": "application/json"}, "params": {"api_key": "${API_KEY}",
                                                                                      "region": "eu"},
                                "rate_limit": 5, "pagination": {"type": "page"}},
                     path="/items", params={"region": "us"}, pagination={"type": "offset", "limit": 50})
    cfg = source.config
    assert cfg.url == "https://api.test/v2/items"
    assert cfg.headers == {"Accept": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert cfg.params == {"api_key": "k-123456", "region": "us"}
    assert TOKEN in cfg.secrets and "k-123456" in cfg.secrets
    assert cfg.pagination.type == "offset" and cfg.pagination.size == 50 and cfg.pagination.size_param == "limit"
    assert cfg.rate_limit == 5 and cfg.max_retries == 5
    assert TOKEN not in repr(cfg)
    assert source.source_id == "api:shop.items" and source.topics() == ["atlas.shop.items.raw", "atlas.shop.dlq"]


def test_config_problems_name_the_file_and_json_path(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], dict[str, Any], str, str]] = [
        ({}, {}, "$.source_config.url", "required for source_type api"),
        ({"url": "ftp://x"}, {}, "$.source_config.url", "http:// or https://"),
        ({"url": "https://x"}, {"pagination": {"type": "pages"}}, "$.dataset_config[0].source.pagination",
         "type one of page, offset, cursor, link, none"),
        ({"url": "https://x", "pagination": {"type": "page", "limit": 5}}, {}, "$.source_config.pagination",
         "unknown key(s) 'limit' for page pagination"),
        ({"url": "https://x", "pagination": {"type": "offset", "limit": 0}}, {},
         "$.source_config.pagination.limit", "at least 1"),
        ({"url": "https://x", "auth": {"type": "bearer", "token": ""}}, {}, "$.source_config.auth.token",
         "non-empty string 'token'"),
        ({"url": "https://x", "since_param": "after"}, {}, "$.source_config.since_param", "needs since_field"),
        ({"url": "https://x", "max_retries": -1}, {}, "$.source_config.max_retries", "at least 0"),
        ({"url": "https://x", "headers": {"X-Key": 5}}, {}, "$.source_config.headers['X-Key']", "strings"),
    ]
    for config, source, where, message in cases:
        contract = _contract(tmp_path, config, **source)
        with pytest.raises(ContractError) as err:
            RestConfig.from_contract(contract, contract.datasets[0])
        assert err.value.json_path == where, (config, source, str(err.value))
        assert message in err.value.message and err.value.file.endswith("shop.json")


def test_records_are_found_at_the_path_or_in_the_usual_places() -> None:
    assert records_of([{"a": 1}], None) == [{"a": 1}]
    assert records_of({"data": [1]}, None) == [1]
    assert records_of({"meta": {}, "items": [2]}, None) == [2]
    assert records_of({"results": None}, None) == []
    assert records_of({"payload": {"rows": [3]}}, "payload.rows") == [3]
    assert records_of({"payload": {"rows": None}}, "payload.rows") == []
    assert records_of({"payload": {}}, "payload.rows") is None
    assert records_of({"count": 3}, None) is None
    assert records_of("text", None) is None


def _next(src: RestSource, request: dict[str, Any], doc: Any, links: list[str], url: str,
          count: int) -> dict[str, Any] | None:
    return src.paginator.get_next(Page(request, url, doc, links, count))


def test_every_pagination_type_has_one_paginator_class() -> None:
    assert set(PAGINATORS) == set(PAGINATION_TYPES)
    assert all(issubclass(cls, BasePaginator) and cls.type == name for name, cls in PAGINATORS.items())


def test_page_pagination_asks_for_the_next_page_until_a_short_one(tmp_path: Path) -> None:
    src = _source(tmp_path, {"url": "https://api.test", "pagination": {
        "type": "page", "param": "p", "size_param": "per_page", "size": 2, "start": 1}})
    first = src.paginator.first()
    assert src.paginator.url(first, None) == "https://api.test/items?p=1&per_page=2"
    assert _next(src, first, [1, 2], [], "", 2) == {"page": 2}
    assert _next(src, {"page": 2}, [1], [], "", 1) is None
    assert _next(src, {"page": 2}, [], [], "", 0) is None
    assert src._page_id(3, {"page": 2}) == "3/page=2"


def test_offset_and_cursor_pagination(tmp_path: Path) -> None:
    src = _source(tmp_path, {"url": "https://api.test", "pagination": {"type": "offset", "limit": 100}})
    assert src.paginator.url({"offset": 200}, None) == "https://api.test/items?offset=200&limit=100"
    assert _next(src, {"offset": 200}, [], [], "", 100) == {"offset": 300}
    assert _next(src, {"offset": 300}, [], [], "", 7) is None

    src = _source(tmp_path, {"url": "https://api.test", "since_param": "after", "since_field": "ts",
                             "pagination": {"type": "cursor", "cursor_path": "meta.next"}})
    assert src.paginator.url(src.paginator.first(), None) == "https://api.test/items"
    assert src.paginator.url({"cursor": "c2"}, "2024-01-01") == "https://api.test/items?after=2024-01-01&cursor=c2"
    assert _next(src, {"cursor": None}, {"meta": {"next": "c2"}}, [], "", 10) == {"cursor": "c2"}
    for doc in ({"meta": {"next": None}}, {"meta": {}}, {"meta": {"next": ""}}):
        assert _next(src, {"cursor": "c1"}, doc, [], "", 10) is None
    assert _next(src, {"cursor": "c2"}, {"meta": {"next": "c2"}}, [], "", 10) is None  # a cursor that stays put
    assert _next(src, {"cursor": None}, {"meta": {"next": "c2"}}, [], "", 0) is None
    assert src._page_id(0, {"cursor": None}) == "0/cursor=first"
    assert src._page_id(0, {"cursor": "secret-ish"}) != src._page_id(0, {"cursor": "other"})


def test_link_pagination_keeps_configured_parameters_out_of_the_checkpoint(tmp_path: Path) -> None:
    src = _source(tmp_path, {"url": "https://api.test", "params": {"api_key": "${API_KEY}"},
                             "pagination": {"type": "link"}})
    assert src.paginator.url(src.paginator.first(), None) == "https://api.test/items?api_key=k-123456"
    nxt = _next(src, {"url": None}, [], ['</items?page=2&api_key=k-123456>; rel="next"'],
                    "https://api.test/items?api_key=k-123456", 5)
    assert nxt == {"url": "https://api.test/items?page=2"}
    assert src.paginator.url(nxt, None) == "https://api.test/items?page=2&api_key=k-123456"
    assert _next(src, nxt, [], ['</items?page=2>; rel="next"'], "https://api.test/items?page=2", 5) is None
    assert _next(src, nxt, [], [], "https://api.test/items?page=2", 5) is None


def test_every_page_of_a_link_pass_has_its_own_positions(tmp_path: Path) -> None:
    """Item i of page 2 must not share the position of item i of page 1: recovery after a crash
    skips re-read records by position, and would skip another page's record."""
    src = _source(tmp_path, {"url": "https://api.test", "pagination": {"type": "link"}})
    first = src._page_id(0, src.paginator.first())
    second = src._page_id(0, {"url": "https://api.test/items?page=2"})
    third = src._page_id(0, {"url": "https://api.test/items?page=3"})
    assert first == "0/link=first"
    assert len({first, second, third}) == 3
    assert second == src._page_id(0, {"url": "https://api.test/items?page=2"})  # stable within a pass
    assert "page=2" not in second  # a digest: links may carry tokens


def test_refusals_name_the_url_without_secrets(tmp_path: Path) -> None:
    src = _source(tmp_path, {"url": "https://api.test", "params": {"key": "${API_KEY}"},
                             "auth": {"type": "bearer", "token": "${API_TOKEN}"}})
    text = src._refusal("https://api.test/items?key=k-123456&page=2", 401, "Unauthorized",
                        f"token {TOKEN} is not valid")
    assert text.startswith("GET https://api.test/items?key=***&page=2 answered 401 Unauthorized: check the credentials")
    assert TOKEN not in text and "k-123456" not in text


def test_positions_round_trip() -> None:
    pos = RestPosition(3, "2024-01-01", "2024-02-01", {"page": 4}, 17)
    assert RestPosition.load(json.loads(json.dumps(pos.dump()))) == pos
    assert RestPosition.load(None) == RestPosition()


def test_a_contract_wide_rate_limit_is_shared_by_its_datasets(tmp_path: Path) -> None:
    doc = {"ocs_group_name": "shop", "source_type": "api",
           "source_config": {"url": "https://api.test", "rate_limit": 4},
           "dataset_config": [{"source": {"name": name, "path": f"/{name}", "features": FEATURES, **extra},
                               "destination": {"path": f"shop/{name}"}}
                              for name, extra in (("a", {}), ("b", {}), ("c", {"rate_limit": 1}))]}
    (tmp_path / "shop.json").write_text(json.dumps(doc))
    sources = [s for s, _ in build_rest_sources(load_contract(tmp_path / "shop.json", {}), Settings())]
    a, b, c = (s for s in sources if isinstance(s, RestSource))
    assert a.limiter is not None and a.limiter is b.limiter and a.limiter.rate == 4
    assert c.limiter is not None and c.limiter is not a.limiter and c.limiter.rate == 1
    only = build_rest_sources(load_contract(tmp_path / "shop.json", {}), Settings(), "b")
    assert len(only) == 1 and only[0][0].source_id == "api:shop.b" and only[0][1] == 60.0

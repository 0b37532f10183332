"""REST source settings from a contract: ``source_config`` defaults, each dataset's ``source`` overrides."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Mapping
from urllib.parse import urlsplit

from ...contract_schema import json_path
from ...errors import ContractError
from ...model import Contract, Dataset
from ...placeholders import Filled

__all__ = ["PAGINATION_TYPES", "Pagination", "RestConfig"]

PAGINATION_TYPES = ("page", "offset", "cursor", "link", "none")
_PAGINATION_KEYS = {
    "page": ("param", "size_param", "size", "start"),
    "offset": ("param", "limit_param", "limit", "start"),
    "cursor": ("param", "cursor_path", "size_param", "size", "start"),
    "link": (),
    "none": (),
}
_AUTH_TYPES = ("none", "bearer", "basic", "header")


@dataclass(frozen=True)
class Pagination:
    """How pages are asked for. ``size`` is the page size (offset: ``limit``); a page with fewer
    items ends the pass. Without a size only an empty page ends it (page and offset types)."""

    type: str = "none"
    param: str = ""
    size_param: str | None = None
    size: int | None = None
    start: int = 0
    start_cursor: str | None = None
    cursor_path: str = "next_cursor"


@dataclass(frozen=True)
class RestConfig:
    """Everything a REST source needs. ``headers`` and ``secrets`` hold credentials: never log them."""

    file: str
    #: JSON path of ``records_path`` (where to set it when the records are not found).
    where: str
    url: str
    params: Mapping[str, Any] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets: frozenset[str] = field(default_factory=frozenset, repr=False)
    pagination: Pagination = field(default_factory=Pagination)
    records_path: str | None = None
    since_param: str | None = None
    since_field: str | None = None
    rate_limit: float | None = None
    max_retries: int = 5
    max_retry_after: float = 120.0
    timeout: float = 30.0
    poll_interval: float = 60.0
    backoff_first: float = 0.5
    backoff_cap: float = 30.0

    @classmethod
    def from_contract(cls, contract: Contract, dataset: Dataset) -> "RestConfig":
        """Validate and merge; problems raise ContractError naming the file and JSON path."""
        return _Reader(contract, dataset).config()


class _Reader:
    def __init__(self, contract: Contract, dataset: Dataset) -> None:
        self.file = contract.file
        self.group = dict(contract.source_config)
        self.own = dict(dataset.source)
        self.path = dataset.path
        self.index = contract.datasets.index(dataset)

    def loc(self, key: str, *more: Any) -> str:
        if key in self.own:
            return json_path(("dataset_config", self.index, "source", key, *more))
        return json_path(("source_config", key, *more))

    def fail(self, key: str, message: str, *more: Any) -> ContractError:
        return ContractError(self.file, self.loc(key, *more), message)

    def get(self, key: str, default: Any = None) -> Any:
        return self.own.get(key, self.group.get(key, default))

    def number(self, key: str, default: float | None, minimum: float, integer: bool = False) -> Any:
        value = self.get(key, default)
        if value is None:
            return None
        ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok or value < minimum:
            kind = "a whole number" if integer else "a number"
            raise self.fail(key, f"expected {kind} of at least {minimum}, got {value!r}")
        return value

    def text(self, key: str, default: str | None = None) -> str | None:
        value = self.get(key, default)
        if value is not None and (not isinstance(value, str) or not value):
            raise self.fail(key, f"expected a non-empty string, got {value!r}")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        """Group-level and dataset-level objects merged (the dataset's keys win)."""
        out: dict[str, Any] = {}
        for where in (self.group, self.own):
            value = where.get(key, {})
            if not isinstance(value, dict):
                raise ContractError(self.file, self.loc(key), f"expected an object, got {type(value).__name__}")
            out.update(value)
        return out

    def config(self) -> RestConfig:
        headers: dict[str, str] = {}
        for name, value in self.mapping("headers").items():
            if not isinstance(value, str):
                raise self.fail("headers", "header values must be strings", name)
            headers[name] = value
        params = self.mapping("params")
        for name, value in params.items():
            if isinstance(value, (dict, list)):
                raise self.fail("params", "query parameters must be strings, numbers or booleans", name)
        auth = self.auth()
        headers.update(auth)
        secrets = {v for v in headers.values()} | {v for v in params.values() if isinstance(v, Filled)}
        for value in auth.values():  # the token itself, not only "Bearer <token>"
            secrets.add(value.split(" ", 1)[-1])
        since_param, since_field = self.text("since_param"), self.text("since_field")
        if since_param and not since_field:
            raise self.fail("since_param", "needs since_field: the record field whose largest value is "
                                           "sent as since_param on the next pass")
        return RestConfig(
            file=self.file, where=self.loc("records_path"),
            url=self.url(), params=params, headers=headers, secrets=frozenset(s for s in secrets if s),
            pagination=self.pagination(), records_path=self.text("records_path"),
            since_param=since_param, since_field=since_field,
            rate_limit=self.number("rate_limit", None, 0.001),
            max_retries=self.number("max_retries", 5, 0, integer=True),
            max_retry_after=self.number("max_retry_after", 120.0, 0),
            timeout=self.number("timeout", 30.0, 0.1),
            poll_interval=self.number("poll_interval", 60.0, 0.01),
        )

    def url(self) -> str:
        key = "url" if self.get("url") is not None else "base_url"
        base = self.text(key)
        if base is None and not self.path.startswith(("http://", "https://")):
            raise ContractError(self.file, json_path(("source_config", "url")),
                                "required for source_type api: the API's base URL (http:// or https://)")
        if self.path.startswith(("http://", "https://")):
            url = self.path
        else:
            assert base is not None
            url = base.rstrip("/") + ("/" + self.path.lstrip("/") if self.path.strip("/") else "")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise self.fail(key, "expected an http:// or https:// URL")
        return url

    def auth(self) -> dict[str, str]:
        raw = self.get("auth")
        if raw is None or raw == "none":
            return {}
        if not isinstance(raw, dict) or raw.get("type", "bearer") not in _AUTH_TYPES:
            raise self.fail("auth", f"expected {{\"type\": one of {', '.join(_AUTH_TYPES)}, ...}}")
        kind = raw.get("type", "bearer")

        def need(name: str) -> str:
            value = raw.get(name)
            if not isinstance(value, str) or not value:
                raise self.fail("auth", f"{kind} authentication needs a non-empty string {name!r} "
                                        f"(e.g. \"${{API_TOKEN}}\" from the environment)", name)
            return value

        if kind == "bearer":
            return {"Authorization": f"Bearer {need('token')}"}
        if kind == "basic":
            pair = f"{need('username')}:{need('password')}".encode()
            return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
        if kind == "header":
            return {need("name"): need("value")}
        return {}

    def pagination(self) -> Pagination:
        raw = self.get("pagination")
        if raw is None:
            return Pagination()
        if not isinstance(raw, dict) or raw.get("type") not in PAGINATION_TYPES:
            raise self.fail("pagination", f"expected an object with type one of {', '.join(PAGINATION_TYPES)}")
        kind = raw["type"]
        unknown = sorted(set(raw) - {"type", *_PAGINATION_KEYS[kind]})
        if unknown:
            raise self.fail("pagination", f"unknown key(s) {', '.join(map(repr, unknown))} for {kind} pagination "
                                          f"(allowed: {', '.join(_PAGINATION_KEYS[kind]) or 'none'})")

        def text(name: str, default: str | None) -> str | None:
            value = raw.get(name, default)
            if value is not None and (not isinstance(value, str) or not value):
                raise self.fail("pagination", f"expected a non-empty string, got {value!r}", name)
            return value

        def whole(name: str, default: int | None, minimum: int) -> int | None:
            value = raw.get(name, default)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
                raise self.fail("pagination", f"expected a whole number of at least {minimum}, got {value!r}", name)
            return value

        if kind == "page":
            size_param, size = text("size_param", None), whole("size", None, 1)
            if size_param and size is None:
                raise self.fail("pagination", "size_param needs size: the page size to ask for", "size")
            return Pagination("page", text("param", "page") or "page", size_param, size, whole("start", 1, 0) or 0)
        if kind == "offset":
            return Pagination("offset", text("param", "offset") or "offset", text("limit_param", "limit"),
                              whole("limit", 100, 1), whole("start", 0, 0) or 0)
        if kind == "cursor":
            size_param, size = text("size_param", None), whole("size", None, 1)
            if size_param and size is None:
                raise self.fail("pagination", "size_param needs size: the page size to ask for", "size")
            start = raw.get("start")
            return Pagination("cursor", text("param", "cursor") or "cursor", size_param, size,
                              start_cursor=None if start is None else str(start),
                              cursor_path=text("cursor_path", "next_cursor") or "next_cursor")
        return Pagination(kind)

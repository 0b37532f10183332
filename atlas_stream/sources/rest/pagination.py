"""REST pagination styles, one small class each (the model: meltano singer_sdk ``pagination.py``).

A *request* says which page to ask for (``{"page": 3}``, ``{"offset": 200}``, ``{"cursor": "..."}``,
``{"url": "..."}``, ``{}``). It is JSON, because it is checkpointed in the source's position: a
restart asks for the same page again. :meth:`BasePaginator.get_next` reads a :class:`Page` that
was fetched and returns the request for the page after it, or None when it was the last one.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from .config import RestConfig
from .http import MISSING, lookup, next_link, with_params, without_params

__all__ = ["PAGINATORS", "BasePaginator", "CursorPaginator", "LinkPaginator", "NoPagination", "OffsetPaginator",
           "Page", "PagePaginator", "paginator_for"]


@dataclass(frozen=True)
class Page:
    """One page as fetched: how it was asked for, from where, its JSON body, its ``Link`` header
    values and how many items it held."""

    request: Mapping[str, Any]
    url: str
    doc: Any
    links: list[str]
    count: int


class BasePaginator(ABC):
    """A pagination style. Guarantees the REST source relies on: :meth:`first` and
    :meth:`get_next` are pure (the same page gives the same next request, so a re-read after a
    crash walks the same pages), and :meth:`page_id` is stable for a request within a pass (it
    names the page in every record's ``atlas-pos``)."""

    type: ClassVar[str]

    def __init__(self, config: RestConfig) -> None:
        self.config = config
        self.pagination = config.pagination

    @abstractmethod
    def first(self) -> dict[str, Any]:
        """The request for the first page of a pass."""

    @abstractmethod
    def get_next(self, page: Page) -> dict[str, Any] | None:
        """The request for the page after ``page``, or None when ``page`` is the last one."""

    def has_more(self, page: Page) -> bool:
        """Whether a page follows ``page``."""
        return self.get_next(page) is not None

    def url(self, request: Mapping[str, Any], since: Any) -> str:
        """The URL that asks for ``request``, with the contract's parameters and ``since``."""
        params = self._base_params(since)
        self.add_params(request, params)
        return with_params(self.config.url, params)

    def add_params(self, request: Mapping[str, Any], params: dict[str, Any]) -> None:
        """Add the query parameters that select the page (default: none)."""
        return None

    def page_id(self, request: Mapping[str, Any]) -> str:
        """The page's name in record positions (``<pass>/<page id>:<index>``)."""
        return f"page={request.get('page', 0)}"

    def first_index(self, request: Mapping[str, Any]) -> int:
        """The index in positions of the page's first item (offset paging counts across pages)."""
        return 0

    def _base_params(self, since: Any) -> dict[str, Any]:
        cfg = self.config
        params: dict[str, Any] = dict(cfg.params)
        if cfg.since_param and since is not None:
            params[cfg.since_param] = since
        return params

    def _full(self, page: Page) -> bool:
        """A page with items, and (when the page size is known) as many as asked for."""
        size = self.pagination.size
        return page.count > 0 and (size is None or page.count >= size)

    def _add_size(self, params: dict[str, Any]) -> None:
        if self.pagination.size_param:
            params[self.pagination.size_param] = self.pagination.size


class NoPagination(BasePaginator):
    """One request per pass: the endpoint returns everything at once."""

    type = "none"

    def first(self) -> dict[str, Any]:
        return {}

    def get_next(self, page: Page) -> dict[str, Any] | None:
        return None


class _NumberedPaginator(BasePaginator):
    """Styles that ask for a number (``?page=N``, ``?offset=N``), from ``start``, with the page size."""

    def first(self) -> dict[str, Any]:
        return {self.type: self.pagination.start}

    def add_params(self, request: Mapping[str, Any], params: dict[str, Any]) -> None:
        params[self.pagination.param] = request[self.type]
        self._add_size(params)


class PagePaginator(_NumberedPaginator):
    """``?page=N`` from ``start``, until a page that is not full."""

    type = "page"

    def get_next(self, page: Page) -> dict[str, Any] | None:
        return {"page": page.request["page"] + 1} if self._full(page) else None


class OffsetPaginator(_NumberedPaginator):
    """``?offset=N`` from ``start``, advanced by the items received, until a page that is not full."""

    type = "offset"

    def get_next(self, page: Page) -> dict[str, Any] | None:
        return {"offset": page.request["offset"] + page.count} if self._full(page) else None

    def page_id(self, request: Mapping[str, Any]) -> str:
        return "offset"  # the offset is in the item index instead

    def first_index(self, request: Mapping[str, Any]) -> int:
        return int(request["offset"])


def _digest_id(kind: str, text: str) -> str:
    # Cursors and links can be long or hold secrets: a digest identifies the page as well.
    return f"{kind}=" + (hashlib.sha256(text.encode()).hexdigest()[:20] if text else "first")


class CursorPaginator(BasePaginator):
    """``?cursor=...`` taken from ``cursor_path`` of each response, until it is missing, empty,
    repeated or the page is empty."""

    type = "cursor"

    def first(self) -> dict[str, Any]:
        return {"cursor": self.pagination.start_cursor}

    def add_params(self, request: Mapping[str, Any], params: dict[str, Any]) -> None:
        if request.get("cursor") is not None:
            params[self.pagination.param] = request["cursor"]
        self._add_size(params)

    def get_next(self, page: Page) -> dict[str, Any] | None:
        cursor = lookup(page.doc, self.pagination.cursor_path)
        if cursor is MISSING or cursor in (None, "") or page.count == 0 or cursor == page.request.get("cursor"):
            return None
        return {"cursor": cursor}

    def page_id(self, request: Mapping[str, Any]) -> str:
        return _digest_id("cursor", str(request.get("cursor") or ""))


class LinkPaginator(BasePaginator):
    """The ``Link: <...>; rel="next"`` response header (RFC 8288), until there is none or it
    repeats. The stored URL leaves out the contract's parameters; they are added back."""

    type = "link"

    def first(self) -> dict[str, Any]:
        return {"url": None}

    def url(self, request: Mapping[str, Any], since: Any) -> str:
        if request.get("url"):
            # The server's next link carries the page; add back what was stripped before saving it.
            return with_params(request["url"], self._base_params(since), replace=False)
        return super().url(request, since)

    def get_next(self, page: Page) -> dict[str, Any] | None:
        target = next_link(page.links, page.url)
        if target is None:
            return None
        cfg = self.config
        stored = without_params(target, [*cfg.params, *filter(None, [cfg.since_param])])
        return None if stored == page.request.get("url") else {"url": stored}

    def page_id(self, request: Mapping[str, Any]) -> str:
        # The stored next link names the page; the first page (no link yet) stays "link=first".
        # Until December 2026 this read a "link" key that link requests never hold, so every page
        # of a pass was "link=first": item i of page 2 had the position of item i of page 1, and
        # after a crash a recovered position of one page could hide another page's record. A
        # poller upgraded in the middle of a pass may publish again the one page it was on.
        return _digest_id("link", str(request.get("url") or ""))


#: ``pagination.type`` of the contract -> its class. A new style: one class plus one line.
PAGINATORS: dict[str, type[BasePaginator]] = {
    cls.type: cls for cls in (PagePaginator, OffsetPaginator, CursorPaginator, LinkPaginator, NoPagination)
}


def paginator_for(config: RestConfig) -> BasePaginator:
    """The paginator of ``config.pagination.type`` (validated by :class:`RestConfig`)."""
    return PAGINATORS[config.pagination.type](config)

"""The REST API poller (``source_type: api``): paginated GETs -> raw topics, exactly once.

Each dataset is one :class:`RestSource`. A pass pages through the endpoint from the checkpointed
position; every page is one batch, published and acknowledged before the position moves past it
(:class:`~atlas_stream.sources.runner.SourceRunner` does the publishing, checkpoints and recovery).
Position (JSON): ``{"pass", "since", "max_since", "request", "skip"}`` where ``request`` says which
page to ask for (``{"page": 3}``, ``{"offset": 200}``, ``{"cursor": "..."}``, ``{"url": "..."}``)
and ``skip`` how many of its items are already published. A record's ``atlas-pos`` is
``<pass>/<page id>:<index>``: the same record read again after a crash gets the same position.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from typing import Any, AsyncGenerator, Mapping

import aiohttp
import orjson

from ...errors import ConfigError, RetriableError
from ...messages import record_key
from ...model import Contract, Dataset
from ...retry import RetryPolicy
from ...settings import Settings
from ..checkpoint import format_position
from ..interface import Batch, DatasetSource, OutRecord, PolledSource, dead_letter
from .config import RestConfig
from .http import TokenBucket, lookup, retry_delay, safe_url
from .pagination import Page, paginator_for

__all__ = ["ApiRequestRefused", "RestPosition", "RestSource", "build_rest_sources", "records_of"]

log = logging.getLogger(__name__)

#: Keys tried, in order, when ``records_path`` is not set and the response is an object.
DEFAULT_RECORD_KEYS = ("data", "items", "results")


class ApiRequestRefused(ConfigError):
    """Fatal: the API answered a 4xx other than 429 (bad credentials, wrong path, bad parameter),
    or its answer does not hold records where the contract says. Fix the contract or the
    credentials, then poll again."""


@dataclass(frozen=True)
class RestPosition:
    """Where a REST source resumes (see the module docstring)."""

    pass_no: int = 0
    since: Any = None
    max_since: Any = None
    request: Mapping[str, Any] | None = None
    skip: int = 0

    @classmethod
    def load(cls, doc: Any) -> "RestPosition":
        if doc is None:
            return cls()
        return cls(pass_no=int(doc["pass"]), since=doc.get("since"), max_since=doc.get("max_since"),
                   request=doc.get("request"), skip=int(doc.get("skip", 0)))

    def dump(self) -> dict[str, Any]:
        return {"pass": self.pass_no, "since": self.since, "max_since": self.max_since,
                "request": dict(self.request) if self.request is not None else None, "skip": self.skip}


def records_of(doc: Any, records_path: str | None) -> list[Any] | None:
    """The list of records in a response: at ``records_path``, or the response itself when it is
    a list, or its first ``data``/``items``/``results`` list. A null there is an empty page; None
    means no list was found."""
    if records_path:
        found = lookup(doc, records_path)
        candidates = [found]
    elif isinstance(doc, list):
        return doc
    elif isinstance(doc, dict):
        candidates = [doc[k] for k in DEFAULT_RECORD_KEYS if k in doc]
    else:
        return None
    for found in candidates:
        if found is None:
            return []
        if isinstance(found, list):
            return found
    return None


def _newer(value: Any, than: Any) -> bool:
    """``value > than``, numerically for two numbers, else as text (ISO timestamps compare right
    as text when they share a format)."""
    if than is None:
        return True
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(than, numbers) and not isinstance(value, bool):
        return value > than
    return str(value) > str(than)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body)  # integers beyond 64 bits, lone surrogates; raises ValueError if not JSON


def _encode(item: Any) -> bytes:
    try:
        return orjson.dumps(item)
    except TypeError:  # integers beyond 64 bits
        return json.dumps(item, ensure_ascii=False).encode()


def _kind(value: Any) -> str:
    return "array" if isinstance(value, list) else "null" if value is None else type(value).__name__


class RestSource(DatasetSource):
    """One dataset of an ``api`` contract. Guarantee (with the runner): every item the API serves
    is published once, given that pages are stable (re-asking for a page returns the same items,
    new ones are appended) and, in incremental mode, that ``since_field`` grows."""

    kind = "api"

    def __init__(self, contract: Contract, dataset: Dataset, settings: Settings, config: RestConfig,
                 limiter: TokenBucket | None = None) -> None:
        super().__init__("api", contract, dataset, settings)
        self.config = config
        #: The contract-wide bucket when ``rate_limit`` is in source_config, else the dataset's own.
        self.limiter = limiter or (TokenBucket(config.rate_limit) if config.rate_limit else None)
        self.paginator = paginator_for(config)

    def _page_id(self, pass_no: int, request: Mapping[str, Any]) -> str:
        return f"{pass_no}/{self.paginator.page_id(request)}"

    # ------------------------------------------------------------------ one pass

    async def poll(self, position: Any) -> AsyncGenerator[Batch, None]:
        pos = RestPosition.load(position)
        request = pos.request if pos.request is not None else self.paginator.first()
        skip, max_since = pos.skip, pos.max_since
        pages = rows = dead = 0
        cfg = self.config
        timeout = aiohttp.ClientTimeout(total=cfg.timeout)
        async with aiohttp.ClientSession(timeout=timeout, headers=cfg.headers) as session:
            while True:
                url = self.paginator.url(request, pos.since)
                doc, links = await self._get(session, url)
                items = records_of(doc, cfg.records_path)
                if items is None:
                    where = f"records_path {cfg.records_path!r}" if cfg.records_path else \
                        f"the response (a JSON array, or a {'/'.join(DEFAULT_RECORD_KEYS)} key)"
                    raise ApiRequestRefused(f"GET {self._safe(url)}: no list of records at {where}; "
                                            f"set records_path ({cfg.file}: {cfg.where})")
                nxt = self.paginator.get_next(Page(request, url, doc, links, len(items)))
                page_id = self._page_id(pos.pass_no, request)
                base = self.paginator.first_index(request)
                records: list[OutRecord] = []
                for i in range(skip, len(items)):
                    item = items[i]
                    position_text = format_position(page_id, base + i)
                    if not isinstance(item, dict):
                        records.append(dead_letter(
                            self.dlq, self.dataset.name, self.source_id, position_text,
                            f"item {i} of the page is a JSON {_kind(item)}, expected an object", _encode(item),
                            self.max_bytes, url=self._safe(url), index=i))
                        continue
                    if cfg.since_field:
                        mark = item.get(cfg.since_field)
                        if mark is not None:
                            if not _newer(mark, pos.since):
                                continue  # the API includes the boundary: already published
                            if max_since is None or _newer(mark, max_since):
                                max_since = mark
                    value = _encode(item)
                    if len(value) > self.max_bytes:
                        records.append(dead_letter(
                            self.dlq, self.dataset.name, self.source_id, position_text,
                            f"item {i} of the page is {len(value)} bytes as JSON, more than ATLAS_MAX_MESSAGE_BYTES "
                            f"({self.max_bytes})", value, self.max_bytes, url=self._safe(url), index=i))
                        continue
                    records.append(OutRecord(self.raw_topic, record_key(item, self.key_fields), value, position_text))
                if nxt is not None:
                    pos = replace(pos, max_since=max_since, request=nxt, skip=0)
                    batch = Batch(records, pos.dump())
                    yield batch
                    pages, rows, dead = pages + 1, rows + batch.sent_rows, dead + batch.sent_dead
                    request, skip = nxt, 0
                    continue
                if cfg.since_field:
                    # Incremental: the next pass starts from the first page, for newer records only.
                    end = RestPosition(pos.pass_no + 1, max_since, max_since, None, 0)
                else:
                    # Stay on the last page: new items appended to it (or after it) are read next time.
                    end = RestPosition(pos.pass_no + 1, None, None, request, max(skip, len(items)))
                batch = Batch(records, end.dump())
                yield batch
                log.info("%s: pass %d done: %d page(s), %d record(s) published, %d to the DLQ", self.source_id,
                         pos.pass_no, pages + 1, rows + batch.sent_rows, dead + batch.sent_dead)
                return

    # ------------------------------------------------------------------ HTTP

    def _safe(self, url: str) -> str:
        return safe_url(url, self.config.secrets)

    async def _get(self, session: aiohttp.ClientSession, url: str) -> tuple[Any, list[str]]:
        """GET ``url`` -> (parsed JSON, Link header values). Retries 429, 5xx, timeouts and
        connection errors with backoff (honouring Retry-After) up to ``max_retries`` times, then
        raises RetriableError; any other 4xx raises ApiRequestRefused."""
        cfg = self.config
        backoff = RetryPolicy(first=cfg.backoff_first, cap=cfg.backoff_cap).backoff()
        attempt = 0
        while True:
            attempt += 1
            if self.limiter is not None:
                await self.limiter.acquire()
            hint: str | None = None
            try:
                async with session.get(url) as resp:
                    if 200 <= resp.status < 300:
                        body = await resp.read()
                        try:
                            doc = _parse_json(body)
                        except ValueError as exc:
                            problem = f"{resp.status} with a body that is not JSON ({exc})"
                        else:
                            return doc, resp.headers.getall("Link", [])
                    elif resp.status == 429 or resp.status >= 500:
                        problem = f"{resp.status} {resp.reason or ''}".strip()
                        hint = resp.headers.get("Retry-After")
                    else:
                        text = (await resp.text(errors="replace"))[:300]
                        raise ApiRequestRefused(self._refusal(url, resp.status, resp.reason, text))
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {self._scrub(str(exc))}".rstrip(": ")
            if attempt > cfg.max_retries:
                raise RetriableError(f"GET {self._safe(url)}: {problem} (gave up after {attempt} attempts)")
            delay = retry_delay(backoff, hint, cfg.max_retry_after)
            self.report(f"GET {self._safe(url)}: {problem}; retry {attempt} of {cfg.max_retries} in {delay:.1f} s")
            await asyncio.sleep(delay)

    def _refusal(self, url: str, status: int, reason: str | None, body: str) -> str:
        what = {401: "check the credentials (source_config.auth or headers)",
                403: "the credentials lack permission for this resource",
                404: "check source_config.url and the dataset's source.path"}.get(status, "check the request "
                                                                                      "parameters")
        detail = " ".join(self._scrub(body).split())
        return (f"GET {self._safe(url)} answered {status} {reason or ''}: {what}".replace("  ", " ")
                + (f"; the API said: {detail}" if detail else ""))

    def _scrub(self, text: str) -> str:
        for secret in self.config.secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text


def build_rest_sources(contract: Contract, settings: Settings,
                       dataset: str | None = None) -> list[tuple[PolledSource, float]]:
    """(source, poll interval) for every dataset of an ``api`` contract (or only ``dataset``)."""
    try:
        datasets = list(contract.datasets) if dataset is None else [contract.dataset(dataset)]
    except KeyError as exc:
        raise ConfigError(exc.args[0]) from None
    # A rate limit in source_config is the API's: one bucket shared by every dataset that does not
    # set its own.
    shared: TokenBucket | None = None
    out: list[tuple[PolledSource, float]] = []
    for ds in datasets:
        config = RestConfig.from_contract(contract, ds)
        limiter = None
        if config.rate_limit and "rate_limit" not in ds.source:
            shared = limiter = shared or TokenBucket(config.rate_limit)
        out.append((RestSource(contract, ds, settings, config, limiter), config.poll_interval))
    return out

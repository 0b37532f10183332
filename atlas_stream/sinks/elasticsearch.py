"""Elasticsearch sink: buffered bulk indexing of tier documents that retries until the server
takes every document or refuses it (see docs/elasticsearch.md).

Guarantees:

- ``flush()`` returns only once every buffered document is either indexed or refused; refused
  documents (a per-document 4xx other than 429) come back with the server's error for the DLQ.
- While the server is unreachable, overloaded (429) or failing (5xx), ``flush()`` keeps retrying
  with capped exponential backoff (forever unless ``max_retries`` is set). If it gives up or is
  cancelled, the whole batch stays buffered for the next ``flush()``.
- Acknowledge the source offsets only after ``flush()`` returned: the ``_id`` of a document is its
  raw position, so re-sending after a crash overwrites instead of duplicating.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Mapping, Sequence

import orjson

from .. import metrics
from ..dtypes import to_json_value
from ..errors import ConfigError, RetriableError
from ..model import Dataset
from ..lake import dataset_features
from ..redact import redact, redact_url
from ..retry import Backoff, RetryPolicy
from .base import TP, Flushed, Recovered, RefusedRecord, TierSink
from .es_mapping import document, index_name, index_template, message_index, template_name
from .tier_arrow import tier_message

if TYPE_CHECKING:
    from .router import Route

try:
    from elasticsearch import ApiError, AsyncElasticsearch, TransportError
    from elasticsearch.helpers import async_streaming_bulk
except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
    raise ImportError("the Elasticsearch sink needs `pip install 'elasticsearch[async]>=8.19,<9'`") from exc

__all__ = [
    "ElasticsearchSink",
    "ElasticsearchTierSink",
    "ElasticsearchUnavailable",
    "FlushResult",
    "connection_options",
    "Refused",
    "document",
    "index_name",
    "index_template",
    "message_index",
]

log = logging.getLogger(__name__)
SINK = "elasticsearch"


class ElasticsearchUnavailable(RetriableError):
    """Elasticsearch did not take the documents within ``max_retries`` attempts."""


@dataclass(frozen=True)
class Refused:
    """A document the server refused (per-document 4xx other than 429): send it to the DLQ."""

    id: str
    index: str
    status: int
    error_type: str
    reason: str
    position: Any
    body: bytes

    @property
    def error(self) -> str:
        """``<type>: <reason>``, the causes appended: what the DLQ entry should say."""
        return f"{self.error_type}: {self.reason}"

    @property
    def doc(self) -> dict[str, Any]:
        """The refused document, decoded."""
        return dict(orjson.loads(self.body))


@dataclass
class FlushResult:
    """``positions``: those of every document settled by this flush, in the order added (indexed
    or refused: acknowledge them once the refused ones are in the DLQ)."""

    indexed: int = 0
    refused: list[Refused] = field(default_factory=list)
    positions: list[Any] = field(default_factory=list)
    attempts: int = 0


@dataclass
class _Doc:
    id: str
    index: str
    body: bytes
    position: Any
    labels: tuple[str, str]  # (dataset subject, tier) for the metrics

    @property
    def nbytes(self) -> int:
        return len(self.body) + len(self.index) + len(self.id) + 32  # + the action line


def _reason(error: Any) -> tuple[str, str]:
    if not isinstance(error, Mapping):
        return "error", str(error)
    text = str(error.get("reason", ""))
    cause = error.get("caused_by")
    while isinstance(cause, Mapping):
        text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        cause = cause.get("caused_by")
    return str(error.get("type", "error")), text


class ElasticsearchSink:
    """Buffers documents (``add``) and indexes them in bulk (``flush``) when ``due()``: after
    ``max_docs`` documents, ``max_bytes`` bytes or ``linger_seconds`` since the first one.

    ``on_error(message, attempt, delay)`` is called for every failed attempt before sleeping.
    """

    def __init__(
        self,
        url: str | Sequence[str] | None,
        *,
        max_docs: int = 500,
        max_bytes: int = 5 * 1024 * 1024,
        linger_seconds: float = 1.0,
        max_retries: int | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        request_timeout: float = 30.0,
        on_error: Callable[[str, int, float], None] | None = None,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        options = dict(client_options or {})
        urls = [url] if isinstance(url, str) else list(url or [])
        basic = options.get("basic_auth")
        api_key = options.get("api_key")
        # Never shown: every log line, exception and on_error problem passes through _redact.
        self._secrets = [*(s for u in urls for s in _url_secrets(u)), basic[1] if isinstance(basic, tuple) else None,
                         api_key if isinstance(api_key, str) else None]
        #: where the documents go, for messages: URLs without their password, or the cloud id
        self.url = ", ".join(redact_url(u) for u in urls) or f"Elastic Cloud {options.get('cloud_id')}"
        self.max_docs = max_docs
        self.max_bytes = max_bytes
        self.linger_seconds = linger_seconds
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_policy = RetryPolicy(first=backoff_base, cap=backoff_max)
        self.on_error = on_error
        # The client's own retries are off: every attempt goes through _failed (log, metric, backoff).
        self.client = AsyncElasticsearch(urls or None, max_retries=0, retry_on_timeout=False,
                                         request_timeout=request_timeout, **options)
        self._buffer: list[_Doc] = []
        self._bytes = 0
        self._first_at: float | None = None

    def add(self, id: str, index: str, doc: Mapping[str, Any], position: Any = None) -> None:
        """Buffer one document; ``position`` is returned by the flush that settles it."""
        atlas = doc.get("atlas") or {}
        subject = (atlas.get("schema") or {}).get("subject") or ""
        item = _Doc(id, index, orjson.dumps(doc, default=to_json_value), position, (subject, atlas.get("tier") or ""))
        self._push([item])

    def add_message(self, message: Mapping[str, Any], position: Any = None, features: Iterable[str] | None = None) -> None:
        """``add`` a decoded tier message under its ``_id`` and daily index."""
        doc_id, doc = document(message, None if features is None else frozenset(features))
        self.add(doc_id, message_index(message), doc, position)

    def _push(self, items: list[_Doc], front: bool = False) -> None:
        if not items:
            return
        if not self._buffer:
            self._first_at = time.monotonic()
        self._buffer = items + self._buffer if front else self._buffer + items
        self._bytes += sum(d.nbytes for d in items)

    def __len__(self) -> int:
        return len(self._buffer)

    def due(self, now: float | None = None) -> bool:
        if not self._buffer:
            return False
        if len(self._buffer) >= self.max_docs or self._bytes >= self.max_bytes:
            return True
        assert self._first_at is not None
        return (time.monotonic() if now is None else now) - self._first_at >= self.linger_seconds

    async def setup(self, datasets: Iterable[Dataset]) -> None:
        """Create or update each dataset's index template (retried like a bulk request). A
        template the server refuses (4xx other than 429), or two datasets whose index names
        would be the same (``a-b``/``c`` and ``a``/``b-c``), is a ConfigError."""
        owners: dict[str, str] = {}
        for dataset in datasets:
            name = template_name(dataset)
            if owners.setdefault(name, dataset.subject) != dataset.subject:
                raise ConfigError(f"datasets {owners[name]} and {dataset.subject} would share the "
                                  f"Elasticsearch indices {name}-*: rename one of them")
            what = f"the index template {name!r} of dataset {dataset.subject}"
            lookup = self.client.options(ignore_status=404).indices.get_index_template
            found = await self._call(what, partial(lookup, name=name))
            for entry in found.body.get("index_templates", ()) if found.meta.status == 200 else ():
                owner = (entry["index_template"].get("_meta") or {}).get("subject")
                if owner not in (None, dataset.subject):
                    raise ConfigError(f"{what}: the template exists for dataset {owner}; both would share "
                                      f"the Elasticsearch indices {name}-*: rename one of them")
            body = {("meta" if k == "_meta" else k): v for k, v in index_template(dataset).items()}
            await self._call(what, partial(self.client.indices.put_index_template, name=name, **body))

    async def _call(self, what: str, request: Callable[[], Awaitable[Any]]) -> Any:
        backoff = self.retry_policy.backoff()
        while True:
            try:
                return await request()
            except ApiError as exc:
                if exc.status_code != 429 and exc.status_code < 500:
                    raise ConfigError(f"Elasticsearch refused {what}: HTTP {exc.status_code} {exc.message}: "
                                      f"{_reason(_error_of(exc.body))[1]}") from None
                await self._failed(f"{what}: HTTP {exc.status_code} {exc.message}", backoff)
            except TransportError as exc:
                await self._failed(f"{what}: {type(exc).__name__}: {exc}", backoff)

    async def flush(self) -> FlushResult:
        """Index the buffered documents; see the module docstring for the guarantees."""
        batch, self._buffer, self._bytes = self._buffer, [], 0
        first_at, self._first_at = self._first_at, None
        result = FlushResult(positions=[d.position for d in batch])
        pending, indexed = batch, 0
        labels: Counter[tuple[str, str]] = Counter()
        chunk_bytes = self.max_bytes
        backoff = self.retry_policy.backoff()
        try:
            while pending:
                result.attempts += 1
                retry, problem = await self._attempt(pending, chunk_bytes, result, labels)
                indexed = sum(labels.values())
                if problem.startswith("HTTP 413"):
                    chunk_bytes = self._shrink(retry, chunk_bytes, result)
                pending = retry
                if pending:
                    await self._failed(f"bulk of {len(pending)} documents: {problem}", backoff)
        except BaseException:
            # Nothing is lost: the next flush sends the whole batch again (an indexed document is
            # overwritten, a refused one is refused again and this time reported).
            self._push(batch, front=True)
            if first_at is not None:
                self._first_at = first_at
            raise
        result.indexed = indexed
        for (subject, tier), rows in labels.items():
            metrics.SINK_COMMITS.labels(SINK, subject, tier).inc()
            metrics.SINK_ROWS.labels(SINK, subject, tier).inc(rows)
        if first_at is not None:
            metrics.SINK_COMMIT_SECONDS.labels(SINK).observe(time.monotonic() - first_at)
        return result

    async def _attempt(self, pending: list[_Doc], chunk_bytes: int, result: FlushResult,
                       labels: Counter[tuple[str, str]]) -> tuple[list[_Doc], str]:
        """One pass over ``pending``: the documents to send again, and what went wrong."""
        actions = ({"_op_type": "index", "_index": d.index, "_id": d.id, "_source": d.body} for d in pending)
        retry: list[_Doc] = []
        problem = ""
        i = 0
        try:
            async for ok, info in async_streaming_bulk(
                self.client, actions, chunk_size=self.max_docs, max_chunk_bytes=chunk_bytes,
                raise_on_error=False, raise_on_exception=True, max_retries=0, yield_ok=True,
            ):
                doc, i = pending[i], i + 1
                item = next(iter(info.values()))
                status = int(item.get("status", 0))
                if ok:
                    labels[doc.labels] += 1
                elif status == 429 or status >= 500:
                    retry.append(doc)
                    problem = f"HTTP {status} for some documents: {_reason(item.get('error'))[1]}"
                else:
                    kind, reason = _reason(item.get("error"))
                    result.refused.append(Refused(doc.id, doc.index, status, kind, reason, doc.position, doc.body))
        except ApiError as exc:
            retry.extend(pending[i:])
            problem = f"HTTP {exc.status_code} {exc.message}: {_reason(_error_of(exc.body))[1]}"
        except TransportError as exc:
            retry.extend(pending[i:])
            problem = f"{type(exc).__name__}: {exc}"
        return retry, problem

    def _shrink(self, retry: list[_Doc], chunk_bytes: int, result: FlushResult) -> int:
        # 413: the request was larger than http.max_content_length. Send smaller requests; a
        # document that was alone in its request can never fit: the server refused it.
        first = retry[0]
        if first.nbytes > chunk_bytes or chunk_bytes <= 1:
            retry.pop(0)
            result.refused.append(Refused(first.id, first.index, 413, "request_entity_too_large",
                                          "the document alone exceeds the server's http.max_content_length",
                                          first.position, first.body))
        return max(1, chunk_bytes // 2)

    async def _failed(self, problem: str, backoff: Backoff) -> None:
        """One failed attempt: give up after ``max_retries``, else wait per ``retry_policy``."""
        problem = redact(problem, self._secrets)
        metrics.SINK_ERRORS.labels(SINK).inc()
        delay = backoff.next()  # jittered: workers do not retry in step
        attempt = backoff.failures
        if self.max_retries is not None and attempt > self.max_retries:
            raise ElasticsearchUnavailable(f"Elasticsearch at {self.url} failed {attempt} times, last: {problem}")
        log.warning("Elasticsearch %s (attempt %d); retrying in %.1fs. Nothing is acknowledged until it "
                    "succeeds: check that %s is up, reachable and not overloaded", problem, attempt, delay, self.url)
        if self.on_error is not None:
            self.on_error(problem, attempt, delay)
        await asyncio.sleep(delay)

    async def close(self) -> None:
        """Close the connections. Buffered documents are not sent: ``flush()`` first."""
        await self.client.close()


class ElasticsearchTierSink(TierSink):
    """The ``TierSink`` of the index: one bulk buffer (``ElasticsearchSink``) for every partition.
    ``flush`` reports as safe the offsets below the last one handed over before it started; the
    documents the server refused come back as ``refused`` for the dead-letter topic."""

    name = SINK
    shared_buffer = True

    def __init__(self, es: ElasticsearchSink, datasets: Iterable[Dataset]) -> None:
        self.es, self.datasets = es, list(datasets)
        self._routes: dict[TP, Route] = {}
        self._features: dict[TP, frozenset[str] | None] = {}
        self._end: dict[TP, int] = {}  # last offset handed to Elasticsearch
        self._next: dict[TP, int] = {}  # offsets below this are indexed

    async def setup(self) -> None:
        await self.es.setup(self.datasets)

    def takes(self, route: Route) -> bool:
        return route.elasticsearch

    async def assign(self, tp: TP, route: Route) -> Recovered:
        self._routes[tp] = route
        dest = route.dataset.destination
        self._features[tp] = None if dest.features is None else frozenset(f.name for f in dataset_features(route.dataset))
        return Recovered()

    def add(self, tp: TP, offset: int, value: bytes | None) -> bool:
        message = tier_message(value)
        if message is not None:
            self.es.add_message(message, (tp[0], tp[1], offset), features=self._features[tp])
        elif not self._routes[tp].parquet:  # (the Parquet sink reports it otherwise)
            log.error("%s[%d]@%d is not a tier message; skipped", tp[0], tp[1], offset)
        self._end[tp] = offset
        return self.es.due()

    def due(self, now: float) -> list[TP]:
        return list(self._routes) if self.es.due(now) else []

    async def flush(self, tps: Collection[TP], *, commit: bool = False) -> Flushed:
        ends = dict(self._end)
        result = await self.es.flush()
        out = Flushed()
        for r in result.refused:
            topic, partition, offset = r.position
            out.refused.append(RefusedRecord((topic, partition), offset, f"elasticsearch refused document {r.id} in "
                                             f"{r.index}: {r.status} {r.error}", "sink.elasticsearch",
                                             orjson.dumps(r.doc)))
        for tp, end in ends.items():
            if tp in self._routes:
                self._next[tp] = max(self._next.get(tp, 0), end + 1)
        out.safe = dict(self._next)
        return out

    async def restart(self, tp: TP, offset: int, after: int | None) -> int | None:
        self._next.pop(tp, None)
        return None

    async def revoke(self, tps: Collection[TP]) -> None:
        for tp in tps:
            for held in (self._routes, self._features, self._end, self._next):
                held.pop(tp, None)

    async def close(self) -> None:
        await self.es.close()


def connection_options(*, api_key: str | None = None, username: str | None = None, password: str | None = None,
                       ca_certs: str | None = None, cloud_id: str | None = None) -> dict[str, Any]:
    """AsyncElasticsearch keyword arguments for ATLAS_ES_API_KEY, ATLAS_ES_USERNAME/PASSWORD,
    ATLAS_ES_CA_CERTS and ATLAS_ES_CLOUD_ID (unset ones left out)."""
    out: dict[str, Any] = {}
    if api_key:
        out["api_key"] = api_key
    if username and password:
        out["basic_auth"] = (username, password)
    if ca_certs:
        try:
            with open(ca_certs, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"ATLAS_ES_CA_CERTS={ca_certs}: cannot be read ({exc.strerror})") from None
        out["ca_certs"] = ca_certs
    if cloud_id:
        out["cloud_id"] = cloud_id
    return out


def _password_of(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _url_secrets(url: str) -> list[str | None]:
    from urllib.parse import urlsplit

    try:
        raw = urlsplit(url).password
    except ValueError:
        raw = None
    return [raw, _password_of(url)]


def _error_of(body: Any) -> Any:
    return body.get("error", body) if isinstance(body, Mapping) else body

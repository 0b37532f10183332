"""HTTP helpers of the REST source: Link headers, dotted paths, rate limit, retries, safe URLs."""

from __future__ import annotations

import asyncio
import re
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, Awaitable, Callable, Iterable, Mapping
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

from ...retry import Backoff

__all__ = ["MISSING", "TokenBucket", "link_targets", "lookup", "next_link", "retry_after", "retry_delay",
           "safe_url", "with_params", "without_params"]

#: What :func:`lookup` returns when the path leads nowhere (distinct from a JSON null).
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()

#: Query parameters whose values are never shown, whatever their origin.
_SECRET_NAME = re.compile(r"key|token|secret|passw|pwd|auth|sig|credential|session", re.IGNORECASE)
_TOKEN_CHARS = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def lookup(doc: Any, path: str | None) -> Any:
    """Follow a dotted path (``meta.next``, ``data.0.id``) into parsed JSON; :data:`MISSING` when a
    step does not exist. Digits index lists. An empty path is the document itself."""
    if not path:
        return doc
    here = doc
    for step in path.split("."):
        if isinstance(here, Mapping):
            if step not in here:
                return MISSING
            here = here[step]
        elif isinstance(here, list) and step.lstrip("-").isdigit():
            index = int(step)
            if not -len(here) <= index < len(here):
                return MISSING
            here = here[index]
        else:
            return MISSING
    return here


# ---------------------------------------------------------------------- Link header (RFC 8288)

def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t":
        i += 1
    return i


def _quoted(text: str, i: int) -> tuple[str, int]:
    """A quoted-string starting at ``text[i] == '"'``; returns (value, index after it)."""
    out: list[str] = []
    i += 1
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), i + 1
        out.append(c)
        i += 1
    return "".join(out), i  # unterminated: take what is there


def link_targets(values: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """Parse ``Link`` header values into (target, parameters) pairs, in order.

    Follows RFC 8288: several links per header and several headers, commas and semicolons inside
    ``<...>`` belong to the URL, parameter values may be quoted (with escapes) or bare tokens,
    parameter names are case-insensitive (kept lower-case), and the first occurrence of a
    parameter wins. Malformed pieces are skipped rather than raising: a broken Link header must
    not stop a poll, it only ends the pagination.
    """
    links: list[tuple[str, dict[str, str]]] = []
    for text in values:
        i = 0
        while i < len(text):
            i = _skip_ws(text, i)
            if i >= len(text):
                break
            if text[i] == ",":
                i += 1
                continue
            if text[i] != "<":  # garbage before a link: skip to the next comma
                nxt = text.find(",", i)
                i = len(text) if nxt < 0 else nxt + 1
                continue
            end = text.find(">", i + 1)
            if end < 0:
                break
            target = text[i + 1 : end].strip()
            i = end + 1
            params: dict[str, str] = {}
            while True:
                i = _skip_ws(text, i)
                if i >= len(text) or text[i] == ",":
                    break
                if text[i] != ";":  # junk after the target: skip to the next link
                    nxt = text.find(",", i)
                    i = len(text) if nxt < 0 else nxt
                    break
                i = _skip_ws(text, i + 1)
                m = _TOKEN_CHARS.match(text, i)
                if not m:
                    continue
                name = m.group(0).lower()
                i = _skip_ws(text, m.end())
                value = ""
                if i < len(text) and text[i] == "=":
                    i = _skip_ws(text, i + 1)
                    if i < len(text) and text[i] == '"':
                        value, i = _quoted(text, i)
                    else:
                        m = _TOKEN_CHARS.match(text, i)
                        if m:
                            value, i = m.group(0), m.end()
                params.setdefault(name.rstrip("*"), value)
            links.append((target, params))
    return links


def next_link(values: Iterable[str], base_url: str) -> str | None:
    """The absolute URL of the first link whose ``rel`` holds ``next`` (relation types are a
    space-separated, case-insensitive list), resolved against ``base_url``; None if none."""
    for target, params in link_targets(values):
        if "next" in params.get("rel", "").lower().split():
            return urljoin(base_url, target)
    return None


# ---------------------------------------------------------------------- retries and rate limit

def retry_delay(backoff: Backoff, retry_after_value: str | None, longest: float, now: float | None = None) -> float:
    """Seconds to wait before retrying a request: the server's ``Retry-After`` when it sent one
    (at most ``longest``), else the next step of ``backoff`` (exponential with jitter: about
    0.5 s, 1 s, 2 s ... capped). Both advance the backoff, so a server that keeps sending
    ``Retry-After: 0`` still uses up the retries."""
    delay = backoff.next()
    told = retry_after(retry_after_value, now)
    return delay if told is None else min(told, longest)


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or an HTTP date. None when
    absent or unreadable; never negative."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now_dt = datetime.fromtimestamp(time.time() if now is None else now, tz=timezone.utc)
    return max(0.0, (when - now_dt).total_seconds())


class TokenBucket:
    """At most ``rate`` requests per second on average, with bursts up to ``burst`` requests
    (default: one second's worth, at least 1). ``acquire`` waits for a token; waiters are served
    in arrival order. The clock and sleep are injectable for tests."""

    def __init__(self, rate: float, burst: float | None = None, *,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = max(1.0, float(burst if burst is not None else rate))
        self.tokens = self.burst
        self._clock, self._sleep = clock, sleep
        self._last = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self.tokens = min(self.burst, self.tokens + (now - self._last) * self.rate)
        self._last = now

    async def acquire(self) -> float:
        """Take one token; returns the seconds waited."""
        waited = 0.0
        async with self._lock:
            self._refill()
            while self.tokens < 1.0 - 1e-9:  # (a float refill can stop a hair short of 1)
                pause = max((1.0 - self.tokens) / self.rate, 1e-6)
                await self._sleep(pause)
                waited += pause
                self._refill()
            self.tokens -= 1.0
        return waited


# ---------------------------------------------------------------------- URLs

def safe_url(url: str, secrets: Iterable[str] = ()) -> str:
    """``url`` fit for logs and errors: user info dropped, and the value of every query parameter
    whose name looks secret (key, token, signature ...) or whose value is one of ``secrets``
    replaced by ``***``."""
    hidden = {s for s in secrets if s}
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = [(k, "***" if _SECRET_NAME.search(k) or v in hidden else v)
             for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query, safe="*:/,"), ""))


def with_params(url: str, params: Mapping[str, Any], replace: bool = True) -> str:
    """``url`` with ``params`` in its query. ``replace=False`` only adds the missing ones."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {k for k, _ in query}
    if replace:
        query = [(k, v) for k, v in query if k not in params]
    extra = [(k, _text(v)) for k, v in params.items() if v is not None and (replace or k not in present)]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, *extra]), parts.fragment))


def without_params(url: str, names: Iterable[str]) -> str:
    """``url`` without the query parameters ``names``."""
    drop = set(names)
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in drop]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)

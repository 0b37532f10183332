"""REST source HTTP helpers: Link headers, dotted paths, retry schedule, rate limit, safe URLs."""

from __future__ import annotations

import asyncio
from email.utils import formatdate

import pytest

from atlas_stream.retry import Backoff, RetryPolicy
from atlas_stream.sources.rest.http import (
    MISSING,
    TokenBucket,
    link_targets,
    lookup,
    next_link,
    retry_after,
    retry_delay,
    safe_url,
    with_params,
    without_params,
)

BASE = "https://api.example.com/v1/items?page=1"


# ---------------------------------------------------------------------- dotted paths

def test_lookup_follows_dotted_paths_into_objects_and_lists() -> None:
    doc = {"meta": {"next": "abc", "none": None}, "data": [{"id": 1}, {"id": 2}], "a.b": 3}
    assert lookup(doc, "meta.next") == "abc"
    assert lookup(doc, "data.1.id") == 2
    assert lookup(doc, "data.-1.id") == 2
    assert lookup(doc, "") is doc and lookup(doc, None) is doc
    assert lookup(doc, "meta.none") is None  # a JSON null is a value ...
    for missing in ("meta.nope", "data.5", "data.x", "meta.next.deeper", "nope"):
        assert lookup(doc, missing) is MISSING  # ... a missing step is not
    assert not MISSING and repr(MISSING) == "MISSING"
    assert lookup([[1, 2]], "0.1") == 2


# ---------------------------------------------------------------------- Link headers

def test_next_link_finds_rel_next_among_several_links() -> None:
    header = ('<https://api.example.com/v1/items?page=1>; rel="first", '
              '<https://api.example.com/v1/items?page=3>; rel="next", '
              '<https://api.example.com/v1/items?page=9>; rel="last"')
    assert next_link([header], BASE) == "https://api.example.com/v1/items?page=3"


def test_link_parsing_follows_rfc_8288() -> None:
    # Relative targets resolve against the request URL; rel is a space-separated list, any case.
    assert next_link(['</v1/items?page=2>; rel="prev next"'], BASE) == "https://api.example.com/v1/items?page=2"
    assert next_link(["<?page=2>; REL=NEXT"], BASE) == "https://api.example.com/v1/items?page=2"
    # Commas and semicolons inside <...> or inside quoted values belong there.
    header = '<https://x.test/a?ids=1,2;3>; title="a, b; c"; rel="next"'
    assert link_targets([header]) == [("https://x.test/a?ids=1,2;3", {"title": "a, b; c", "rel": "next"})]
    assert next_link([header], BASE) == "https://x.test/a?ids=1,2;3"
    # Several header fields; the first next wins; escapes in quoted strings.
    assert next_link(['<https://x.test/1>; rel="last"', '<https://x.test/2>; rel="next"',
                      '<https://x.test/3>; rel="next"'], BASE) == "https://x.test/2"
    assert link_targets(['<u>; title="say \\"hi\\""']) == [("u", {"title": 'say "hi"'})]
    # The first occurrence of a parameter wins; names are case-insensitive.
    assert link_targets(['<u>; Rel="first"; rel="next"']) == [("u", {"rel": "first"})]


def test_link_parsing_tolerates_junk_and_missing_next() -> None:
    assert next_link([], BASE) is None
    assert next_link(['<https://x.test/1>; rel="last"'], BASE) is None
    assert next_link(['<https://x.test/1>; rel="nextpage"'], BASE) is None
    assert next_link(["garbage, <https://x.test/2>; rel=next"], BASE) == "https://x.test/2"
    assert next_link(['<https://x.test/unterminated; rel="next"'], BASE) is None
    assert link_targets(["<u>; ; rel=next; flag"]) == [("u", {"rel": "next", "flag": ""})]


# ---------------------------------------------------------------------- retries

def test_backoff_schedule_doubles_with_jitter_up_to_the_cap() -> None:
    for _ in range(50):
        backoff = RetryPolicy(first=0.5, cap=30.0).backoff()
        delays = [retry_delay(backoff, None, longest=120) for _ in range(10)]
        bases = [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30]
        for delay, base in zip(delays, bases):
            assert base / 2 <= delay <= base  # atlas_stream.retry: equal jitter
    # Jitter: two schedules are not the same.
    one = [Backoff().next() for _ in range(5)]
    assert len(set(one)) > 1


def test_retry_after_is_honoured_and_bounded() -> None:
    backoff = RetryPolicy(first=0.5).backoff()
    assert retry_delay(backoff, "3", longest=120) == 3.0
    assert retry_delay(backoff, "600", longest=120) == 120.0
    assert backoff.failures == 2  # the server's pace still counts against the retries
    assert 1.0 <= retry_delay(backoff, "soon", longest=120) <= 2.0  # unreadable: backoff
    now = 1_800_000_000.0
    assert retry_after(formatdate(now + 30, usegmt=True), now=now) == pytest.approx(30.0)
    assert retry_after(formatdate(now - 30, usegmt=True), now=now) == 0.0
    assert retry_after(None) is None and retry_after("") is None and retry_after("-1") is None


# ---------------------------------------------------------------------- rate limit

class FakeClock:
    """Time that moves only when the limiter sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_token_bucket_allows_a_burst_then_paces_requests() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, clock=clock, sleep=clock.sleep)
    waits = [await bucket.acquire() for _ in range(6)]
    assert waits[:2] == [0.0, 0.0]  # a second's worth at once
    assert waits[2:] == pytest.approx([0.5, 0.5, 0.5, 0.5])
    assert clock.now == pytest.approx(2.0)
    clock.now += 10  # idle time refills up to the burst, not beyond
    assert [await bucket.acquire() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])


async def test_token_bucket_average_rate_over_many_requests() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, burst=1, clock=clock, sleep=clock.sleep)
    for _ in range(101):
        await bucket.acquire()
    assert clock.now == pytest.approx(20.0)  # 100 intervals of 0.2 s after the first


async def test_token_bucket_with_real_time_and_concurrent_callers() -> None:
    bucket = TokenBucket(50.0, burst=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(*(bucket.acquire() for _ in range(11)))
    assert loop.time() - start >= 0.19  # 10 intervals of 20 ms


def test_token_bucket_refuses_a_useless_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)


# ---------------------------------------------------------------------- URLs

def test_safe_url_hides_secrets_in_the_query_and_user_info() -> None:
    url = "https://user:pw@api.example.com/v1/items?page=2&api_key=K123&access_token=T&q=shoes&region=eu-secret"
    shown = safe_url(url, secrets={"eu-secret"})
    assert shown == "https://api.example.com/v1/items?page=2&api_key=***&access_token=***&q=shoes&region=***"
    assert "pw" not in shown and "K123" not in shown


def test_query_parameters_are_set_added_or_dropped() -> None:
    url = "https://x.test/a?page=2&q=1"
    assert with_params(url, {"page": 3, "limit": 10}) == "https://x.test/a?q=1&page=3&limit=10"
    assert with_params(url, {"page": 3, "key": "k"}, replace=False) == "https://x.test/a?page=2&q=1&key=k"
    assert with_params(url, {"flag": True, "none": None}) == "https://x.test/a?page=2&q=1&flag=true"
    assert without_params(url, ["page"]) == "https://x.test/a?q=1"

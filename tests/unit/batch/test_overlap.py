"""Overlapped reading and scoring: input order, bounded read-ahead, errors raised in the caller's
thread as they were, and a reader that stops (and closes its input) when the caller leaves."""

from __future__ import annotations

import random
import threading
import time
from typing import Iterator

import pytest

from atlas_stream.batch.overlap import Overlapped


def slow_square(x: int) -> int:
    time.sleep(random.random() / 500)  # finish out of order
    return x * x


def test_results_come_in_input_order_and_the_read_ahead_is_bounded() -> None:
    read: list[int] = []

    def items() -> Iterator[int]:
        for i in range(200):
            read.append(i)
            yield i

    got = []
    with Overlapped(items(), slow_square, workers=3, ahead=2) as run:
        for item, result in run:
            # the caller holds `item`; at most `ahead` wait in the queue and one is in the reader's hand
            assert len(read) <= item + 1 + 2 + 1
            got.append((item, result))
    assert got == [(i, i * i) for i in range(200)]


def test_an_input_error_is_raised_as_it_is_after_the_items_before_it() -> None:
    def items() -> Iterator[int]:
        yield from range(5)
        raise ValueError("b.csv: cannot be read")

    got = []
    with pytest.raises(ValueError, match="b.csv: cannot be read"):
        with Overlapped(items(), slow_square, workers=2, ahead=2) as run:
            for item, _ in run:
                got.append(item)
    assert got == list(range(5))


def test_a_scoring_error_is_raised_at_its_item() -> None:
    def score(x: int) -> int:
        if x == 7:
            raise KeyError("bad batch")
        return x

    got = []
    with pytest.raises(KeyError, match="bad batch"):
        with Overlapped(iter(range(100)), score, workers=2, ahead=3) as run:
            for item, _ in run:
                got.append(item)
    assert got == list(range(7))


def test_leaving_early_stops_the_reader_and_closes_the_input() -> None:
    closed = threading.Event()
    read = []

    def items() -> Iterator[int]:
        try:
            for i in range(10_000):
                read.append(i)
                yield i
        finally:
            closed.set()

    with pytest.raises(RuntimeError, match="writer failed"):
        with Overlapped(items(), slow_square, workers=2, ahead=2) as run:
            for item, _ in run:
                if item == 3:
                    raise RuntimeError("writer failed")
    assert closed.is_set() and len(read) < 20
    assert not any(t.name == "atlas-batch-read" for t in threading.enumerate())

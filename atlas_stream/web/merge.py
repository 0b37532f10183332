"""Partition bookkeeping for answers gathered from several workers (pure).

Tables here are keyed ``<partition>|...``. Faust's memory store keeps the keys of partitions a
worker no longer owns, so a worker reports only the partitions it actively owns, and an answer
is put together by claiming every partition once, from whichever worker reported it first.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence, TypeVar

__all__ = ["by_partition", "merge_partitions", "owned_partitions", "partition_of"]

V = TypeVar("V")


def partition_of(key: str) -> int:
    return int(key.split("|", 1)[0])


def owned_partitions(assigned: Iterable[Any], topic: str) -> set[int]:
    """Partitions of ``topic`` among the assigned topic-partitions (objects with .topic/.partition)."""
    return {tp.partition for tp in assigned if tp.topic == topic}


def by_partition(items: Iterable[tuple[str, V]], owned: set[int]) -> dict[int, dict[str, V]]:
    """Table items grouped by the partition in their key, only for ``owned`` partitions (each of
    which is present, empty if it holds no key)."""
    out: dict[int, dict[str, V]] = {p: {} for p in owned}
    for key, value in items:
        try:
            p = partition_of(key)
        except ValueError:
            continue
        if p in owned:
            out[p][key] = value
    return out


def merge_partitions(payloads: Sequence[Mapping[str, Any]], expected: int) -> tuple[dict[int, Any], list[int]]:
    """Claim each partition from the first payload (``{"partitions": {"<p>": data}}``) that
    holds it. Returns (partition -> data, sorted list of the partitions nobody reported)."""
    claimed: dict[int, Any] = {}
    for payload in payloads:
        for raw, data in (payload.get("partitions") or {}).items():
            p = int(raw)
            if 0 <= p < expected and p not in claimed:
                claimed[p] = data
    missing = [p for p in range(expected) if p not in claimed]
    return claimed, missing

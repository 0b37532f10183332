"""Partition merging across workers: each partition claimed once, missing ones reported."""

from __future__ import annotations

from collections import namedtuple

from atlas_stream.web.merge import by_partition, merge_partitions, owned_partitions

TP = namedtuple("TP", "topic partition")


def test_partitions_are_claimed_once_and_missing_ones_reported() -> None:
    assert owned_partitions([TP("t", 0), TP("t", 2), TP("u", 1)], "t") == {0, 2}
    grouped = by_partition([("0|a|gold", 1), ("1|a|gold", 5), ("bad", 3)], {0, 2})
    assert grouped == {0: {"0|a|gold": 1}, 2: {}}
    claimed, missing = merge_partitions([{"partitions": {"0": "first"}}, {"partitions": {"0": "second", "1": "x"}},
                                         {"partitions": {"9": "out of range"}}], 3)
    assert claimed == {0: "first", 1: "x"} and missing == [2]

"""Source checkpoints: atomic durable writes, the file format, positions, one poller per source."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from atlas_stream.errors import ConfigError
from atlas_stream.sources.checkpoint import (
    CHECKPOINT_FORMAT,
    SourceLock,
    SourceState,
    atomic_write,
    checkpoint_path,
    format_position,
    parse_position,
)
from atlas_stream.sources.publisher import merge_offsets


def test_a_new_source_has_an_unsaved_empty_state(tmp_path: Path) -> None:
    state = SourceState.load(tmp_path, "file:g.d", "file")
    assert not state.exists and state.position is None and state.offsets == {}
    assert state.path == tmp_path / "file:g.d.json"
    assert not state.path.exists()


def test_save_and_load_round_trip_and_the_file_is_readable_json(tmp_path: Path) -> None:
    state = SourceState.load(tmp_path / "checkpoints", "file:g.d", "file")
    state.position = {"files": {"abc": {"next": 7}}, "done": {}}
    state.offsets = {"atlas.g.d.raw": {0: 12, 1: 3}, "atlas.g.dlq": {0: 0}}
    state.counters["rows"] = 15
    state.save()
    doc = json.loads(state.path.read_text())
    assert doc["format"] == CHECKPOINT_FORMAT and doc["source"] == "file:g.d" and doc["kind"] == "file"
    assert doc["offsets"] == {"atlas.g.d.raw": {"0": 12, "1": 3}, "atlas.g.dlq": {"0": 0}}
    assert doc["saved_at"]
    again = SourceState.load(tmp_path / "checkpoints", "file:g.d", "file")
    assert again.exists and again.position == state.position and again.offsets == state.offsets
    assert again.counters == {"rows": 15, "dead_letters": 0}


def test_a_crash_during_the_write_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "c.json"
    atomic_write(target, b'{"old": true}')

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        atomic_write(target, b'{"new": true}')
    assert target.read_bytes() == b'{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["c.json"]  # no temp file left behind


def test_atomic_write_fsyncs_the_file_and_the_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    atomic_write(tmp_path / "x" / "c.json", b"{}")
    assert len(synced) == 2 and (tmp_path / "x" / "c.json").read_bytes() == b"{}"


@pytest.mark.parametrize("content", [b"{not json", b'{"format": 99, "source": "file:g.d", "offsets": {}}',
                                     b'{"format": 1, "source": "file:other", "offsets": {}}', b'{"format": 1}'])
def test_an_unreadable_checkpoint_is_fatal_and_says_what_to_do(tmp_path: Path, content: bytes) -> None:
    checkpoint_path(tmp_path, "file:g.d").write_bytes(content)
    with pytest.raises(ConfigError, match="move it away"):
        SourceState.load(tmp_path, "file:g.d", "file")


def test_checkpoint_names_are_safe_file_names(tmp_path: Path) -> None:
    assert checkpoint_path(tmp_path, "file:g.d").name == "file:g.d.json"
    assert checkpoint_path(tmp_path, "db:a/b c").name == "db:a_b_c.json"


def test_positions_round_trip_and_bad_ones_are_refused() -> None:
    assert format_position("0123abcd", 42) == "0123abcd:42"
    assert parse_position("0123abcd:42") == ("0123abcd", 42)
    assert parse_position("orders:2024-01-01T00:00:00:7") == ("orders:2024-01-01T00:00:00", 7)
    for bad in ("nocolon", ":5", "abc:", "abc:-1", "abc:x"):
        with pytest.raises(ValueError):
            parse_position(bad)


def test_a_second_poller_of_the_same_source_is_refused(tmp_path: Path) -> None:
    first = SourceLock(checkpoint_path(tmp_path, "file:g.d"))
    first.acquire("file:g.d")
    try:
        with pytest.raises(ConfigError, match=f"already being polled by pid {os.getpid()}"):
            SourceLock(checkpoint_path(tmp_path, "file:g.d")).acquire("file:g.d")
    finally:
        first.release()
    again = SourceLock(checkpoint_path(tmp_path, "file:g.d"))
    again.acquire("file:g.d")
    again.release()


def test_merged_offsets_take_the_highest_per_partition() -> None:
    merged = merge_offsets({"t": {0: 5, 1: 9}}, {"t": {0: 7}, "u": {0: 1}}, {"t": {1: 2}})
    assert merged == {"t": {0: 7, 1: 9}, "u": {0: 1}}


def test_keys_go_to_the_partition_the_java_client_and_aiokafka_choose() -> None:
    import random

    from aiokafka.partitioner import DefaultPartitioner, murmur2 as aiokafka_murmur2

    from atlas_stream.sources.publisher import kafka_partition, murmur2

    rng = random.Random(5)
    for _ in range(3000):
        key = rng.randbytes(rng.randrange(0, 300))
        assert murmur2(key) == aiokafka_murmur2(key)
        assert kafka_partition(key, 7) == DefaultPartitioner()(key, list(range(7)), list(range(7)))
    # Values from the Java client's tests (Utils.murmur2 of "21" and "foobar", as unsigned).
    assert murmur2(b"21") == -973932308 & 0xFFFFFFFF
    assert murmur2(b"foobar") == -790332482 & 0xFFFFFFFF

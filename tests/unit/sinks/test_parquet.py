"""The Parquet sink's writer without a broker: windows decoded on Arrow give exactly the rows
the per-message path gives, and the files, offsets and replays come out as a reader expects."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pyarrow.parquet as pq
import pytest

from atlas_stream.lake import dataset_features, lake_schema, parse_committed_name
from atlas_stream.model import Dataset
from atlas_stream.pipeline import DatasetRuntime, load_catalog
from atlas_stream.samples import SampleGenerator
from atlas_stream.sinks.lakefs import open_lake
from atlas_stream.sinks.parquet import Limits, PartitionWriter, Recovery, recover
from atlas_stream.sinks.tier_arrow import decode_window, replays, rows_to_table

ROOT = Path(__file__).resolve().parents[3]
RUNTIMES = {f"{rt.dataset.subject}": rt for rt in load_catalog(ROOT / "metadata").datasets}
UTC = timezone.utc


def scored_messages(rt: DatasetRuntime, n: int, seed: int = 1, start: datetime | None = None,
                    raw_partition: int = 0) -> list[bytes]:
    """Tier messages exactly as the scoring agent writes them, from generated raw records
    (about a third with defects: missing, mistyped, out-of-range and unknown fields)."""
    gen = SampleGenerator(rt.dataset, seed=seed, defect_rate=0.35)
    start = start or datetime.now(UTC)
    out = []
    for i in range(n):
        raw, _ = gen.raw(start)
        source = {"topic": rt.raw_topic, "partition": raw_partition, "offset": i,
                  "timestamp": (start + timedelta(milliseconds=i)).timestamp()}
        outcome = rt.process(raw, None, source, None, 10**6)
        if outcome.tier is not None:
            out.append(outcome.value)
    return out


def features_of(dataset: Dataset) -> Any:
    return lambda version: dataset_features(dataset)


@pytest.mark.parametrize("subject", sorted(RUNTIMES))
def test_arrow_window_equals_the_per_message_path(subject: str) -> None:
    rt = RUNTIMES[subject]
    values = scored_messages(rt, 400)
    features = dataset_features(rt.dataset)
    schema = lake_schema(features)
    win = decode_window(values, features_of(rt.dataset))
    assert win.parsed is not None, "scored messages must take the Arrow path"
    got = win.lake_table(range(len(win.positions)), features, schema)
    want = rows_to_table([orjson.loads(v) for v in values], features, schema)
    assert got.equals(want)
    assert got.num_rows == len(values)


def test_edge_messages_on_the_arrow_path_equal_the_per_message_path() -> None:
    rt = RUNTIMES["ecommerce_transactions_rdbms.customers"]
    base = orjson.loads(scored_messages(rt, 5)[0])
    edits: list[dict[str, Any]] = [{}, {"quality": {**base["quality"], "failures": None}},
                                   {"quality": {**base["quality"], "score": None}}, {"record": None},
                                   {"record": {}}, {"extra": {"x": [1, 2]}, "invalid": {"email": 5}}]
    values = [orjson.dumps({**base, **e}) for e in edits]
    features = dataset_features(rt.dataset)
    schema = lake_schema(features)
    win = decode_window(values, features_of(rt.dataset))
    assert win.parsed is not None
    got = win.lake_table(range(len(values)), features, schema)
    assert got.equals(rows_to_table([orjson.loads(v) for v in values], features, schema))
    assert got.column("_failures")[1].as_py() == [] and got.column("email")[3].as_py() is None


def test_values_the_reader_cannot_take_fall_back_with_the_same_rows() -> None:
    rt = RUNTIMES["ecommerce_transactions_streaming.transactions"]
    values = scored_messages(rt, 50)
    odd = orjson.loads(values[3])
    odd["record"]["quantity"] = "7"  # not the canonical form: a string for an int
    values[3] = orjson.dumps(odd)
    values.insert(10, b"not json at all")
    values.insert(11, b'{"record": {}}')  # JSON, but no quality or source: not a tier message
    features = dataset_features(rt.dataset)
    schema = lake_schema(features)
    win = decode_window(values, features_of(rt.dataset))
    assert win.messages is not None, "the odd values must take the per-message path"
    assert win.positions == [i for i in range(len(values)) if i not in (10, 11)]
    got = win.lake_table(range(len(win.positions)), features, schema)
    good = [orjson.loads(v) for i, v in enumerate(values) if i not in (10, 11)]
    assert got.equals(rows_to_table(good, features, schema))
    assert got.column("quantity")[3].as_py() == 7


def test_replays_fast_and_exact_paths_agree() -> None:
    import pyarrow as pa

    guard: dict[str, list[float]] = {"r|0": [9, 100.0]}
    keys = pa.array(["r|0", "r|1", "r|0", "r|1"])
    assert replays(guard, keys, pa.array([10, 0, 11, 1]), pa.array([101.0, 5.0, 102.0, 6.0])) is None
    assert guard == {"r|0": [11, 102.0], "r|1": [1, 6.0]}
    # Offsets at or below the guard: replays, except a newer timestamp (a recreated raw topic).
    got = replays(guard, pa.array(["r|0", "r|0", "r|1"]), pa.array([11, 3, 2]), pa.array([102.0, 500.0, 7.0]))
    assert got == [True, False, False]
    assert guard == {"r|0": [3, 500.0], "r|1": [2, 7.0]}


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def writer(lake_root: Path, rt: DatasetRuntime, recovery: Recovery | None = None, **limits: Any) -> PartitionWriter:
    lim = Limits(**{"flush_seconds": 3600, "rotate_seconds": 3600, **limits})
    return PartitionWriter(open_lake(lake_root.as_uri()), rt.dataset, "gold", "t.gold", 0, recovery or Recovery(), lim,
                           lake_root / "staging", lambda d, v: d.schema)


def committed(lake_root: Path) -> list[tuple[Any, int, list[int]]]:
    """(name, rows, raw offsets) of each committed file, in offset order."""
    out = []
    for f in sorted(lake_root.rglob("*.parquet"), key=lambda p: p.name):
        name = parse_committed_name(f.name)
        if name:
            t = pq.read_table(f)
            out.append((name, t.num_rows, t.column("_source_offset").to_pylist()))
    return out


def test_files_cover_every_offset_once_with_replays_and_bad_messages_skipped(tmp_path: Path, caplog) -> None:
    rt = RUNTIMES["ecommerce_transactions_streaming.clickstream"]
    values = scored_messages(rt, 30)
    stream = values[:20] + [b"garbage"] + values[5:10] + values[20:]  # 5 replays of raw records already written
    w = writer(tmp_path, rt, flush_rows=8)
    with caplog.at_level(logging.ERROR):
        for offset, v in enumerate(stream):
            w.consume(offset, v)
            if w.due(0):
                run(w.flush())
        files = run(w.commit())
    assert "1 message(s) are not tier messages" in caplog.text
    rows = committed(tmp_path)
    assert [c.file for c in files] == [r[0] for r in rows]
    assert len(rows) == 1 and rows[0][0].start == 0 and rows[0][0].end == len(stream) - 1
    n = len(values)
    want = [orjson.loads(v)["source"]["offset"] for v in values]
    assert rows[0][2] == want and rows[0][1] == n
    assert w.committed_next == len(stream) and w.skipped == 5 and w.not_tier == 1

    # Recovery from the committed name: the next offset, and the guard that drops raw replays.
    rec = recover(open_lake(tmp_path.as_uri()), rt.dataset.destination.path, "gold", "t.gold", 0, tmp_path / "staging")
    assert rec.next_offset == len(stream) and rec.files == 1
    again = writer(tmp_path, rt, rec)
    for i, v in enumerate(values[:3]):
        again.consume(len(stream) + i, v)
    assert run(again.commit()) == []  # only replays: no file, but the offsets are covered
    assert again.committed_next == len(stream) + 3 and len(committed(tmp_path)) == 1


def test_a_new_ingest_date_or_schema_version_rolls_the_file_at_that_record(tmp_path: Path) -> None:
    rt = RUNTIMES["ecommerce_transactions_streaming.clickstream"]
    day1 = scored_messages(rt, 10, start=datetime(2026, 3, 1, 23, 0, tzinfo=UTC))
    day2 = scored_messages(rt, 10, seed=2, start=datetime(2026, 3, 2, 1, 0, tzinfo=UTC), raw_partition=1)
    v2 = []
    for v in day2[5:]:
        m = orjson.loads(v)
        m["schema"]["version"] = 2
        v2.append(orjson.dumps(m))
    stream = day1 + day2[:5] + v2
    w = writer(tmp_path, rt)
    for offset, v in enumerate(stream):
        w.consume(offset, v)
    files = run(w.commit())  # one window, three files
    rows = committed(tmp_path)
    assert [(r[0].start, r[0].end) for r in rows] == [(0, len(day1) - 1), (len(day1), len(day1) + 4),
                                                      (len(day1) + 5, len(stream) - 1)]
    assert [c.file for c in files] == [r[0] for r in rows]
    dirs = sorted({p.parent.name for p in tmp_path.rglob("*.parquet")})
    assert dirs == ["ingest_date=2026-03-01", "ingest_date=2026-03-02"]
    assert sum(r[1] for r in rows) == len(stream)
    assert w.committed_next == len(stream)


def test_a_crash_after_a_roll_inside_a_window_loses_nothing(tmp_path: Path) -> None:
    """A window holding two ingest dates commits the first file and leaves the second open. The
    first file's footer must claim only its own raw records: after a crash, the records of the
    open file come again (the scoring agent re-emits them) and must be written, not taken for
    replays."""
    rt = RUNTIMES["ecommerce_transactions_streaming.clickstream"]
    day1 = scored_messages(rt, 10, start=datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC))
    day2 = [m for m in scored_messages(rt, 30, start=datetime(2026, 3, 2, 0, 0, 5, tzinfo=UTC))
            if orjson.loads(m)["source"]["offset"] >= 10]
    w = writer(tmp_path, rt)
    for offset, v in enumerate(day1 + day2):
        w.consume(offset, v)
    run(w.flush())  # the roll commits day 1; day 2 stays in an open file: then the worker dies
    assert [(r[0].start, r[0].end) for r in committed(tmp_path)] == [(0, len(day1) - 1)]

    rec = recover(open_lake(tmp_path.as_uri()), rt.dataset.destination.path, "gold", "t.gold", 0, tmp_path / "staging")
    assert rec.next_offset == len(day1)
    again = writer(tmp_path, rt, rec)
    for offset, v in enumerate(day2, start=len(day1)):  # the same tier offsets, read again
        again.consume(offset, v)
    run(again.commit())
    raw = sorted(o for r in committed(tmp_path) for o in r[2])
    want = sorted(orjson.loads(m)["source"]["offset"] for m in day1 + day2)
    assert raw == want

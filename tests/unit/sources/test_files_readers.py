"""JSON lines, JSON arrays and Parquet readers: rows, dead letters, deterministic resume."""

from __future__ import annotations

import codecs
import datetime as dt
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from atlas_stream.sources.files.readers import Bad, Chunk, Resume, Row, read_json, read_jsonl, read_parquet


def _all(chunks: Iterator[Chunk]) -> tuple[list[Row | Bad], list[Resume]]:
    items: list[Row | Bad] = []
    resumes = []
    for c in chunks:
        items += c.items
        resumes.append(c.resume)
    return items, resumes


def _key(items: list[Any]) -> list[tuple[int, Any]]:
    return [(i.ordinal, i.record if isinstance(i, Row) else i.error) for i in items]


def test_jsonl_rows_keep_their_text_and_bad_lines_are_dead_letters(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_bytes(codecs.BOM_UTF8 + b'{"id": 1, "price": 1.10}\n\n{oops\n[1]\n{"id": "\xff"}\n  {"id": 2}  \r\n')
    items, resumes = _all(read_jsonl(f, "e.jsonl", Resume(), 100, 1000))
    rows = [i for i in items if isinstance(i, Row)]
    assert [(r.line, r.record) for r in rows] == [(1, {"id": 1, "price": 1.1}), (6, {"id": 2})]
    assert rows[0].text == b'{"id": 1, "price": 1.10}'  # published as written (1.10 stays 1.10)
    bad = [i for i in items if isinstance(i, Bad)]
    assert [(b.line, b.ordinal) for b in bad] == [(3, 2), (4, 3), (5, 4)]
    assert bad[0].error.startswith("e.jsonl line 3: not valid JSON") and "JSON array" in bad[1].error
    assert resumes[-1] == Resume(6, f.stat().st_size, 7)


def test_jsonl_resume_gives_the_same_items(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text("".join('{"i": %d}\n' % i if i % 5 else "bad\n" for i in range(100)))
    whole, _ = _all(read_jsonl(f, "e", Resume(), 1000, 1000))
    _, resumes = _all(read_jsonl(f, "e", Resume(), 7, 1000))
    for resume in resumes:
        rest, _ = _all(read_jsonl(f, "e", resume, 7, 1000))
        assert _key(rest) == [k for k in _key(whole) if k[0] >= resume.next]


def test_jsonl_line_too_long(tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text('{"a": "' + "x" * 5000 + '"}\n{"a": 1}\n')
    items, _ = _all(read_jsonl(f, "e", Resume(), 100, 1001))
    assert isinstance(items[0], Bad) and "5010 bytes, longer than" in items[0].error and len(items[0].raw) == 1001
    assert isinstance(items[1], Row) and items[1].record == {"a": 1}


def test_json_array_files_and_json_lines_with_a_json_extension(tmp_path: Path) -> None:
    f = tmp_path / "a.json"
    f.write_text('[{"a": 1}, 2, {"a": 3}]')
    items, _ = _all(read_json(f, "a.json", Resume(), 100, 1000))
    assert _key(items) == [(0, {"a": 1}), (1, "a.json element 1: a JSON int, expected an object"), (2, {"a": 3})]
    rest, _ = _all(read_json(f, "a.json", Resume(2), 100, 1000))
    assert _key(rest) == [(2, {"a": 3})]
    f.write_text('{"a": 1}\n{"a": 2}\n')
    items, _ = _all(read_json(f, "a.json", Resume(), 100, 1000))
    assert [i.record for i in items if isinstance(i, Row)] == [{"a": 1}, {"a": 2}]
    f.write_text("[{broken")
    items, _ = _all(read_json(f, "a.json", Resume(), 100, 1000))
    assert len(items) == 1 and isinstance(items[0], Bad) and "not valid JSON" in items[0].error
    assert _all(read_json(f, "a.json", Resume(1), 100, 1000))[0] == []  # once is enough


def test_parquet_rows_in_batches_and_resume_skips_row_groups(tmp_path: Path) -> None:
    f = tmp_path / "m.parquet"
    table = pa.table({"seq": list(range(95)), "at": [dt.datetime(2024, 1, 1)] * 95})
    pq.write_table(table, f, row_group_size=20)
    items, resumes = _all(read_parquet(f, "m", Resume(), 30))
    assert [i.ordinal for i in items] == list(range(95))
    assert all(isinstance(i, Row) and i.record["seq"] == i.ordinal for i in items)
    for start in (0, 19, 20, 21, 57, 94, 95):
        rest, _ = _all(read_parquet(f, "m", Resume(start), 30))
        assert [i.ordinal for i in rest] == list(range(start, 95))
        assert all(isinstance(i, Row) and i.record["seq"] == i.ordinal for i in rest)


def test_a_file_that_is_not_parquet_is_one_dead_letter(tmp_path: Path) -> None:
    f = tmp_path / "m.parquet"
    f.write_bytes(b"PAR1 this is not parquet")
    items, resumes = _all(read_parquet(f, "m.parquet", Resume(), 30))
    assert len(items) == 1 and isinstance(items[0], Bad) and "not a readable Parquet file" in items[0].error
    assert items[0].raw == b"PAR1 this is not parquet" and resumes == [Resume(1)]
    assert _all(read_parquet(f, "m.parquet", Resume(1), 30))[0] == []

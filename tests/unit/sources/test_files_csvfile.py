"""CSV reading: pyarrow for clean files, the line-tracking reader for every kind of damage."""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import pytest

from atlas_stream.sources.files.csvfile import CsvOptions, CsvPlan, plan_csv, read_csv
from atlas_stream.sources.files.readers import Bad, Resume, Row

OPTS = CsvOptions(columns=("id", "amount", "note"), max_line_bytes=1_000_001)
MAX_ROW = 250_000


def _read(path: Path, opts: CsvOptions = OPTS, chunk: int = 1000, start: Resume | None = None,
          plan: CsvPlan | None = None) -> tuple[CsvPlan, list[Row | Bad], list[Resume]]:
    plan = plan or plan_csv(path, opts, MAX_ROW)
    items: list[Row | Bad] = []
    resumes = []
    for c in read_csv(path, str(path), opts, plan, start or plan.start, chunk):
        items += c.items
        resumes.append(c.resume)
    return plan, items, resumes


def _rows(items: list[Any]) -> list[dict[str, str]]:
    return [i.record for i in items if isinstance(i, Row)]


def _bad(items: list[Any]) -> dict[int | None, str]:
    return {i.line: i.error for i in items if isinstance(i, Bad)}


def test_a_clean_file_uses_pyarrow_and_keeps_every_value_as_text(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("id,amount,note\n1,0010.50,hello\n2,,\n3,NA,\"x, y\"\n")
    plan, items, _ = _read(f)
    assert plan.reader == "arrow" and plan.columns == ("id", "amount", "note")
    assert _rows(items) == [{"id": "1", "amount": "0010.50", "note": "hello"}, {"id": "2", "amount": "", "note": ""},
                            {"id": "3", "amount": "NA", "note": "x, y"}]
    assert [i.ordinal for i in items] == [0, 1, 2]


def test_a_utf8_bom_is_stripped_not_an_error(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(codecs.BOM_UTF8 + b"id,amount,note\n1,2,3\n")
    plan, items, _ = _read(f)
    assert plan.reader == "arrow" and _rows(items) == [{"id": "1", "amount": "2", "note": "3"}]
    f.write_bytes(codecs.BOM_UTF8 + b"id,amount,note\n1,2,3\n4,5\n")  # and on the slow path
    plan, items, _ = _read(f)
    assert plan.reader == "python" and plan.columns == ("id", "amount", "note")
    assert _rows(items) == [{"id": "1", "amount": "2", "note": "3"}] and list(_bad(items)) == [3]


def test_quoted_fields_on_one_line_take_the_fast_path(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text('id,amount,note\n1,2,"a, ""quoted"" b"\n"3","4",""\n')
    plan, items, _ = _read(f)
    assert plan.reader == "arrow"
    assert _rows(items) == [{"id": "1", "amount": "2", "note": 'a, "quoted" b'}, {"id": "3", "amount": "4", "note": ""}]


def test_quoted_newlines_stay_in_the_value(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text('id,amount,note\n1,2,"multi\nline ""quoted"""\n3,4\n5,6,end\n')
    plan, items, _ = _read(f)
    assert plan.reader == "python"  # pyarrow cannot tell a quoted newline from a stray quote
    assert _rows(items) == [{"id": "1", "amount": "2", "note": 'multi\nline "quoted"'},
                            {"id": "5", "amount": "6", "note": "end"}]
    assert [i.line for i in items] == [2, 4, 5] and "expected 3 fields, got 2" in _bad(items)[4]


def test_broken_quoting_goes_to_the_dlq_with_its_line_and_reading_goes_on(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text('id,amount,note\n1,2,ok\n2,3,"never closed\n4,5,fine\n6,7,"bad"quote\n8,9,last\n')
    plan, items, _ = _read(f)
    assert plan.reader == "python"
    assert [r["id"] for r in _rows(items)] == ["1", "4", "8"]
    bad = _bad(items)
    assert set(bad) == {3, 5}
    assert "a.csv line 3: broken quoting" in bad[3] and "a.csv line 5: broken quoting" in bad[5]
    assert [i.ordinal for i in items] == [0, 1, 2, 3, 4]


def test_an_unclosed_quote_on_the_last_line_is_one_dead_letter(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text('id,amount,note\n1,2,ok\n2,3,"open')
    _, items, _ = _read(f)
    assert _rows(items) == [{"id": "1", "amount": "2", "note": "ok"}] and list(_bad(items)) == [3]


def test_invalid_utf8_lines_are_dead_letters_with_their_bytes(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"id,amount,note\n1,2,ok\n2,3,caf\xe9\n3,4,\xff\xfe\n4,5,fine\n")
    plan, items, _ = _read(f)
    assert plan.reader == "python" and plan.why.startswith("pyarrow")
    bad = [i for i in items if isinstance(i, Bad)]
    assert [b.line for b in bad] == [3, 4] and bad[0].raw == b"2,3,caf\xe9\n"
    assert "not valid utf-8 (byte 0xe9 at column 8)" in bad[0].error
    assert [r["id"] for r in _rows(items)] == ["1", "4"]


def test_a_1mb_line_is_a_dead_letter_and_memory_stays_bounded(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"id,amount,note\n1,2," + b"x" * (1 << 20) + b"\n2,3,after\n")
    plan, items, _ = _read(f)
    assert plan.reader == "python"
    bad = [i for i in items if isinstance(i, Bad)]
    assert [b.line for b in bad] == [2] and len(bad[0].raw) <= OPTS.max_line_bytes
    assert f"{(1 << 20) + 5} bytes, longer than" in bad[0].error
    assert _rows(items) == [{"id": "2", "amount": "3", "note": "after"}]


def test_a_large_row_that_still_fits_is_published_through_the_line_reader(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"id,amount,note\n1,2," + b"y" * 400_000 + b"\n")
    plan, items, _ = _read(f)
    assert plan.reader == "python" and len(_rows(items)[0]["note"]) == 400_000  # over csv's 128 KiB default


def test_wrong_field_counts_and_blank_lines(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("id,amount,note\n1,2\n\n3,4,5\n6,7,8,9\n\r\n10,11,12\n")
    _, items, _ = _read(f)
    assert _bad(items) == {2: f"{f} line 2: expected 3 fields, got 2", 5: f"{f} line 5: expected 3 fields, got 4"}
    assert [(i.line, i.ordinal) for i in items] == [(2, 0), (4, 1), (5, 2), (7, 3)]


def test_resuming_mid_file_gives_the_same_items_as_one_read(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    body = "".join(f'{i},{i},"n\n{i}"\n' if i % 7 == 0 else (f"{i},x\n" if i % 11 == 0 else f"{i},{i},n{i}\n")
                   for i in range(300))
    f.write_text("id,amount,note\n" + body)
    for reader in ("python", "arrow"):
        if reader == "arrow":  # a clean file
            f.write_text("id,amount,note\n" + "".join(f'{i},"{i}",n{i}\n' for i in range(300)))
        plan, whole, _ = _read(f)
        assert plan.reader == reader
        _, first, resumes = _read(f, chunk=50)
        assert [(i.ordinal, getattr(i, "record", None)) for i in first] == [
            (i.ordinal, getattr(i, "record", None)) for i in whole]
        for resume in resumes[:-1]:
            _, rest, _ = _read(f, chunk=50, start=resume, plan=plan)
            assert [i.ordinal for i in rest] == [i.ordinal for i in whole if i.ordinal >= resume.next]
            assert [getattr(i, "record", None) for i in rest] == [
                getattr(i, "record", None) for i in whole if i.ordinal >= resume.next]


def test_no_header_uses_the_declared_features_and_other_delimiters(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_text("1;2;a\n3;4;b\n")
    opts = CsvOptions(delimiter=";", header=False, columns=("id", "amount", "note"))
    plan, items, _ = _read(f, opts)
    assert plan.reader == "arrow" and _rows(items)[1] == {"id": "3", "amount": "4", "note": "b"}


def test_an_unreadable_header_sends_every_line_to_the_dlq(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(b"id,am\xffount\n1,2\n")
    plan, items, _ = _read(f)
    assert plan.columns is None and "no usable header" in plan.why
    assert [(i.line, isinstance(i, Bad)) for i in items] == [(1, True), (2, True)]


@pytest.mark.parametrize("content", [b"", b"id,amount,note\n", b"id,amount,note"])
def test_empty_and_header_only_files_have_no_rows(tmp_path: Path, content: bytes) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes(content)
    _, items, _ = _read(f)
    assert items == []


def test_other_encodings_are_decoded_by_the_line_reader(tmp_path: Path) -> None:
    f = tmp_path / "a.csv"
    f.write_bytes("id,amount,note\n1,2,café\n".encode("latin-1"))
    opts = CsvOptions(encoding="iso8859-1", columns=OPTS.columns)
    plan, items, _ = _read(f, opts)
    assert plan.reader == "python" and _rows(items) == [{"id": "1", "amount": "2", "note": "café"}]

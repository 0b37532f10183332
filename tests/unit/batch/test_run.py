"""``batch`` on fs contracts: lake output per tier, reruns without duplicates, stream files left
alone, CSV / JSON lines / Parquet inputs, summaries and the errors a user can act on."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from atlas_stream.cli import main
from atlas_stream.contracts import load_contract
from atlas_stream.lake import committed_name, dataset_features, lake_schema, parse_committed_name

from ...batch_samples import CONTRACT, expected_tiers, sample_rows, write_csv


def lake_rows(lake: Path) -> list[tuple[Any, ...]]:
    return duckdb.sql(f"SELECT tier, ingest_date, _source_topic, _source_offset, transaction_id FROM "
                      f"read_parquet('{lake}/**/*.parquet', hive_partitioning=true)").fetchall()


def run(*args: str, capsys: pytest.CaptureFixture[str] | None = None) -> int:
    return main(["batch", "--ocs", "ecommerce_transactions_fs", *args])


def test_csv_lands_per_tier_and_a_rerun_replaces_it(fs_batch_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = sample_rows(3000)
    write_csv(fs_batch_env / "landing" / "transactions" / "day1.csv", rows)
    lake = fs_batch_env / "lake"
    # a file written by the stream's sink in the same partition layout: never touched
    ds = load_contract(CONTRACT).datasets[0]
    stream_dir = lake / "ecommerce" / "transactions" / "tier=gold" / "ingest_date=2020-01-01"
    stream_dir.mkdir(parents=True)
    stream_file = stream_dir / committed_name("atlas.ecommerce_transactions_fs.transactions.gold", 0, 0, 9)
    pq.write_table(pa.Table.from_pylist([], schema=lake_schema(dataset_features(ds))), stream_file)
    before = stream_file.read_bytes()

    assert run("--json") == 0
    summary = json.loads(capsys.readouterr().out)
    got = Counter(t for t, *_ in lake_rows(lake))
    now = datetime.now(timezone.utc)
    assert got == expected_tiers(rows, now)
    assert summary["rows"] == 3000 and summary["datasets"]["transactions"]["tiers"] == dict(got)
    top = summary["datasets"]["transactions"]["top_failures"]
    assert top and top == sorted(top, key=lambda f: -f["rows"])

    assert run() == 0
    out = capsys.readouterr().out
    assert "3,000 rows" in out and "most frequent failures" in out
    again = lake_rows(lake)
    assert len(again) == 3000, "a rerun must replace its own output, not add to it"
    assert sorted(r[3] for r in again) == list(range(3000))
    assert {r[2] for r in again} == {str(fs_batch_env / "landing" / "transactions" / "day1.csv")}
    assert stream_file.read_bytes() == before
    for f in lake.rglob("*"):
        if f.is_file() and f != stream_file:
            assert parse_committed_name(f.name) is None and f.name.startswith("batch-") and f.suffix == ".parquet"
    table = pads.dataset(lake / "ecommerce" / "transactions", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == 3000
    expected = lake_schema(dataset_features(ds))
    assert pq.read_schema(next(lake.rglob("batch-*.parquet"))).remove_metadata() == expected


def test_json_lines_parquet_and_a_folder(fs_batch_env: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rows = sample_rows(600, seed=4)
    folder = fs_batch_env / "landing" / "mixed"
    folder.mkdir()
    records = [{k: v for k, v in r.items() if v != ""} for r in rows[:300]]
    for r in records[:50]:
        r["quantity"] = int(r["quantity"]) if r.get("quantity", "x").isdigit() else r.get("quantity")
    (folder / "a.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records) + b"\n{broken\n")
    pq.write_table(pa.Table.from_pylist(rows[300:]), folder / "b.parquet")
    (folder / ".hidden.csv").write_text("ignored")
    contract = json.loads(CONTRACT.read_text())
    source = contract["dataset_config"][0]["source"]
    source["path"] = str(folder)
    del source["format"]
    del contract["source_config"]["format"]
    meta = tmp_path / "meta"
    meta.mkdir()
    (meta / "c.json").write_text(json.dumps(contract))
    monkeypatch.setenv("ATLAS_METADATA_DIR", str(meta))
    assert run("--json") == 0
    summary = json.loads(capsys.readouterr().out)
    ds = summary["datasets"]["transactions"]
    assert summary["rows"] == 600 and ds["skipped_input"] == 1 and "a.jsonl line 301" in ds["problems"][0]
    now = datetime.now(timezone.utc)
    want = expected_tiers(records, now) + expected_tiers(rows[300:], now)
    assert Counter(t for t, *_ in lake_rows(fs_batch_env / "lake")) == want


def test_errors_are_one_line_and_leave_the_previous_output(fs_batch_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run() == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no file matches" in err and "transactions/*.csv" in err

    landing = fs_batch_env / "landing" / "transactions"
    write_csv(landing / "a.csv", sample_rows(200))
    assert run() == 0
    capsys.readouterr()
    first = sorted(p.name for p in (fs_batch_env / "lake").rglob("*.parquet"))
    (landing / "b.csv").write_bytes(b"transaction_id,customer_id\n\xff\xfe,1\n")  # not UTF-8
    assert run() == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "b.csv" in err and err.count("\n") == 0
    assert sorted(p.name for p in (fs_batch_env / "lake").rglob("*.parquet")) == first
    assert not [p for p in (fs_batch_env / "lake").rglob("*") if p.name.endswith(".tmp")]

    (landing / "b.csv").unlink()
    lake_file = fs_batch_env / "lake-is-a-file"
    lake_file.write_text("")
    os.environ["ATLAS_LAKE_URI"] = str(lake_file)
    assert run() == 2
    err = capsys.readouterr().err.strip()
    assert "cannot write to the lake" in err and err.count("\n") == 0

    assert main(["batch", "--ocs", "ecommerce_transactions_fs", "--dataset", "nope"]) == 2
    assert "has no dataset 'nope'" in capsys.readouterr().err
    assert main(["batch", "--ocs", "ecommerce_transactions_streaming"]) == 2
    assert "fs and rdbms" in capsys.readouterr().err


def test_progress_lines_when_not_a_terminal(fs_batch_env: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    from atlas_stream.batch import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)
    write_csv(fs_batch_env / "landing" / "transactions" / "a.csv", sample_rows(100))
    assert run() == 0
    err = capsys.readouterr().err
    assert "ecommerce_transactions_fs.transactions: 100 rows" in err and "100%" in err and "\r" not in err


def test_progress_bar_on_a_terminal() -> None:
    import io

    from atlas_stream.batch.progress import Progress

    out = io.StringIO()
    bar = Progress("ds", 1000, "B", stream=out, tty=True)
    bar.update(50, 500)
    bar.update(50, 1000)
    bar.close()
    text = out.getvalue()
    assert "100%" in text and "100 rows" in text and "rows/s" in text


def test_max_rejected_fails_the_run_with_the_summary(fs_batch_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = sample_rows(1000)
    write_csv(fs_batch_env / "landing" / "transactions" / "a.csv", rows)
    rejected = expected_tiers(rows, datetime.now(timezone.utc))["rejected"] / len(rows)
    assert 0.02 < rejected < 0.5
    assert run("--max-rejected", f"{rejected + 0.01:.3f}") == 0
    capsys.readouterr()
    assert run("--json", "--max-rejected", f"{rejected - 0.01:.3f}") == 3
    out, err = capsys.readouterr()
    assert json.loads(out)["datasets"]["transactions"]["tiers"]["rejected"] == round(rejected * 1000)
    assert f"{rejected:.1%} of the rows were rejected, above --max-rejected" in err
    assert len(lake_rows(fs_batch_env / "lake")) == 1000, "the rows are committed; the exit code tells the scheduler"
    assert run("--max-rejected", "5") == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_spark_engine_without_pyspark_says_what_to_install(fs_batch_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import sys

    write_csv(fs_batch_env / "landing" / "transactions" / "a.csv", sample_rows(10))
    monkeypatch.setitem(sys.modules, "pyspark", None)
    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    assert run("--engine", "spark") == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--engine spark needs pyspark: pip install" in err
    assert not (fs_batch_env / "lake").exists() or not list((fs_batch_env / "lake").rglob("*.parquet"))

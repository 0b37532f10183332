"""``batch --engine spark`` on a real local Spark (one session per module, ``local[1]``): the same
rows, tiers and Arrow types as ``--engine arrow``, both equal record by record to the stream's
scorer (sample contracts, fuzzed values, PostgreSQL and MariaDB tables), reruns that replace, and bad input
that fails in one line without committing anything."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy.engine import URL

from atlas_stream.batch.spark import JDBC_DRIVERS, spark_session
from atlas_stream.cli import main
from atlas_stream.contracts import load_contract
from atlas_stream.devbroker import free_port
from atlas_stream.lake import dataset_features, lake_schema
from atlas_stream.messages import decode_raw
from atlas_stream.model import Dataset
from atlas_stream.quality import DatasetScorer
from atlas_stream.sources.database.rows import encode_row

from ...batch_samples import CONTRACT as FS_CONTRACT
from ...batch_samples import FUZZ_KINDS, fuzz_value, sample_rows, write_csv
from ..databases import CONTRACT as RDBMS_CONTRACT
from ..databases import ORDER_COLUMNS, contract_for, create_orders

pytest.importorskip("pyspark", reason="the spark extra of requirements.txt is not installed")


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = spark_session("local[1]", sorted({coord for coord, *_ in JDBC_DRIVERS.values()}))
    try:
        yield session
    finally:
        session.stop()


def batch(monkeypatch: pytest.MonkeyPatch, lake: Path, ocs: str, *args: str) -> int:
    """``batch`` into ``lake``; the test's environment comes from the ``fs_batch_env`` fixture."""
    monkeypatch.setenv("ATLAS_LAKE_URI", str(lake))
    if "ATLAS_SPARK_MASTER" not in os.environ:
        monkeypatch.setenv("ATLAS_SPARK_MASTER", "local[1]")
    return main(["batch", "--ocs", ocs, *args])


def lake_files(lake: Path) -> list[Path]:
    return sorted(p for p in lake.rglob("*") if p.is_file())


def lake_records(lake: Path, key: str) -> dict[Any, dict[str, Any]]:
    """Every lake row by its key column; a key twice fails the test (duplicates)."""
    out: dict[Any, dict[str, Any]] = {}
    for path in lake_files(lake):
        assert path.name.startswith("batch-") and path.suffix == ".parquet", f"left behind: {path}"
        for row in pq.read_table(path).to_pylist():
            assert row[key] not in out, f"{key} {row[key]} twice in {lake}"
            assert f"tier={row['_tier']}" in str(path)
            out[row[key]] = row
    return out


def assert_three_way(ds: Dataset, records: dict[Any, dict[str, Any]], lakes: list[Path], key: str) -> None:
    """Each lake holds every record once, with the stream scorer's tier, score, failures and typed
    values (scored at the run's ``_ingested_at``, as the batch run scores)."""
    scorer = DatasetScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    schema = lake_schema(dataset_features(ds))
    tiers = set()
    for lake in lakes:
        assert pq.read_schema(lake_files(lake)[0]).remove_metadata() == schema
        got = lake_records(lake, key)
        assert sorted(got) == sorted(records)
        for k, rec in records.items():
            row = got[k]
            want = scorer.process(rec, row["_ingested_at"])
            where = f"{lake.name} {key}={k}: {rec!r}"
            assert (row["_tier"], row["_score"], row["_failures"]) == \
                (want.report.tier, want.report.score, list(want.report.failures)), where
            for name in schema.names:
                if not name.startswith("_"):
                    assert row[name] == want.record.get(name), f"{where}: {name}"
            tiers.add(row["_tier"])
    assert len(tiers) >= 2, "the inputs should reach several tiers"


def keyed_sample_rows(n: int, seed: int) -> list[dict[str, str]]:
    rows = sample_rows(n, seed)
    for i, row in enumerate(rows):  # unique keys to match rows by; every 7th one breaks the pattern
        row["transaction_id"] = f"tx-{seed}-{i}" if i % 7 == 0 else f"TX-{seed:03d}{i:07d}"
    return rows


def test_sample_contract_csv_files_three_ways_and_reruns_replace(spark: Any, fs_batch_env: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    landing = fs_batch_env / "landing" / "transactions"
    rows = keyed_sample_rows(1500, 1) + keyed_sample_rows(700, 2)
    write_csv(landing / "a.csv", rows[:1500])
    write_csv(landing / "b.csv", rows[1500:])
    ocs = "ecommerce_transactions_fs"
    assert batch(monkeypatch, fs_batch_env / "arrow", ocs) == 0
    assert batch(monkeypatch, fs_batch_env / "spark", ocs, "--engine", "spark") == 0
    ds = load_contract(FS_CONTRACT).datasets[0]
    assert_three_way(ds, {r["transaction_id"]: r for r in rows}, [fs_batch_env / "arrow", fs_batch_env / "spark"],
                     "transaction_id")

    first = lake_files(fs_batch_env / "spark")
    assert batch(monkeypatch, fs_batch_env / "spark", ocs, "--engine", "spark") == 0
    assert set(lake_files(fs_batch_env / "spark")).isdisjoint(first), "a rerun replaces the earlier files"
    assert len(lake_records(fs_batch_env / "spark", "transaction_id")) == len(rows)

    # the arrow engine's run on the same input replaces the spark engine's output, too
    assert batch(monkeypatch, fs_batch_env / "spark", ocs) == 0
    assert all(p.name.endswith("-0.parquet") for p in lake_files(fs_batch_env / "spark"))


def test_json_lines_and_parquet(spark: Any, fs_batch_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = keyed_sample_rows(800, 3)
    records = [{k: v for k, v in r.items() if v != ""} for r in rows]
    for r in records[:100]:
        r["quantity"] = int(r["quantity"]) if r.get("quantity", "x").isdigit() else r.get("quantity")
    ds = load_contract(FS_CONTRACT).datasets[0]
    for fmt in ("jsonl", "parquet"):
        folder = fs_batch_env / "landing" / fmt
        folder.mkdir()
        if fmt == "jsonl":
            (folder / "a.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records[:500]) + b"\n{broken\n")
            (folder / "b.jsonl").write_bytes(b"\n".join(orjson.dumps(r) for r in records[500:]) + b"\n")
            want = {r["transaction_id"]: r for r in records}
        else:
            pq.write_table(pa.Table.from_pylist(rows), folder / "a.parquet")
            want = {r["transaction_id"]: r for r in rows}
        meta = fs_batch_env / f"meta-{fmt}"
        meta.mkdir()
        doc = json.loads(FS_CONTRACT.read_text())
        doc["dataset_config"][0]["source"].update(path=str(folder), format=fmt)
        doc["source_config"]["format"] = fmt
        (meta / "c.json").write_text(json.dumps(doc))
        monkeypatch.setenv("ATLAS_METADATA_DIR", str(meta))
        lakes = [fs_batch_env / f"arrow-{fmt}", fs_batch_env / f"spark-{fmt}"]
        assert batch(monkeypatch, lakes[0], "ecommerce_transactions_fs") == 0
        assert batch(monkeypatch, lakes[1], "ecommerce_transactions_fs", "--engine", "spark") == 0
        assert_three_way(ds, want, lakes, "transaction_id")


FUZZ_CONTRACT = {
    "ocs_group_name": "fuzz_fs",
    "source_type": "fs",
    "source_config": {"format": "csv", "header": True},
    "dataset_config": [{
        "source": {
            "name": "values", "path": "", "format": "csv", "key": "rid",
            "null_values": ["NA", "N/A", "NULL", "null", "-"],
            "features": [
                {"name": "rid", "dtype": "int", "required": True},
                {"name": "i", "dtype": "int", "required": True, "min": 0.5, "max": 1000},
                {"name": "b", "dtype": "bigint", "pattern": "[0-9]{2}", "allowed": [12, -3, 0, 1]},
                {"name": "f", "dtype": "double", "min": -1, "max": 1e19, "pattern": "\\d+\\.\\d+"},
                {"name": "d", "dtype": "decimal(6,2)", "min": 0.005, "max": 1000, "max_length": 5},
                {"name": "d0", "dtype": "decimal(38,0)"},
                {"name": "s", "dtype": "string", "pattern": "[A-Z][a-z]+", "max_length": 5,
                 "allowed": ["Ann", "straße", "US", "12", "true"]},
                {"name": "flag", "dtype": "bool", "allowed": [True]},
                {"name": "day", "dtype": "date", "min": "2025-01-01", "max": "2025-12-31"},
                {"name": "ts", "dtype": "timestamp", "required": True, "min": "2025-01-01T00:00:00Z",
                 "max": "2027-06-01T12:00:00+00:00", "pattern": ".*00:00"},
            ],
        },
        "quality": {
            "tiers": {"gold": 1.0, "silver": 0.8},
            "rules": [{"name": "sum", "expr": "i + f > 2"}, {"name": "ratio", "expr": "f / i < 10"},
                      {"name": "mod", "expr": "b % 3 == 1"}, {"name": "text", "expr": "s + 'x' != 'Annx' or flag"},
                      {"name": "mixed", "expr": "abs(-d) >= 0 and not (i == 12.0)"},
                      {"name": "div", "expr": "i / (i - i) > 0 or d > 5"}],
            "event_time": "ts", "freshness": "P7D",
        },
        "destination": {"path": "fuzz/values", "parquet_tiers": ["gold", "silver", "bronze", "rejected"]},
    }],
}


def test_fuzzed_values_three_ways(spark: Any, fs_batch_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(21)
    records = []
    for rid in range(2500):
        rec = {"rid": str(rid)}
        for name, kind in FUZZ_KINDS.items():
            # a CSV line holds no line break (both engines read one line per row)
            rec[name] = fuzz_value(rng, kind, True).replace("\n", " ").replace("\r", " ")
        records.append(rec)
    folder = fs_batch_env / "landing" / "fuzz"
    folder.mkdir()
    write_csv(folder / "a.csv", records)
    doc = json.loads(json.dumps(FUZZ_CONTRACT))
    doc["dataset_config"][0]["source"]["path"] = str(folder / "*.csv")
    meta = fs_batch_env / "meta"
    meta.mkdir()
    (meta / "fuzz.json").write_text(json.dumps(doc))
    monkeypatch.setenv("ATLAS_METADATA_DIR", str(meta))
    lakes = [fs_batch_env / "arrow", fs_batch_env / "spark"]
    assert batch(monkeypatch, lakes[0], "fuzz_fs") == 0
    assert batch(monkeypatch, lakes[1], "fuzz_fs", "--engine", "spark") == 0
    ds = load_contract(meta / "fuzz.json").datasets[0]
    assert_three_way(ds, {int(r["rid"]): r for r in records}, lakes, "rid")


def test_database_table_three_ways(spark: Any, fs_batch_env: Path, db: tuple[str, URL],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    kind, url = db
    rows = create_orders(url, 3000)
    monkeypatch.setenv("ATLAS_RDBMS_URL", url.render_as_string(hide_password=False))
    monkeypatch.setenv("ATLAS_METADATA_DIR", str(contract_for(fs_batch_env, kind)))
    lakes = [fs_batch_env / "arrow", fs_batch_env / "spark"]
    assert batch(monkeypatch, lakes[0], "ecommerce_transactions_rdbms", "--fetch-size", "700") == 0
    assert batch(monkeypatch, lakes[1], "ecommerce_transactions_rdbms", "--engine", "spark",
                 "--fetch-size", "700") == 0
    ds = load_contract(RDBMS_CONTRACT).datasets[0]
    records = {row[0]: decode_raw(encode_row(ORDER_COLUMNS, row)) for row in rows}
    assert_three_way(ds, records, lakes, "order_id")


def test_bad_input_fails_in_one_line_and_commits_nothing(spark: Any, fs_batch_env: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    landing = fs_batch_env / "landing" / "transactions"
    rows = keyed_sample_rows(300, 4)
    write_csv(landing / "a.csv", rows)
    lake = fs_batch_env / "lake"
    ocs = "ecommerce_transactions_fs"
    assert batch(monkeypatch, lake, ocs, "--engine", "spark") == 0
    committed = lake_files(lake)
    capsys.readouterr()

    def fails(*args: str, master: str = "local[1]") -> str:
        monkeypatch.setenv("ATLAS_SPARK_MASTER", master)
        assert batch(monkeypatch, lake, *args) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and err.count("\n") == 0, err
        assert lake_files(lake) == committed, "the previous output stays, nothing partial is added"
        return err

    # a column missing in one of many files
    write_csv(landing / "b.csv", [{k: v for k, v in r.items() if k != "status"} for r in rows[:20]])
    assert "b.csv: has no column 'status'" in fails(ocs, "--engine", "spark")
    (landing / "b.csv").unlink()

    # a Spark master nobody listens on
    err = fails(ocs, "--engine", "spark", master=f"spark://127.0.0.1:{free_port()}")
    assert "cannot be reached" in err and "ATLAS_SPARK_MASTER" in err

    # a file that is not the declared format: the contract says Parquet, the file is CSV
    meta = fs_batch_env / "meta"
    meta.mkdir()
    doc = json.loads(FS_CONTRACT.read_text())
    (landing / "c.parquet").write_text((landing / "a.csv").read_text())
    doc["dataset_config"][0]["source"].update(path=str(landing / "*.parquet"), format="parquet")
    (meta / "c.json").write_text(json.dumps(doc))
    monkeypatch.setenv("ATLAS_METADATA_DIR", str(meta))
    assert "c.parquet" in fails(ocs, "--engine", "spark")
    assert "c.parquet" in fails(ocs)

    # ... JSON lines declared, CSV inside: a task fails; its temporary files are removed
    (landing / "d.jsonl").write_text((landing / "a.csv").read_text())
    doc["dataset_config"][0]["source"].update(path=str(landing / "*.jsonl"), format="jsonl")
    (meta / "c.json").write_text(json.dumps(doc))
    assert "d.jsonl: is not JSON lines" in fails(ocs, "--engine", "spark")
    assert "d.jsonl: is not JSON lines" in fails(ocs)

    # a database without a JDBC driver for Spark (the arrow engine reads it through SQLAlchemy)
    rdbms = json.loads((RDBMS_CONTRACT).read_text())
    rdbms["source_config"]["url"] = f"sqlite:///{fs_batch_env / 'shop.db'}"
    (meta / "c.json").write_text(json.dumps(rdbms))
    err = fails("ecommerce_transactions_rdbms", "--engine", "spark")
    assert "no JDBC driver for sqlite" in err


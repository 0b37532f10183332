"""``batch`` into S3 (moto) and WebHDFS lakes through the stream's lake layer: every row in the
Parquet of its tier, a rerun replacing the first run's files, no temporary file left, and a
failed run leaving the committed output as it was."""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from atlas_stream.cli import main
from atlas_stream.sinks.lakefs import Lake, open_lake

from ...batch_samples import expected_tiers, sample_rows, write_csv


@pytest.fixture
def lake(fs_batch_env: Path, remote_lake: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch) -> Lake:
    """``fs_batch_env`` with its lake in S3 or WebHDFS."""
    uri, endpoint = remote_lake
    if endpoint is not None:
        monkeypatch.setenv("ATLAS_S3_ENDPOINT", endpoint)
    monkeypatch.setenv("ATLAS_LAKE_URI", uri)
    return open_lake(uri, s3_endpoint=endpoint)


def lake_tiers(lake: Lake) -> tuple[Counter[str], list[str]]:
    """Rows per tier folder (checked against the ``_tier`` column) and every file name."""
    tiers: Counter[str] = Counter()
    names = []
    for entry in lake.list_files(""):
        names.append(entry.path.rsplit("/", 1)[-1])
        if not entry.path.endswith(".parquet"):
            continue
        with lake.fs.open_input_file(lake.full(entry.path)) as f:
            table = pq.read_table(f)
        folder = entry.path.split("/tier=")[1].split("/")[0]
        assert set(table.column("_tier").to_pylist()) == {folder}
        tiers[folder] += table.num_rows
    return tiers, names


def test_batch_lands_in_s3_and_webhdfs_and_reruns_replace(lake: Lake, tmp_path: Path) -> None:
    rows = sample_rows(600)
    write_csv(tmp_path / "landing" / "transactions" / "a.csv", rows)
    want = expected_tiers(rows, datetime.now(UTC))
    assert main(["batch", "--ocs", "ecommerce_transactions_fs"]) == 0
    first, names = lake_tiers(lake)
    assert first == want and sum(first.values()) == 600
    assert not [n for n in names if n.endswith(".tmp")]

    assert main(["batch", "--ocs", "ecommerce_transactions_fs"]) == 0  # replaces, never duplicates
    second, names_again = lake_tiers(lake)
    assert second == want
    assert set(names_again).isdisjoint(names)

    # A second file whose header lacks a column: one clear line, exit 2, the output of run 2 stays.
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow([k for k in rows[0] if k != "currency"])
    w.writerow([v for k, v in rows[0].items() if k != "currency"])
    (tmp_path / "landing" / "transactions" / "b.csv").write_text(buf.getvalue())
    assert main(["batch", "--ocs", "ecommerce_transactions_fs"]) == 2
    third, names_third = lake_tiers(lake)
    assert third == want and sorted(names_third) == sorted(names_again)

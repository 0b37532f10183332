"""atlas_stream.score_frame: a pandas DataFrame scored exactly as the stream scores the same rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import atlas_stream
from atlas_stream.contracts import contract_for_group
from atlas_stream.errors import ConfigError
from atlas_stream.quality import DatasetScorer
from atlas_stream.samples import SampleGenerator

from .builders import sample_values

METADATA = Path(__file__).resolve().parents[2] / "metadata"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
GROUP = "ecommerce_transactions_streaming"


def _plain(value: Any) -> Any:
    return None if isinstance(value, float) and value != value else value


@pytest.mark.parametrize("dataset", ["transactions", "clickstream"])
def test_score_frame_matches_the_stream_row_by_row(dataset: str) -> None:
    ds = next(d for d in contract_for_group(METADATA, GROUP).datasets if d.name == dataset)
    values = sample_values(SampleGenerator(ds, seed=5, defect_rate=0.3), 500, NOW - timedelta(minutes=30))
    records = [rec for rec in values
               if isinstance(rec, dict) and all(not isinstance(v, (dict, list)) for v in rec.values())]
    assert len(records) > 300
    df = pd.DataFrame(records, index=[f"r{i}" for i in range(len(records))])
    out = atlas_stream.score_frame(df, GROUP, dataset, metadata_dir=METADATA, ingest_time=NOW)
    assert list(out.index) == list(df.index) and list(out.columns) == [*df.columns, "_tier", "_score", "_failures"]
    assert "_tier" not in df.columns  # the caller's frame is left alone
    stream = DatasetScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    for (label, row), (_, got) in zip(df.iterrows(), out.iterrows(), strict=True):
        report = stream.process({k: _plain(v) for k, v in row.items()}, NOW).report
        assert (got["_tier"], got["_score"], list(got["_failures"])) == (report.tier, report.score,
                                                                        list(report.failures)), label
    assert len(set(out["_tier"])) >= 3  # the defects reach several tiers
    # A column outside the schema fails the schema check on every row; without it rows reach gold.
    known = [c for c in df.columns if c in {f.name for f in ds.source_features}]
    assert "gold" in set(atlas_stream.score_frame(df[known], GROUP, dataset, metadata_dir=METADATA,
                                                  ingest_time=NOW)["_tier"])


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="has no dataset 'nope'; it has: transactions, clickstream"):
        atlas_stream.score_frame(pd.DataFrame({"a": [1]}), GROUP, "nope", metadata_dir=METADATA)


def test_the_docs_example_reads_one_tier_of_a_lake_with_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import re

    import pyarrow as pa
    import pyarrow.parquet as pq

    base = tmp_path / "lake" / "ecommerce" / "stream" / "transactions"
    for tier, date, amounts in (("gold", "2025-05-31", [500.0]), ("gold", "2025-06-01", [50.0, 150.0]),
                                ("silver", "2025-06-01", [999.0])):
        folder = base / f"tier={tier}" / f"ingest_date={date}"
        folder.mkdir(parents=True)
        n = len(amounts)
        pq.write_table(pa.table({"transaction_id": [f"{tier}-{date}-{i}" for i in range(n)], "amount": amounts,
                                 "currency": ["USD"] * n, "_tier": [tier] * n, "_score": [1.0] * n,
                                 "_ingested_at": pa.array([NOW] * n, pa.timestamp("us", tz="UTC"))}),
                       folder / "t+0+0+0.parquet")
    doc = (Path(__file__).resolve().parents[2] / "docs" / "lake.md").read_text()
    example = re.findall(r"```python\n(.*?)```", doc.split("## pandas", 1)[1], re.S)[0]
    monkeypatch.chdir(tmp_path)
    scope: dict[str, Any] = {}
    exec(example, scope)  # noqa: S102  # the documented snippet, as written
    assert list(scope["gold"]["transaction_id"]) == ["gold-2025-06-01-1"]

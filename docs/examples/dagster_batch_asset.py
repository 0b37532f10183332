"""Example Dagster asset (not a dependency of Atlas Stream): the lake tiers of a batch contract,
materialised by ``python -m atlas_stream batch``; the run fails when more than 5 % of a dataset's
rows are rejected, with the summary attached as metadata.

``batch --json --max-rejected 0.05`` prints the summary as JSON and exits 3 when the rejected
share is above the limit, 2 on bad input (one ``error:`` line on stderr). Load it with
``dagster dev -f docs/examples/dagster_batch_asset.py`` from the Atlas Stream checkout.
"""

from __future__ import annotations

import json
import subprocess
import sys

from dagster import Definitions, Failure, MaterializeResult, MetadataValue, asset

MAX_REJECTED = 0.05


@asset(group_name="atlas_stream", description="ecommerce transactions scored into the lake's tiers")
def ecommerce_transactions_lake() -> MaterializeResult:
    run = subprocess.run([sys.executable, "-m", "atlas_stream", "batch", "--ocs", "ecommerce_transactions_fs",
                          "--json", "--max-rejected", str(MAX_REJECTED)], capture_output=True, text=True)
    if run.returncode not in (0, 3):
        raise Failure(description=run.stderr.strip() or f"batch exited with code {run.returncode}")
    summary = json.loads(run.stdout)
    metadata = {"rows": summary["rows"], "seconds": summary["seconds"],
                "summary": MetadataValue.json(summary)}
    if run.returncode == 3:
        raise Failure(description=run.stderr.strip(), metadata=metadata)
    return MaterializeResult(metadata=metadata)


defs = Definitions(assets=[ecommerce_transactions_lake])

"""Batch adapters: files and database tables scored on Arrow record batches into the lake.

Modules: arrow_values (coercion), arrow_expr (rule language), arrow_transform, arrow_quality
(scoring), scoring (tiers of a batch, shared by both engines), readers and database (inputs),
writer (lake output), progress, run (the command), spark and spark_session (``--engine spark``).
"""

from __future__ import annotations

import argparse

__all__ = ["add_arguments"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The ``batch`` command's options (kept here so that building the CLI imports no pyarrow)."""
    p.add_argument("--ocs", required=True, help="the contract's ocs_group_name (an fs or rdbms contract)")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--fetch-size", type=int, default=None,
                   help="rows per batch (database fetchmany size; Parquet and JSON batches)")
    p.add_argument("--to-kafka", action="store_true", help="publish the rows to the raw topics instead (backfill)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--engine", choices=("arrow", "spark"), default="arrow",
                   help="arrow (one process, the default) or spark (ATLAS_SPARK_MASTER; pip install pyspark)")
    p.add_argument("--max-rejected", type=float, default=None, metavar="SHARE",
                   help="exit with code 3 when a dataset's rejected rows exceed this share (0.05: 5 %%)")

"""Commands for the ecosystem around the lake: Hive DDL and Kibana saved objects."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .contracts import load_contracts
from .settings import Settings
from .sinks.hive import hive_ddl
from .sinks.kibana import saved_objects

__all__ = ["add_parsers", "hive_ddl_command", "kibana_command"]


def hive_ddl_command(args: argparse.Namespace, settings: Settings) -> int:
    """Print CREATE EXTERNAL TABLE ... for every dataset (or those of --ocs)."""
    for contract in load_contracts(settings.metadata_dir):
        if args.ocs and contract.group not in args.ocs:
            continue
        for ds in contract.datasets:
            print(hive_ddl(ds, settings.lake_uri, database=args.database))
            print()
    return 0


def kibana_command(args: argparse.Namespace, settings: Settings) -> int:
    """Write one saved-objects ndjson file per dataset (import: Kibana > Saved objects > Import)."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for contract in load_contracts(settings.metadata_dir):
        if args.ocs and contract.group not in args.ocs:
            continue
        for ds in contract.datasets:
            path = out / f"{ds.group}.{ds.name}.ndjson"
            path.write_text(saved_objects(ds))
            print(f"wrote {path}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    h = sub.add_parser("hive-ddl", help="print Hive/Spark/Trino CREATE EXTERNAL TABLE statements for the lake")
    h.add_argument("--ocs", action="append", help="only this group (repeatable)")
    h.add_argument("--database", default=None, help="qualify table names with this database")
    k = sub.add_parser("kibana", help="write Kibana saved objects (data view + tier pie) per dataset")
    k.add_argument("--ocs", action="append", help="only this group (repeatable)")
    k.add_argument("--out", default="kibana", help="output folder (default ./kibana)")

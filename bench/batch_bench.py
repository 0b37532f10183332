"""Rows/s of the batch command on a CSV file, next to pyarrow alone and the row-wise way.

    .venv/bin/python bench/batch_bench.py [--rows 1000000] [--rowwise-rows 200000] [--big-gb 0]

Generates a CSV of ``--rows`` rows (about 150 bytes each, ten columns of mixed types), then in
the same run:
- (a) pure pyarrow: ``pyarrow.csv.read_csv``, then ``pq.write_table``; no checks;
- (b) row-wise: read with pyarrow, ``to_pylist()``, score each dict with the stream's
  ``DatasetScorer`` (the same checks), ``Table.from_pylist``, write. Measured on the first
  ``--rowwise-rows`` rows (it is slow; its rate does not depend on the file size);
- (c) ``python -m atlas_stream batch --ocs bench_batch`` in a child process, end to end (start-up,
  reading, scoring, writing the lake, commit), with its peak memory (max RSS of the child).
With ``--big-gb N`` a second CSV of about N GB is generated and (c) is run on it alone for its
peak memory (the goal: under 500 MB for 2 GB).
Goals: (c) >= 0.5 x (a) and >= 20 x (b), in rows/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.contracts import load_contracts  # noqa: E402
from atlas_stream.quality import DatasetScorer  # noqa: E402

GROUP = "bench_batch"
COLUMNS = ["transaction_id", "customer_email", "order_date", "amount", "currency", "quantity", "unit_price",
           "status", "country", "note"]
WORDS = ["express", "gift", "wrapped", "fragile", "priority", "standard", "returned", "signature", "weekend"]


def write_csv(path: Path, rows: int, seed: int = 7) -> None:
    """About 150 bytes per row; roughly 5 % of the rows carry a defect."""
    rng = random.Random(seed)
    currencies, statuses = ["USD", "EUR", "GBP"], ["pending", "paid", "shipped", "delivered", "cancelled"]
    countries = ["US", "DE", "GB", "FR", "NL"]
    with open(path, "w") as f:
        f.write(",".join(COLUMNS) + "\n")
        lines = []
        for i in range(rows):
            qty = rng.randint(1, 9)
            price = rng.randint(100, 99999) / 100
            amount = f"{qty * price:.2f}"
            currency = rng.choice(currencies)
            country = rng.choice(countries)
            r = rng.random()
            if r < 0.01:
                amount = "NA"
            elif r < 0.02:
                currency = "XXX"
            elif r < 0.03:
                country = "usa"
            elif r < 0.04:
                price = -price
            note = " ".join(rng.choice(WORDS) for _ in range(6))
            lines.append(f"TX-{i:010d},customer.{rng.randint(0, 9_999_999):07d}@example.com,"
                         f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:00.{i % 1000:03d}Z,"
                         f"{amount},{currency},{qty},{price:.2f},{rng.choice(statuses)},{country},{note}\n")
            if len(lines) == 10_000:
                f.writelines(lines)
                lines = []
        f.writelines(lines)


def contract(path: Path) -> dict[str, object]:
    return {
        "ocs_group_name": GROUP, "source_type": "fs", "source_config": {"format": "csv"},
        "dataset_config": [{
            "source": {"name": "rows", "path": str(path), "key": "transaction_id",
                       "null_values": ["", "NA", "N/A", "NULL", "null"],
                       "features": [
                           {"name": "transaction_id", "dtype": "string", "required": True, "pattern": "^TX-[0-9]{10}$"},
                           {"name": "customer_email", "dtype": "string", "max_length": 254,
                            "pattern": "^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$"},
                           {"name": "order_date", "dtype": "timestamp", "required": True,
                            "min": "2015-01-01T00:00:00Z"},
                           {"name": "amount", "dtype": "decimal(12,2)", "required": True, "min": 0},
                           {"name": "currency", "dtype": "string", "allowed": ["USD", "EUR", "GBP"]},
                           {"name": "quantity", "dtype": "int", "min": 1, "max": 10000},
                           {"name": "unit_price", "dtype": "double", "min": 0},
                           {"name": "status", "dtype": "string",
                            "allowed": ["pending", "paid", "shipped", "delivered", "cancelled"]},
                           {"name": "country", "dtype": "string", "max_length": 2, "pattern": "^[A-Z]{2}$"},
                           {"name": "note", "dtype": "string", "max_length": 200},
                       ]},
            "transformations": [{"type": "trim", "fields": ["currency", "country"]},
                                {"type": "lower", "fields": ["status"]}],
            "quality": {"rules": [{"name": "amount_matches", "expr": "abs(amount - quantity * unit_price) < 0.01"},
                                  {"name": "priced", "expr": "status == 'cancelled' or unit_price > 0"}]},
            "destination": {"path": "bench/rows"},
        }],
    }


def pure_pyarrow(path: Path, out: Path) -> tuple[int, float]:
    t = time.perf_counter()
    table = pacsv.read_csv(path)
    pq.write_table(table, out)
    return table.num_rows, time.perf_counter() - t


def row_wise(path: Path, out: Path, metadata: Path, limit: int) -> tuple[int, float]:
    ds = load_contracts(metadata)[0].datasets[0]
    scorer = DatasetScorer(ds.schema, ds.quality, ds.transformations, ds.source_features, ds.null_values)
    now = datetime.now(timezone.utc)
    t = time.perf_counter()
    opts = pacsv.ConvertOptions(column_types={c: pa.string() for c in COLUMNS}, strings_can_be_null=False)
    table = pacsv.read_csv(path, convert_options=opts).slice(0, limit)
    rows = []
    for rec in table.to_pylist():
        scored = scorer.process(rec, now)
        r = scored.report
        rows.append({**scored.record, "_tier": r.tier, "_score": r.score, "_failures": list(r.failures)})
    pq.write_table(pa.Table.from_pylist(rows), out)
    return len(rows), time.perf_counter() - t


def _peak_kb(pid: int) -> int:
    """VmHWM of a process: its peak RSS since its exec (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def batch_command(metadata: Path, lake: Path) -> tuple[int, float, float]:
    """(rows, seconds, peak RSS in MB) of ``python -m atlas_stream batch`` in a child process.

    The peak is the child's VmHWM, read every 10 ms while it runs (ru_maxrss from wait4 would
    count the memory of this process at fork time: the child starts as a copy of it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_METADATA_DIR": str(metadata), "ATLAS_LAKE_URI": str(lake)})
    out = open(lake.parent / "batch-summary.json", "w+b")
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "batch", "--ocs", GROUP, "--json"], cwd=ROOT,
                            env=env, stdout=out, stderr=subprocess.DEVNULL)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _peak_kb(proc.pid))
        time.sleep(0.01)
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"batch command failed with exit code {proc.returncode}")
    out.seek(0)
    return json.loads(out.read())["rows"], seconds, peak / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rowwise-rows", type=int, default=200_000)
    ap.add_argument("--big-gb", type=float, default=0.0, help="also measure peak memory on a CSV of this size")
    ap.add_argument("--dir", default=None, help="work folder (default: a temporary one, removed at the end)")
    args = ap.parse_args()
    work = Path(args.dir or tempfile.mkdtemp(prefix="atlas-batch-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        csv_path = work / "input.csv"
        print(f"generating {args.rows:,} rows ...", flush=True)
        write_csv(csv_path, args.rows)
        size = csv_path.stat().st_size
        print(f"CSV: {size / 1e6:.0f} MB, {size / args.rows:.0f} bytes per row")
        metadata = work / "metadata"
        metadata.mkdir(exist_ok=True)
        (metadata / f"{GROUP}.json").write_text(json.dumps(contract(csv_path)))

        n_a, s_a = pure_pyarrow(csv_path, work / "pure.parquet")
        n_b, s_b = row_wise(csv_path, work / "rowwise.parquet", metadata, min(args.rowwise_rows, args.rows))
        shutil.rmtree(work / "lake", ignore_errors=True)
        n_c, s_c, rss_c = batch_command(metadata, work / "lake")
        assert n_c == args.rows, (n_c, args.rows)
        a, b, c = n_a / s_a, n_b / s_b, n_c / s_c
        print(f"(a) pure pyarrow read_csv + write_table: {a:>12,.0f} rows/s  ({n_a:,} rows in {s_a:.2f} s)")
        print(f"(b) row-wise to_pylist + Python checks:  {b:>12,.0f} rows/s  ({n_b:,} rows in {s_b:.2f} s)")
        print(f"(c) python -m atlas_stream batch:        {c:>12,.0f} rows/s  ({n_c:,} rows in {s_c:.2f} s, "
              f"peak RSS {rss_c:.0f} MB)")
        print(f"(c)/(a) = {c / a:.2f} (goal >= 0.5)   (c)/(b) = {c / b:.1f} (goal >= 20)")
        if args.big_gb > 0:
            big = work / "big.csv"
            rows = int(args.big_gb * 1e9 / (size / args.rows))
            print(f"generating {rows:,} rows (about {args.big_gb:g} GB) ...", flush=True)
            write_csv(big, rows, seed=8)
            (metadata / f"{GROUP}.json").write_text(json.dumps(contract(big)))
            shutil.rmtree(work / "lake", ignore_errors=True)
            n, s, rss = batch_command(metadata, work / "lake")
            print(f"(c) on {big.stat().st_size / 1e9:.2f} GB: {n:,} rows in {s:.1f} s ({n / s:,.0f} rows/s), "
                  f"peak RSS {rss:.0f} MB (goal < 500 MB)")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

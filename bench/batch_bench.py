"""Rows/s of the batch command on a CSV file, next to pyarrow alone, the row-wise way and Spark.

    .venv/bin/python bench/batch_bench.py [--rows 3000000] [--repeat 3] [--rowwise-rows 200000]
                                          [--big-gb 0] [--spark]

Generates a CSV of ``--rows`` rows (about 150 bytes each, ten columns of mixed types), then in
the same run, every program a whole child process (start-up included), best of ``--repeat``
(the runs of (a) and (c) alternate, so that a busy machine slows both alike):
- (a) pure pyarrow: ``pyarrow.csv.read_csv``, then ``pq.write_table``; no checks;
- (b) row-wise: read with pyarrow, ``to_pylist()``, score each dict with the stream's
  ``DatasetScorer`` (the same checks), ``Table.from_pylist``, write. Measured in this process on
  the first ``--rowwise-rows`` rows (it is slow; its rate does not depend on the file size);
- (c) ``python -m atlas_stream batch --ocs bench_batch``, end to end (start-up, reading, scoring,
  writing the lake, commit), with its peak memory (max RSS of the child).
With ``--spark``, on ``local[2]``, best of ``--spark-repeat``: (d) plain Spark reading the CSV
(header, all columns text) and writing Parquet, no checks; (e) ``batch --engine spark``.
With ``--big-gb N`` a second CSV of about N GB is generated and (c) is run on it alone for its
peak memory (the goal: under 500 MB for 2 GB).
Goals: (c) >= 0.7 x (a) and >= 20 x (b), in rows/s; (e) >= 0.5 x (d).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


PURE_PYARROW = """
import sys
import pyarrow.csv, pyarrow.parquet
pyarrow.parquet.write_table(pyarrow.csv.read_csv(sys.argv[1]), sys.argv[2])
"""

PLAIN_SPARK = """
import sys
from pyspark.sql import SparkSession
spark = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
spark.read.options(header="true").csv(sys.argv[1]).write.mode("overwrite").parquet(sys.argv[2])
"""


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


@dataclass
class Run:
    seconds: float  # wall clock
    cpu: float  # user + system seconds of the child (and the children it waited for; not Spark's JVM)
    peak_mb: float  # the child's peak RSS (not its children's)
    stdout: bytes


def child(args: list[str], env: dict[str, str] | None = None) -> Run:
    """Run a child process to the end: wall and CPU seconds, peak RSS. The peak is the child's
    VmHWM, read every 10 ms while it runs (ru_maxrss from wait4 would count the memory of this
    process at fork time: the child starts as a copy of it)."""
    with tempfile.TemporaryFile() as out:
        t = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _peak_kb(proc.pid))
            time.sleep(0.01)
        seconds = time.perf_counter() - t
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise SystemExit(f"{args[:4]} failed with exit code {proc.returncode}")
        out.seek(0)
        return Run(seconds, usage.ru_utime + usage.ru_stime, peak / 1024, out.read())


def best(runs: list[Run]) -> Run:
    return min(runs, key=lambda r: r.seconds)


class Children:
    """CPU seconds per child: RUSAGE_CHILDREN only grows, so each run reports the difference."""

    def __init__(self) -> None:
        self.cpu = 0.0

    def run(self, args: list[str], env: dict[str, str] | None = None) -> Run:
        r = child(args, env)
        r.cpu, self.cpu = r.cpu - self.cpu, r.cpu
        return r


def batch_env(metadata: Path, lake: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_METADATA_DIR": str(metadata), "ATLAS_LAKE_URI": str(lake), **extra})
    return env


def batch_command(children: Children, metadata: Path, lake: Path, *extra: str, **env: str) -> tuple[int, Run]:
    """(rows, run) of ``python -m atlas_stream batch`` in a child process."""
    shutil.rmtree(lake, ignore_errors=True)
    run = children.run([sys.executable, "-m", "atlas_stream", "batch", "--ocs", GROUP, "--json", *extra],
                       batch_env(metadata, lake, **env))
    return json.loads(run.stdout)["rows"], run


def line(label: str, rows: int, run: Run) -> str:
    return (f"{label:<42} {rows / run.seconds:>12,.0f} rows/s  ({rows:,} rows in {run.seconds:.2f} s, "
            f"{run.cpu:.1f} CPU s, peak RSS {run.peak_mb:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=3_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of (a) and (c); the best counts")
    ap.add_argument("--spark", action="store_true", help="also (d) plain Spark and (e) batch --engine spark")
    ap.add_argument("--spark-repeat", type=int, default=1)
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

        children = Children()
        runs_a, runs_c = [], []
        n_c = 0
        for _ in range(args.repeat):
            runs_a.append(children.run([sys.executable, "-c", PURE_PYARROW, str(csv_path), str(work / "pure.parquet")]))
            n_c, run_c = batch_command(children, metadata, work / "lake")
            runs_c.append(run_c)
        assert n_c == args.rows, (n_c, args.rows)
        n_b, s_b = row_wise(csv_path, work / "rowwise.parquet", metadata, min(args.rowwise_rows, args.rows))
        ra, rc = best(runs_a), best(runs_c)
        a, b, c = args.rows / ra.seconds, n_b / s_b, n_c / rc.seconds
        print(line("(a) pure pyarrow read_csv + write_table:", args.rows, ra))
        print(f"(b) row-wise to_pylist + Python checks:    {b:>12,.0f} rows/s  ({n_b:,} rows in {s_b:.2f} s)")
        print(line("(c) python -m atlas_stream batch:", n_c, rc))
        print(f"(c)/(a) = {c / a:.2f} (goal >= 0.7; CPU seconds (a)/(c) = {ra.cpu / rc.cpu:.2f})   "
              f"(c)/(b) = {c / b:.1f} (goal >= 20)")
        print("    every run, wall seconds: (a) " + " ".join(f"{r.seconds:.2f}" for r in runs_a)
              + "  (c) " + " ".join(f"{r.seconds:.2f}" for r in runs_c))
        if args.spark:
            runs_d, runs_e = [], []
            for _ in range(args.spark_repeat):
                shutil.rmtree(work / "spark.parquet", ignore_errors=True)
                runs_d.append(children.run([sys.executable, "-c", PLAIN_SPARK, str(csv_path),
                                            str(work / "spark.parquet")], batch_env(metadata, work / "lake")))
                n_e, run_e = batch_command(children, metadata, work / "lake", "--engine", "spark",
                                           ATLAS_SPARK_MASTER="local[2]")
                assert n_e == args.rows, (n_e, args.rows)
                runs_e.append(run_e)
            rd, re_ = best(runs_d), best(runs_e)
            print(line("(d) plain Spark CSV -> Parquet, local[2]:", args.rows, rd))
            print(line("(e) batch --engine spark, local[2]:", args.rows, re_))
            print(f"(e)/(d) = {rd.seconds / re_.seconds:.2f} (goal >= 0.5)")
            print("    every run, wall seconds: (d) " + " ".join(f"{r.seconds:.2f}" for r in runs_d)
                  + "  (e) " + " ".join(f"{r.seconds:.2f}" for r in runs_e))
        if args.big_gb > 0:
            big = work / "big.csv"
            rows = int(args.big_gb * 1e9 / (size / args.rows))
            print(f"generating {rows:,} rows (about {args.big_gb:g} GB) ...", flush=True)
            write_csv(big, rows, seed=8)
            (metadata / f"{GROUP}.json").write_text(json.dumps(contract(big)))
            n, run = batch_command(children, metadata, work / "lake")
            print(f"(c) on {big.stat().st_size / 1e9:.2f} GB: {n:,} rows in {run.seconds:.1f} s "
                  f"({n / run.seconds:,.0f} rows/s), peak RSS {run.peak_mb:.0f} MB (goal < 500 MB)")
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

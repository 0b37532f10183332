"""``batch --engine spark``: the same scoring and lake output, with Apache Spark reading the input.

Spark reads the contract's files (CSV as text columns, JSON lines as text, Parquet) or tables
(JDBC, the contract's connection, columns, query and ``fetch_size``), and every Spark task hands
its Arrow record batches (``mapInArrow``) to :class:`~atlas_stream.batch.scoring.TierSplit`, the
arrow engine's scorer, then writes them with :class:`~atlas_stream.batch.writer.LakeWriter`
under the lake's temporary names. The driver commits once every task has succeeded (rename,
then the earlier runs' files of the same input are deleted), exactly as the arrow engine does;
if any task fails, the driver deletes the run's temporary files and the previous output stays.
The lake must therefore be reachable from the executors under the same URI (S3, HDFS, WebHDFS;
``file://`` only on one machine or a shared mount).

Guaranteed the same as ``--engine arrow``: tiers, scores, failures, typed values, columns,
Arrow types, file names and commit semantics. Not the same: ``_source_offset`` is Spark's
``monotonically_increasing_id`` (unique and increasing within a file, not the row number), and
rows of a CSV line with a wrong number of fields are dropped without being counted as skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import ConfigError, RecordError
from ..messages import decode_raw
from ..model import Contract, Dataset
from ..settings import Settings
from ..sinks.lakefs import LakeConfig
from .arrow_values import Col, json_default, json_view
from .database import DatabaseInput, column_of
from .progress import Summary
from .readers import BatchInputError, FileInput, RawBatch
from .records import columns_from_records
from .scoring import TierSplit, add_counts
from .spark_session import BATCH_ROWS, SparkError, spark_reason, spark_session
from .writer import LakeWriter, Staged, abort_run, commit_run

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

__all__ = ["JDBC_DRIVERS", "SparkError", "run_spark", "spark_session"]  # the last two from spark_session

_MARIADB = ("org.mariadb.jdbc:mariadb-java-client:3.5.1", "org.mariadb.jdbc.Driver", "mysql", "?permitMysqlScheme")
#: JDBC driver per SQLAlchemy backend: Maven coordinate, driver class, URL scheme and options.
#: MariaDB's driver is given a jdbc:mysql: URL: Spark picks its SQL dialect by the URL, and only
#: the MySQL dialect quotes names with backticks (with "id", MariaDB reads the text 'id').
JDBC_DRIVERS: dict[str, tuple[str, str, str, str]] = {
    "postgresql": ("org.postgresql:postgresql:42.7.4", "org.postgresql.Driver", "postgresql", ""),
    "mysql": _MARIADB,
    "mariadb": _MARIADB,
}
_ROW, _FILE = "__atlas_row", "__atlas_file"


def run_spark(contract: Contract, datasets: list[Dataset], settings: Settings, fetch_size: int | None,
              started: datetime, summary: Summary) -> None:
    packages = None
    if contract.source_type == "rdbms":
        packages = [_jdbc_driver(DatabaseInput(contract, ds, fetch_size))[0] for ds in datasets[:1]]
    spark = spark_session(settings.spark_master, packages)
    for ds in datasets:
        _dataset(spark, contract, ds, settings, fetch_size, started, summary)


@dataclass
class _Input:
    frame: DataFrame
    kind: str  # csv, jsonl, parquet, jdbc
    columns: list[str]
    key: str
    label: str


def _dataset(spark: SparkSession, contract: Contract, ds: Dataset, settings: Settings, fetch_size: int | None,
             started: datetime, summary: Summary) -> None:
    from .run import run_id

    found = _jdbc(spark, contract, ds, fetch_size) if contract.source_type == "rdbms" else \
        _files(spark, contract, ds, settings)
    lake_config = LakeConfig.from_settings(settings)
    lake = lake_config.open()
    run = run_id(started)
    writer = LakeWriter(lake, ds, TierSplit(ds, started).schema, found.key, run, started.date().isoformat())
    writer.check()
    task = _Task(ds, found.kind, found.columns, found.label, started, lake_config, found.key, run)
    try:
        reports = [json.loads(r[0]) for r in found.frame.mapInArrow(task, "report string").collect()]  # type: ignore[arg-type]
    except BaseException as exc:
        abort_run(lake, writer.base, writer.prefix, run)
        if isinstance(exc, Exception):
            raise SparkError(spark_reason(exc)) from None
        raise
    stats = summary.dataset(ds.name)
    staged = []
    for report in reports:
        stats["rows"] += report["rows"]
        stats["skipped"] += report["skipped"]
        add_counts(stats, report["tiers"], report["failures"])
        staged += [Staged(**item) for item in report["staged"]]
    stats["files"] += commit_run(lake, writer.base, writer.prefix, staged)


def _files(spark: SparkSession, contract: Contract, ds: Dataset, settings: Settings) -> _Input:
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType, StructField, StructType

    source = FileInput(contract, ds, settings, BATCH_ROWS)  # lists the files, checks formats and headers
    kinds = {source.options.format_of(p.name) for p in source.files}
    if len(kinds) != 1 or kinds & {"json", None}:
        raise ConfigError(f"{ds.subject}: --engine spark reads CSV, JSON lines or Parquet, one format per "
                          f"dataset (found {', '.join(sorted(str(k) for k in kinds))}); use --engine arrow")
    kind = str(kinds.pop())
    paths = [str(p) for p in source.files]
    columns: list[str] = []
    try:
        if kind == "csv":
            opts = source.options.csv
            columns = next(iter(source.headers.values())) if opts.header else list(opts.columns)
            frame = (spark.read.schema(StructType([StructField(c, StringType()) for c in columns]))
                     .options(header=str(opts.header).lower(), enforceSchema="false", sep=opts.delimiter,
                              quote=opts.quotechar, escape=opts.quotechar, encoding=opts.codec,
                              mode="DROPMALFORMED", multiLine="false")
                     .csv(paths))
        elif kind == "jsonl":
            frame = spark.read.text(paths)
        else:
            frame = spark.read.parquet(*paths)
            columns = list(frame.columns)
    except Exception as exc:  # noqa: BLE001 (Spark's analysis errors come in many types)
        raise SparkError(spark_reason(exc)) from None
    frame = frame.select("*", F.col("_metadata.file_path").alias(_FILE), F.monotonically_increasing_id().alias(_ROW))
    return _Input(frame, kind, columns, ds.path, "")


def _jdbc_driver(db: DatabaseInput) -> tuple[str, str, str, str]:
    backend = db.url.get_backend_name()
    if backend not in JDBC_DRIVERS:
        raise SparkError(f"{db.dataset.subject}: no JDBC driver for {backend} databases in --engine spark "
                         f"(known: {', '.join(JDBC_DRIVERS)}); use --engine arrow")
    return JDBC_DRIVERS[backend]


def _jdbc(spark: SparkSession, contract: Contract, ds: Dataset, fetch_size: int | None) -> _Input:
    from sqlalchemy.exc import DBAPIError

    from ..sources.database.config import safe_url

    db = DatabaseInput(contract, ds, fetch_size)
    _, driver, scheme, options = _jdbc_driver(db)
    try:  # reflection on the driver: a missing table or column is a ContractError naming it
        with db.engine.connect() as conn:
            stmt, names, _ = db.statement(conn)
            sql = str(stmt.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True}))
    except DBAPIError as exc:
        raise db._unreachable(exc) from None
    finally:
        db.engine.dispose()
    from pyspark.sql import functions as F

    url = db.url
    jdbc_url = f"jdbc:{scheme}://{url.host or '127.0.0.1'}" + (f":{url.port}" if url.port else "") + \
        f"/{url.database or ''}{options}"
    try:
        frame = (spark.read.format("jdbc")
                 .options(url=jdbc_url, query=sql, driver=driver, user=url.username or "",
                          password=url.password or "", fetchsize=str(db.fetch_size), preferTimestampNTZ="true")
                 .load())
    except Exception as exc:  # noqa: BLE001 (py4j and Spark raise many types)
        raise SparkError(spark_reason(exc, driver)) from None
    frame = frame.toDF(*names).select("*", F.lit(db.label).alias(_FILE), F.monotonically_increasing_id().alias(_ROW))
    return _Input(frame, "jdbc", names, f"{safe_url(url)}|{db.label}", db.label)


@dataclass
class _Task:
    """The function every Spark task runs on its Arrow batches (pickled to the executors): score,
    write temporary files, and answer one row, a JSON report of rows, tiers and staged files."""

    ds: Dataset
    kind: str
    columns: list[str]
    label: str
    started: datetime
    lake: LakeConfig
    key: str
    run: str

    def __call__(self, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        split = TierSplit(self.ds, self.started)
        lake = self.lake.open()
        writer = LakeWriter(lake, self.ds, split.schema, self.key, self.run, self.started.date().isoformat(),
                            part=f"p{ctx.partitionId() if ctx else 0:05d}")
        report: dict[str, Any] = {"rows": 0, "skipped": 0, "tiers": {}, "failures": {}}
        try:
            for batch in batches:
                for raw in self._raw(batch):
                    report["rows"] += raw.n
                    report["skipped"] += raw.skipped
                    scored = split.score(raw)
                    if scored is None:
                        continue
                    add_counts(report, scored.tiers, scored.failures)
                    for tier, part in scored.parts:
                        writer.write(tier, part)
            report["staged"] = [asdict(item) for item in writer.close()]
        except BaseException:
            writer.abort()
            raise
        yield pa.RecordBatch.from_pylist([{"report": json.dumps(report)}])

    def _raw(self, batch: pa.RecordBatch) -> Iterator[RawBatch]:
        sources = batch.column(_FILE)
        for source in pc.unique(sources).to_pylist():
            part = batch if len(pc.unique(sources)) == 1 else batch.filter(pc.equal(sources, source))
            where = self.label or unquote(urlparse(source).path)
            rows = part.column(_ROW)
            if self.kind == "jsonl":
                yield _json_lines(part.column("value").to_pylist(), rows, where)
                continue
            if self.kind == "csv":  # Spark reads an empty field as null; the arrow engine keeps ""
                cols = {c: Col(part.column(c).fill_null("")) for c in self.columns}
            elif self.kind == "parquet":
                cols = {c: Col(json_view(part.column(c), json_default)) for c in self.columns}
            else:
                cols = {c: column_of(part.column(c).to_pylist()) for c in self.columns}
            yield RawBatch(cols, part.num_rows, where, 0, 0, offsets=rows)


def _json_lines(lines: list[str | None], rows: pa.Array, where: str) -> RawBatch:
    records, keep, bad = [], [], 0
    for i, line in enumerate(lines):
        text = (line or "").lstrip("\ufeff").strip()
        if not text:
            continue
        try:
            records.append(decode_raw(text.encode()))
            keep.append(i)
        except RecordError:
            bad += 1
    if bad and not records:
        raise BatchInputError(f"{where}: is not JSON lines as the contract declares")
    return RawBatch(columns_from_records(records), len(records), where, 0, 0, bad, [], rows.take(pa.array(keep, pa.int64())))



"""The Spark session of ``batch --engine spark``, and its failures said in one line."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import sys
import zipfile
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from ..errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["BATCH_ROWS", "SparkError", "spark_reason", "spark_session"]

#: What to install when pyspark is missing.
INSTALL = "pip install 'pyspark==4.0.5' 'pandas==2.3.3' (the spark lines of requirements.txt)"
#: Spark's own logging off: a failure is the one ``error:`` line of the command.
_LOG4J = Path(str(files(__package__).joinpath("spark-log4j2.properties")))
#: Rows per Arrow batch handed to the scorer (the arrow engine's default batch).
BATCH_ROWS = 50_000


class SparkError(ConfigError):
    """Spark could not run the job: master unreachable, JDBC driver missing, input unreadable."""


def spark_session(master: str, packages: list[str] | None = None) -> SparkSession:
    """The process's Spark session on ``master`` (an existing one is reused as it is)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(f"--engine spark needs pyspark: {INSTALL}") from None
    _check_master(master)
    builder = (SparkSession.builder.master(master).appName("atlas-stream-batch")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH_ROWS))
               .config("spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile={_LOG4J.as_uri()}"))
    if packages:
        ivy = Path.home() / ".cache" / "atlas-stream" / "spark-ivy"
        builder = builder.config("spark.jars.packages", ",".join(packages)).config("spark.jars.ivy", str(ivy))
    try:
        spark = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 (py4j and Spark raise many types; the first line says what went wrong)
        raise SparkError(f"Spark on {master} did not start: {_first(exc)}; check ATLAS_SPARK_MASTER"
                         + (f" and that Maven Central serves {', '.join(packages)}" if packages else "")) from None
    if master.startswith("local"):
        # Python workers run this interpreter (its pyarrow and atlas_stream), not `python3` on PATH.
        spark.sparkContext.pythonExec = sys.executable
    else:
        # Executors on other machines get this atlas_stream (their Python needs the requirements).
        spark.sparkContext.addPyFile(str(_package_zip()))
    return spark


def _package_zip() -> Path:
    """atlas_stream as a zip for ``addPyFile``, named by its content (one per code version)."""
    root = Path(__file__).resolve().parents[1]
    sources = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    digest = hashlib.sha256(b"".join(p.relative_to(root.parent).as_posix().encode() + p.read_bytes()
                                     for p in sources)).hexdigest()[:12]
    target = Path.home() / ".cache" / "atlas-stream" / "spark-pyfiles" / f"atlas_stream-{digest}.zip"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f"{target.name}.{os.getpid()}.tmp")  # another run may zip at the same time
        with zipfile.ZipFile(temp, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sources:
                archive.write(path, path.relative_to(root.parent).as_posix())
        temp.replace(target)
    return target


def _check_master(master: str) -> None:
    """A standalone master that does not answer makes Spark retry for a minute: look first."""
    url = urlparse(master)
    if url.scheme != "spark":
        return
    problem: Exception | None = None
    for hostport in url.netloc.split(","):
        host, _, port = hostport.rpartition(":")
        try:
            socket.create_connection((host or hostport, int(port or 7077)), timeout=5).close()
            return
        except (OSError, ValueError) as exc:
            problem = exc
    raise SparkError(f"Spark master {master} cannot be reached ({problem}); check ATLAS_SPARK_MASTER")


_OURS = re.compile(r"(?:BatchInputError|LakeError|ContractError|ConfigError|AtlasError|LakeUnavailable): (.+)")


def spark_reason(exc: BaseException, driver: str | None = None) -> str:
    """One line out of a Spark failure: our own error raised in a task, else Spark's first line."""
    text = str(exc)
    ours = _OURS.findall(text)
    if ours:
        return ours[-1].strip()
    missing = re.search(r"ClassNotFoundException: (\S+)|No suitable driver", text)
    if missing:
        return (f"JDBC driver {missing.group(1) or driver or ''} is not on Spark's classpath: add it to "
                "spark.jars.packages or spark.jars (the arrow engine needs no JDBC driver)")
    for pattern in (r"\[CANNOT_READ_FILE_FOOTER\][^\n]*", r"\S+ is not a Parquet file[^\n]*",
                    r"CSV header does not conform to the schema[^\n]*", r"Connection refused[^\n]*",
                    r"FATAL: [^\n]*", r"java\.sql\.\w+: [^\n]*"):
        found = re.search(pattern, text)
        if found:
            return f"Spark cannot read the input: {found.group(0).strip()[:300]}"
    cause = re.search(r"Job aborted due to stage failure: [^\n]*?\): ([^\n]*)", text)
    return f"a Spark task failed: {cause.group(1).strip()[:300]}" if cause else _first(exc)


def _first(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return (lines[0] if lines else type(exc).__name__)[:300]

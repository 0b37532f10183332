"""Java and the Kafka jars: check the JVM, resolve the pinned pom with Maven once, cache it."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from importlib.resources import files
from pathlib import Path
from typing import IO

from ..errors import BrokerUnavailable

__all__ = ["KAFKA_VERSION", "cache_dir", "classpath", "java_problem", "kafka_available", "resolve_jars"]

_POM = Path(str(files(__package__).joinpath("pom.xml")))
LOG4J_CONFIG = Path(str(files(__package__).joinpath("log4j2.properties")))
KAFKA_VERSION = re.search(r"<kafka\.version>([^<]+)<", _POM.read_text()).group(1)  # type: ignore[union-attr]
_MIN_JAVA = 17


def cache_dir() -> Path:
    """Where the resolved jars live: outside the work tree, keyed by the pom's content, so a
    second start is offline and a changed pom resolves anew."""
    base = Path.home() / ".cache"
    digest = hashlib.sha256(_POM.read_bytes()).hexdigest()[:12]
    return base / "atlas-stream" / f"kafka-{KAFKA_VERSION}-{digest}"


def _java_major(java: str) -> int | None:
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def java_problem() -> str | None:
    """None when a Java 17+ runtime and the jars (or Maven to fetch them) are there; otherwise
    one line saying what to install."""
    java = shutil.which("java")
    if java is None:
        return "java is not installed: Kafka needs Java 17+ (Debian: apt-get install -y openjdk-17-jre-headless)"
    major = _java_major(java)
    if major is None or major < _MIN_JAVA:
        return (f"{java} is Java {major or '?'}; Kafka needs Java {_MIN_JAVA}+ "
                "(Debian: apt-get install -y openjdk-17-jre-headless)")
    if not _stamp().is_file() and shutil.which("mvn") is None:
        return "mvn is not installed: it fetches the Kafka jars once (Debian: apt-get install -y maven)"
    return None


def kafka_available() -> bool:
    return java_problem() is None


def _stamp() -> Path:
    return cache_dir() / "resolved"


def classpath() -> str:
    """The JVM class path of the cached jars (resolve_jars() first)."""
    return str(cache_dir() / "lib" / "*")


def resolve_jars(progress: IO[str] | None = sys.stderr) -> Path:
    """Resolve the pinned pom into the cache once; later calls return at once, offline."""
    target = cache_dir()
    if _stamp().is_file():
        return target / "lib"
    problem = java_problem()
    if problem:
        raise BrokerUnavailable(problem)
    target.mkdir(parents=True, exist_ok=True)
    tmp = target / "lib.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    log = target / "mvn.log"
    if progress is not None:
        print(f"kafka: fetching Apache Kafka {KAFKA_VERSION} jars from Maven Central into {target} "
              "(once, about 45 MB) ...", file=progress, flush=True)
    cmd = ["mvn", "-B", "-q", "-f", str(_POM), "dependency:copy-dependencies",
           f"-DoutputDirectory={tmp}", "-DincludeScope=runtime"]
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode
    jars = list(tmp.glob("kafka_2.13-*.jar")) if tmp.is_dir() else []
    if code != 0 or not jars:
        first = next((ln.strip() for ln in log.read_text(errors="replace").splitlines() if "ERROR" in ln), "")
        raise BrokerUnavailable(
            f"could not fetch the Kafka {KAFKA_VERSION} jars with Maven (exit {code}; {first[:200]}): check "
            f"the network to Maven Central or your ~/.m2/settings.xml proxy; Maven's output is in {log}")
    shutil.rmtree(target / "lib", ignore_errors=True)
    tmp.rename(target / "lib")
    _stamp().write_text(f"{KAFKA_VERSION}\n")
    if progress is not None:
        print(f"kafka: {len(list((target / 'lib').glob('*.jar')))} jars cached", file=progress, flush=True)
    return target / "lib"

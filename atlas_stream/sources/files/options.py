"""File poller options from a contract, landing roots, and small helpers (validated at start)."""

from __future__ import annotations

import base64
import codecs
import glob
import os
import posixpath
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import isodate

from ...contract_schema import json_path
from ...errors import ContractError
from ...model import Contract, Dataset
from ...settings import Settings
from .csvfile import CsvOptions

__all__ = ["EXTENSIONS", "FileOptions", "Landing", "json_default", "landing_for"]

EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
              ".parquet": "parquet", ".pq": "parquet"}


@dataclass(frozen=True)
class Landing:
    """Where a dataset's files land. ``root`` is the resolved directory part of the configured
    path (before any glob character); every file read must resolve to a place under it."""

    root: Path
    pattern: str
    archive: Path | None = None

    def in_archive(self, rel: str) -> bool:
        if self.archive is None:
            return False
        prefix = self.archive.relative_to(self.root).parts
        return Path(rel).parts[:len(prefix)] == prefix


def landing_for(path_text: str, archive_dir: str | None = None, cwd: Path | None = None, *,
                file: str = "", path_at: str = "$", archive_at: str = "$") -> Landing:
    """Landing root and glob of a dataset ``path`` (a file, a folder or a glob; relative paths
    are relative to ``cwd``). Raises ContractError for ``..`` after the root, or an archive
    folder outside it (``file`` and the JSON paths name the contract values in messages)."""
    path = Path(path_text).expanduser()
    if not path.is_absolute():
        path = (cwd or Path.cwd()) / path
    parts = path.parts
    magic = next((i for i, part in enumerate(parts) if glob.has_magic(part)), None)
    if magic is None:
        # An existing folder, a path written with a trailing slash, or a missing path without an
        # extension is a folder (its files, not recursive); anything else is one file.
        folder = path.is_dir() or path_text.endswith(("/", os.sep)) or (not path.exists() and not path.suffix)
        root, pattern = (path, "*") if folder else (path.parent, glob.escape(path.name))
    else:
        rest = parts[magic:]
        if ".." in rest:
            raise ContractError(file, path_at, f"{path_text!r}: '..' after a glob character would leave the landing "
                                          f"root {Path(*parts[:magic])}; refused")
        root, pattern = Path(*parts[:magic]), "/".join(rest)
    root = root.resolve()
    archive = None
    if archive_dir is not None:
        archive = (root / archive_dir).resolve()
        if Path(archive_dir).is_absolute() or not archive.is_relative_to(root) or archive == root:
            raise ContractError(file, archive_at, f"archive_dir {archive_dir!r} must be a folder under the landing root {root}")
    return Landing(root, pattern, archive)


def _seconds(raw: Any, minimum: float) -> float:
    if isinstance(raw, str):
        value = isodate.parse_duration(raw)
        if not isinstance(value, timedelta):
            raise ValueError("years and months are ambiguous")
        seconds = value.total_seconds()
    elif isinstance(raw, (int, float)) and not isinstance(raw, bool):
        seconds = float(raw)
    else:
        raise ValueError("not a number")
    if seconds < minimum:
        raise ValueError(f"below {minimum}")
    return seconds


@dataclass(frozen=True)
class FileOptions:
    """Options of one dataset: ``source_config`` keys, overridden by the dataset's ``source``."""

    csv: CsvOptions
    format: str | None = None
    settle_seconds: float = 2.0
    poll_interval: float = 5.0
    archive_dir: str | None = None
    batch_size: int = 5000
    #: JSON path of archive_dir in the contract (for messages).
    archive_at: str = "$"

    def format_of(self, rel: str) -> str | None:
        return self.format or EXTENSIONS.get(posixpath.splitext(rel)[1].lower())

    @classmethod
    def from_contract(cls, contract: Contract, dataset: Dataset, settings: Settings) -> "FileOptions":
        index = next(i for i, ds in enumerate(contract.datasets) if ds.name == dataset.name)

        def get(key: str, default: Any) -> tuple[Any, str]:
            if key in dataset.source:
                return dataset.source[key], json_path(("dataset_config", index, "source", key))
            if key in contract.source_config:
                return contract.source_config[key], json_path(("source_config", key))
            return default, ""

        def fail(at: str, message: str) -> ContractError:
            return ContractError(contract.file, at or "$", message)

        def char(key: str, default: str) -> str:
            value, at = get(key, default)
            if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
                raise fail(at, f"{key} must be one character, got {value!r}")
            return value

        def seconds(key: str, default: float, minimum: float) -> float:
            value, at = get(key, default)
            try:
                return _seconds(value, minimum)
            except (ValueError, isodate.ISO8601Error) as exc:
                raise fail(at, f"{key}: expected seconds (a number >= {minimum}) or an ISO-8601 duration "
                               f"such as PT10S, got {value!r} ({exc})") from None

        def whole(key: str, default: int) -> int:
            value, at = get(key, default)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise fail(at, f"{key} must be a whole number >= 1, got {value!r}")
            return value

        header, at = get("header", True)
        if not isinstance(header, bool):
            raise fail(at, f"header must be true or false, got {header!r}")
        encoding, at = get("encoding", "utf-8")
        try:
            codec = codecs.lookup(str(encoding)).name
        except LookupError:
            raise fail(at, f"unknown encoding {encoding!r}") from None
        if codec.startswith(("utf-16", "utf-32")):
            raise fail(at, f"encoding {encoding!r} is not supported: convert the files to UTF-8")
        archive, at = get("archive_dir", None)
        if archive is not None and (not isinstance(archive, str) or not archive.strip()):
            raise fail(at, f"archive_dir must be a folder name relative to the landing root, got {archive!r}")
        csv = CsvOptions(
            delimiter=char("delimiter", ","), quotechar=char("quotechar", '"'), header=header, encoding=codec,
            columns=tuple(f.name for f in dataset.source_features),
            max_line_bytes=settings.max_message_bytes + 1, max_record_lines=whole("max_record_lines", 1000),
        )
        return cls(csv=csv, format=dataset.format, settle_seconds=seconds("settle_seconds", 2.0, 0.0),
                   poll_interval=seconds("poll_interval", 5.0, 0.01), archive_dir=archive,
                   batch_size=whole("batch_size", 5000), archive_at=at or "$")


def json_default(value: Any) -> Any:
    """JSON form of what Parquet hands over besides JSON types."""
    if isinstance(value, (date, datetime, time)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode()
        except UnicodeDecodeError:
            return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")

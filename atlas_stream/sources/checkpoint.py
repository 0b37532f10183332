"""Durable per-source checkpoints: resume position + raw-topic end offsets, written atomically."""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from ..errors import ConfigError
from ..locks import LockHeld, lock_file

__all__ = ["CHECKPOINT_FORMAT", "SourceLock", "SourceState", "atomic_write", "checkpoint_path",
           "format_position", "fsync_dir", "parse_position"]

#: Version of the checkpoint file layout; a file with another version is refused.
CHECKPOINT_FORMAT = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9_.:@=+-]")

Offsets = dict[str, dict[int, int]]


def checkpoint_path(directory: Path, source_id: str) -> Path:
    """``<directory>/<source id>.json``; characters unsafe in file names become ``_``."""
    return directory / f"{_UNSAFE.sub('_', source_id)}.json"


def format_position(unit: str, index: int) -> str:
    """``<unit>:<index>``: a file identity and a row, a table cursor and a row, ..."""
    return f"{unit}:{index}"


def parse_position(text: str) -> tuple[str, int]:
    """Inverse of :func:`format_position`. The unit may contain ``:``; the index may not."""
    unit, sep, index = text.rpartition(":")
    if not sep or not unit or not index.isdigit():
        raise ValueError(f"not a source position <unit>:<index>: {text!r}")
    return unit, int(index)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new directory entry in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` so that a crash at any moment leaves the old or the new file,
    never a mix: temp file in the same folder, fsync, rename, fsync the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(path.parent)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


@dataclass
class SourceState:
    """What a source has durably published: its resume ``position`` (JSON, owned by the source)
    and, per topic it writes, the end offset of every partition observed right after the last
    checkpointed batch was acknowledged. Records this source published after that batch are
    therefore at or beyond ``offsets``: recovery reads only that tail."""

    source: str
    kind: str
    path: Path
    position: Any = None
    offsets: Offsets = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {"rows": 0, "dead_letters": 0})
    saved_at: str | None = None

    @property
    def exists(self) -> bool:
        return self.saved_at is not None

    @classmethod
    def load(cls, directory: Path, source_id: str, kind: str) -> "SourceState":
        """The saved state, or a new unsaved one when there is no checkpoint yet. A checkpoint that
        cannot be read is a fatal error: starting over would publish everything again."""
        path = checkpoint_path(directory, source_id)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return cls(source=source_id, kind=kind, path=path)
        try:
            doc = json.loads(raw)
            if doc.get("format") != CHECKPOINT_FORMAT:
                raise ValueError(f"format {doc.get('format')!r}, expected {CHECKPOINT_FORMAT}")
            if doc.get("source") != source_id:
                raise ValueError(f"it belongs to source {doc.get('source')!r}")
            offsets = {t: {int(p): int(o) for p, o in parts.items()} for t, parts in doc["offsets"].items()}
            return cls(source=source_id, kind=doc.get("kind", kind), path=path, position=doc.get("position"),
                       offsets=offsets, counters={k: int(v) for k, v in doc.get("counters", {}).items()},
                       saved_at=doc.get("saved_at"))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"checkpoint {path} is unreadable ({exc}): move it away to start this source "
                              "over (everything it read is then published again)") from None

    def to_json(self) -> bytes:
        doc = {
            "format": CHECKPOINT_FORMAT,
            "source": self.source,
            "kind": self.kind,
            "saved_at": self.saved_at,
            "counters": self.counters,
            "offsets": {t: {str(p): o for p, o in sorted(parts.items())} for t, parts in sorted(self.offsets.items())},
            "position": self.position,
        }
        return json.dumps(doc, indent=1, ensure_ascii=False).encode()

    def save(self) -> None:
        """Write atomically and durably (blocking: call it through ``asyncio.to_thread``)."""
        self.saved_at = _now()
        atomic_write(self.path, self.to_json())


class SourceLock:
    """An exclusive lock on ``<checkpoint>.lock`` held while a source runs: two pollers of the
    same source would both publish. The kernel drops it when the process dies, even on kill -9."""

    def __init__(self, checkpoint: Path) -> None:
        self.path = checkpoint.with_name(checkpoint.name + ".lock")
        self._file: IO[str] | None = None

    def acquire(self, source_id: str) -> None:
        try:
            self._file = lock_file(self.path)
        except LockHeld as held:
            raise ConfigError(f"source {source_id} is already being polled by pid {held.holder} "
                              f"(lock {self.path}): run one poller per source") from None

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

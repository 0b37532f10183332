"""Exclusive per-process file locks (fcntl): the kernel drops them when the process dies, even on kill -9."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from .errors import ConfigError

__all__ = ["LockHeld", "lock_file"]


class LockHeld(ConfigError):
    """Another live process holds the lock; ``holder`` is what it wrote there (its pid)."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


def lock_file(path: Path) -> IO[str]:
    """Lock ``path`` (created if missing) and write this process's pid into it; keep the returned
    file open for as long as the lock must hold. Raises LockHeld."""
    path.parent.mkdir(parents=True, exist_ok=True)
    f = open(path, "a+")  # noqa: SIM115  # open as long as the lock holds
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.seek(0)
        holder = f.read().strip() or "another process"
        f.close()
        raise LockHeld(holder) from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f

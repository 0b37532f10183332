"""What the ``poll`` command prints while it reads files: one line per file with the rows published."""

from __future__ import annotations

import sys
import time
from typing import IO

__all__ = ["TerminalProgress"]


class TerminalProgress:
    """A line per file with the rows published: rewritten in place on a terminal, printed once
    when the file is done otherwise."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last = 0.0

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()

    def file_started(self, source: str, where: str) -> None:
        if self.tty:
            self._write(f"\r\x1b[K{source} {where}: reading")

    def file_progress(self, source: str, where: str, rows: int, dead: int) -> None:
        now = time.monotonic()
        if self.tty and now - self._last > 0.2:
            self._last = now
            self._write(f"\r\x1b[K{source} {where}: {rows} rows published, {dead} to the DLQ")

    def file_done(self, source: str, where: str, rows: int, dead: int, note: str) -> None:
        line = f"{source} {where}: {rows} rows published, {dead} to the DLQ ({note})"
        self._write(f"\r\x1b[K{line}\n" if self.tty else f"{line}\n")

"""Progress of a batch run (a tqdm bar on a terminal, plain lines otherwise) and its summary."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["Progress", "Summary"]

#: Seconds between two plain progress lines when the output is not a terminal.
PLAIN_EVERY = 5.0


class Progress:
    """Rows and rows/s; percent and ETA when the size is known (``total`` in ``unit``: bytes for
    files, rows for tables). Writes to stderr so that ``--json`` output stays clean."""

    def __init__(self, label: str, total: int | None, unit: str, stream: IO[str] | None = None,
                 tty: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.label = label
        self.total = total
        self.unit = unit
        self.rows = 0
        self.done = 0
        self.started = time.monotonic()
        self._last = self.started
        self.bar: Any = None
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit if unit != "rows" else " rows", unit_scale=True,
                            desc=label, file=self.stream, dynamic_ncols=True, leave=True)

    def update(self, rows: int, done: int, total: int | None = None) -> None:
        self.rows += rows
        if total is not None and total != self.total:
            self.total = total
            if self.bar is not None:
                self.bar.total = total
        step = max(0, done - self.done)
        self.done = max(self.done, done)
        if self.bar is not None:
            self.bar.update(step)
            self.bar.set_postfix_str(f"{self.rows:,} rows, {self.rate():,.0f} rows/s", refresh=False)
            return
        now = time.monotonic()
        if now - self._last >= PLAIN_EVERY:
            self._last = now
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.rows / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        text = f"{self.label}: {self.rows:,} rows, {self.rate():,.0f} rows/s"
        if self.total:
            share = min(1.0, self.done / self.total)
            text += f", {share:.0%}"
            if 0 < share < 1:
                text += f", ETA {(time.monotonic() - self.started) * (1 - share) / share:.0f} s"
        return text

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Summary:
    """What a run did, for the closing lines and ``--json``."""

    group: str
    mode: str  # "lake" or "kafka"
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def dataset(self, name: str) -> dict[str, Any]:
        return self.datasets.setdefault(name, {"rows": 0, "tiers": {}, "failures": {}, "skipped": 0,
                                               "problems": [], "files": []})

    @property
    def rows(self) -> int:
        return sum(d["rows"] for d in self.datasets.values())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"group": self.group, "mode": self.mode, "rows": self.rows,
                               "seconds": round(self.seconds, 3),
                               "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds else None,
                               "datasets": {}}
        for name, d in self.datasets.items():
            top = sorted(d["failures"].items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            out["datasets"][name] = {"rows": d["rows"], "tiers": d["tiers"],
                                     "top_failures": [{"check": k, "rows": v} for k, v in top],
                                     "skipped_input": d["skipped"], "problems": d["problems"][:10],
                                     "files": d["files"]}
        return out

    def text(self) -> str:
        doc = self.to_json()
        lines = [f"batch {self.group}: {doc['rows']:,} rows in {doc['seconds']:.1f} s "
                 f"({doc['rows_per_second'] or 0:,.0f} rows/s)" + (", published to the raw topics"
                                                                    if self.mode == "kafka" else "")]
        for name, d in doc["datasets"].items():
            tiers = ", ".join(f"{t} {c:,}" for t, c in d["tiers"].items()) or "none"
            lines.append(f"  {name}: {d['rows']:,} rows" + (f" ({tiers})" if self.mode == "lake" else ""))
            if d["skipped_input"]:
                lines.append(f"    {d['skipped_input']:,} input rows could not be read and were skipped"
                             + (f", e.g. {d['problems'][0]}" if d["problems"] else ""))
            if d["top_failures"]:
                lines.append("    most frequent failures: " + ", ".join(f"{f['check']} {f['rows']:,}"
                                                                         for f in d["top_failures"][:5]))
            for path in d["files"]:
                lines.append(f"    wrote {path}")
        return "\n".join(lines)

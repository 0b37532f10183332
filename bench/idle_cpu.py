"""Idle cost of `up`: CPU used by the whole process tree (broker, worker, gateway) with no traffic.

    .venv/bin/python bench/idle_cpu.py [--seconds 60] [--settle 30]

Starts `python -m atlas_stream up --rate 0` in a temporary folder on free ports, waits for the
banner plus ``--settle`` seconds (start-up work, group joins, first table flushes), then reads
utime+stime of every process in the tree from /proc over ``--seconds`` and prints the share of one
core, in total and per process. Goal (issue 10): under 5 % of a core in total.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from atlas_stream.devbroker import free_port  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo += [int(c) for c in children]
    return out


def _cpu(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _name(pid: int) -> str:
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "?"
    text = " ".join(a.decode(errors="replace") for a in args if a)
    for word in ("kafka.Kafka", "noida-db", "tansu", "atlas_stream worker", "atlas_stream gateway",
                 "atlas_stream sample", "atlas_stream up"):
        if word in text:
            return word.removeprefix("atlas_stream ")
    return text[:40]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=30.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="atlas-idle-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
        env.update({"ATLAS_BROKER": f"kafka://127.0.0.1:{free_port()}", "ATLAS_DATA_DIR": f"{tmp}/state",
                    "ATLAS_WEB_PORT": str(free_port()), "ATLAS_GATEWAY_PORT": str(free_port()),
                    "ATLAS_LAKE_URI": f"{tmp}/lake"})
        log = Path(tmp) / "up.log"
        proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "up", "--rate", "0"], cwd=ROOT, env=env,
                                stdout=open(log, "wb"), stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 120
            while "query it" not in log.read_text(errors="replace"):
                if proc.poll() is not None or time.monotonic() > deadline:
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    return 1
                time.sleep(0.5)
            broker = next((ln for ln in log.read_text().splitlines() if ln.startswith("up: running on")), "?")
            print(f"{broker}\nsettling {args.settle:.0f}s, then measuring {args.seconds:.0f}s ...", flush=True)
            time.sleep(args.settle)
            pids = _tree(proc.pid)
            names = {p: _name(p) for p in pids}
            before = {p: _cpu(p) for p in pids}
            t0 = time.monotonic()
            time.sleep(args.seconds)
            elapsed = time.monotonic() - t0
            used = {p: _cpu(p) - before[p] for p in pids}
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(60)
    total = sum(used.values()) / elapsed * 100
    for pid, seconds in sorted(used.items(), key=lambda kv: -kv[1]):
        print(f"  {names[pid]:12} pid {pid:>7}: {seconds / elapsed * 100:5.2f} % of a core")
    print(f"idle up, all processes: {total:.2f} % of a core over {elapsed:.0f}s (goal < 5 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

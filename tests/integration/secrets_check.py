"""Secrets the tests hand to Atlas Stream, and the check that none of them ever reached a file
the test session wrote (worker, gateway, poller and broker logs, every tmp_path)."""

from __future__ import annotations

from pathlib import Path

#: every secret a test passed to a process under test (passwords, API keys, tokens)
USED: set[str] = set()


def secret(value: str) -> str:
    """Register ``value`` as a secret a log must never show; returns it."""
    USED.add(value)
    return value


def leaks(root: Path) -> list[str]:
    """``file: secret`` for every registered secret found in a file under ``root``. Files the
    tests write themselves on purpose (certificates, key stores, contracts, metadata) hold no
    process output and are skipped: only logs and process output are searched."""
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix not in (".log", ".txt", ".out", ".err", ".json", ""):
            continue
        if "metadata" in path.parts:  # contracts written by the tests
            continue
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        found += [f"{path}: {s[:4]}..." for s in USED if s in text]
    return found

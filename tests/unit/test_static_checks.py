"""The house rules that tools can check: ruff (errors and likely bugs) and mypy, as pyproject.toml configures them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff_finds_no_errors_or_likely_bugs() -> None:
    result = _run("ruff", "check", "--select", "F,E9,B", "--ignore", "B008,B905",
                  "atlas_stream", "agents", "tables", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_atlas_stream() -> None:
    result = _run("mypy", "atlas_stream", "--ignore-missing-imports", "--no-error-summary")
    assert result.returncode == 0, result.stdout + result.stderr


def test_pyproject_configuration_checks_agents_and_tables_too() -> None:
    # `ruff check` and `mypy` without arguments read pyproject.toml: the Faust declarations are checked too.
    for args in (("ruff", "check"), ("mypy", "--no-error-summary")):
        result = _run(*args)
        assert result.returncode == 0, result.stdout + result.stderr
    assert "agents" in _run("mypy", "--no-error-summary", "-v").stderr

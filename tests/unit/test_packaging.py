"""The installable package: pins that agree with requirements.txt, a wheel holding atlas_stream
(with its static files) but never agents/ or tables/, and an ``atlas-stream`` command that runs
the same commands as ``python -m atlas_stream``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(lines: list[str]) -> dict[str, str]:
    out = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            name, _, version = line.partition("==")
            out[re.sub(r"\[.*\]", "", name).lower()] = version
    return out


def test_pyproject_pins_are_the_requirements_pins() -> None:
    project = PYPROJECT["project"]
    runtime = _pins(project["dependencies"])
    extras = {name: _pins(deps) for name, deps in project["optional-dependencies"].items()}
    wanted = _pins((ROOT / "requirements.txt").read_text().splitlines())
    everything = dict(runtime)
    for pins in extras.values():
        everything.update(pins)
    assert everything == wanted  # `bash .ci/setup` (requirements.txt) installs runtime + every extra
    assert "pytest" not in runtime and "mypy" not in runtime and "pandas" not in runtime
    assert "pandas" in extras["pandas"] and "pytest" in extras["test"] and "ruff" in extras["dev"]


def test_the_wheel_and_its_atlas_stream_command(tmp_path: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                            str(ROOT)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next((tmp_path / "dist").glob("atlas_stream-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "atlas_stream/web/static/index.html" in names and "atlas_stream/devkafka/pom.xml" in names
    assert not [n for n in names if n.startswith(("agents/", "tables/", "tests/", "bench/"))]
    target = tmp_path / "site"
    installed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                                str(wheel)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update(PYTHONPATH=str(target), ATLAS_METADATA_DIR=str(ROOT / "metadata"))
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    command = subprocess.run([str(target / "bin" / "atlas-stream"), "contracts"], cwd=outside, env=env,
                             capture_output=True, text=True, timeout=120)
    module = subprocess.run([sys.executable, "-m", "atlas_stream", "contracts"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert command.returncode == module.returncode == 0, command.stderr + module.stderr
    assert command.stdout == module.stdout and "ok  " in command.stdout
    # The worker needs agents/ and tables/, which only a checkout has: one clear line elsewhere.
    worker = subprocess.run([str(target / "bin" / "atlas-stream"), "worker"], cwd=outside, env=env,
                            capture_output=True, text=True, timeout=120)
    assert worker.returncode == 2 and "run atlas-stream from a checkout" in worker.stderr

"""The commands an operator types: up (and its restart), broker, contracts, a bad contract at start."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from atlas_stream.devbroker import free_port

from .harness import ROOT, consume

STREAM_TIERS = [f"atlas.ecommerce_transactions_streaming.transactions.{t}" for t in ("gold", "silver", "bronze", "rejected")]
STREAM_DLQ = "atlas.ecommerce_transactions_streaming.dlq"


def _env(tmp: Path, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ATLAS_")}
    env.update({"ATLAS_BROKER": f"kafka://127.0.0.1:{port}", "ATLAS_DATA_DIR": str(tmp / "state"),
                "ATLAS_WEB_PORT": str(free_port()), "ATLAS_GATEWAY_PORT": str(free_port()),
                "ATLAS_LAKE_URI": str(tmp / "lake"), "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env


def _run_up(env: dict[str, str], log: Path, rate: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "atlas_stream", "up", "--rate", rate, "--sample-delay", "2"],
                            cwd=ROOT, env=env, stdout=open(log, "ab"), stderr=subprocess.STDOUT)


def _positions(bootstrap: str, at_least: int) -> list[tuple[str, int, int]]:
    def enough(ms: list[Any]) -> bool:
        return sum(m.topic.endswith("transactions.gold") or m.topic.endswith("transactions.silver") for m in ms) >= at_least

    msgs = asyncio.run(consume(bootstrap, [*STREAM_TIERS, STREAM_DLQ], enough, timeout=120))
    out = []
    for m in msgs:
        src = orjson.loads(m.value)["source"]
        if src["topic"].endswith("transactions.raw"):
            out.append((src["topic"], src["partition"], src["offset"]))
    return out


async def _through_gateway(port: int) -> str:
    """Send one sample transaction through up's WebSocket gateway; returns its id."""
    from websockets.asyncio.client import connect

    from atlas_stream.contracts import load_contract
    from atlas_stream.samples import SampleGenerator

    dataset = load_contract(ROOT / "metadata" / "ecommerce_transactions_streaming.json").dataset("transactions")
    record = SampleGenerator(dataset, seed=5, defect_rate=0).record()
    url = f"ws://127.0.0.1:{port}/ingest/ecommerce_transactions_streaming/transactions?token=dev-token"
    for _ in range(60):  # the gateway may still be starting
        try:
            async with connect(url) as ws:
                await ws.send(orjson.dumps(record).decode())
                reply = orjson.loads(await ws.recv())
                assert reply["ok"] is True and reply["count"] == 1, reply
                return str(record["transaction_id"])
        except OSError:
            await asyncio.sleep(0.5)
    raise AssertionError("the gateway started by up never accepted a connection")


def _stop(proc: subprocess.Popen[bytes], log: Path) -> None:
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, log.read_text()[-3000:]


def test_up_runs_the_main_job_and_a_restart_keeps_what_it_stored(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port)
    log = tmp_path / "up.log"
    proc = _run_up(env, log, rate="40")
    try:
        first = _positions(f"127.0.0.1:{port}", at_least=20)
    finally:
        _stop(proc, log)
    text = log.read_text()
    assert "starting the kafka development broker" in text and "up: stopped" in text
    assert len(first) == len(set(first)) >= 20

    proc = _run_up(env, log, rate="40")
    try:
        second = _positions(f"127.0.0.1:{port}", at_least=len(first) + 20)
        sent = asyncio.run(_through_gateway(int(env["ATLAS_GATEWAY_PORT"])))
        scored = asyncio.run(consume(f"127.0.0.1:{port}", STREAM_TIERS, lambda ms: any(
            orjson.loads(m.value)["record"].get("transaction_id") == sent for m in ms), timeout=60))
    finally:
        _stop(proc, log)
    assert any(orjson.loads(m.value)["record"].get("transaction_id") == sent for m in scored)
    # Nothing from the first run was lost, nothing was scored twice, and new records flowed.
    assert set(first) <= set(second)
    assert Counter(second).most_common(1)[0][1] == 1
    assert len(second) >= len(first) + 20


def test_broker_command_prints_ready_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "atlas_stream", "broker", "--port", str(port),
                             "--data-dir", str(tmp_path / "b")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env=_env(tmp_path, port))
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        while not any("ready" in line for line in lines) and len(lines) < 20:  # broker banner, then ours
            lines.append(proc.stdout.readline().decode())
        ready = [line for line in lines if "ready" in line]
        assert ready and str(port) in ready[0], lines
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0


def test_bad_contract_stops_startup_naming_file_and_path(tmp_path: Path) -> None:
    metadata = tmp_path / "metadata"
    shutil.copytree(ROOT / "tests" / "integration" / "contracts", metadata)
    contract = json.loads((metadata / "itest.json").read_text())
    contract["dataset_config"][0]["source"]["features"][2]["dtype"] = "integr"
    (metadata / "itest.json").write_text(json.dumps(contract))
    env = _env(tmp_path, free_port(), ATLAS_METADATA_DIR=str(metadata))

    check = subprocess.run([sys.executable, "-m", "atlas_stream", "contracts"], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode != 0
    assert "itest.json" in check.stderr and "$.dataset_config[0].source.features[2].dtype" in check.stderr

    started = time.monotonic()
    worker = subprocess.run([sys.executable, "-m", "atlas_stream", "worker"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert worker.returncode != 0 and time.monotonic() - started < 30
    assert "itest.json" in worker.stderr and "$.dataset_config[0].source.features[2].dtype" in worker.stderr
    assert "Traceback" not in worker.stderr

    good = subprocess.run([sys.executable, "-m", "atlas_stream", "contracts"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env=_env(tmp_path, free_port()))
    assert good.returncode == 0, good.stderr
    assert "ecommerce_transactions_streaming" in good.stdout


def test_up_shows_where_to_look_fills_the_lake_survives_a_crash_and_stops_quickly(tmp_path: Path) -> None:
    port = free_port()
    env = _env(tmp_path, port, ATLAS_BROKER_SESSION_TIMEOUT="8")  # the restarted worker rejoins sooner
    log = tmp_path / "up.log"
    started = time.monotonic()
    proc = _run_up(env, log, rate="20")
    lake = tmp_path / "lake"
    try:
        deadline = started + 90
        while time.monotonic() < deadline and not list(lake.rglob("*.parquet")):
            assert proc.poll() is None, log.read_text()[-3000:]
            time.sleep(1)
        first_file = time.monotonic() - started
        files = list(lake.rglob("*.parquet"))
        assert files, f"no Parquet file in the lake after 90 s:\n{log.read_text()[-3000:]}"
        text = log.read_text()
        assert f"dashboard  http://127.0.0.1:{env['ATLAS_WEB_PORT']}/" in text
        assert f"ws://127.0.0.1:{env['ATLAS_GATEWAY_PORT']}/ingest/" in text
        assert f"lake       {lake}" in text and "duckdb" in text
        assert any("tier=" in str(f) and "ingest_date=" in str(f) for f in files)

        # A crashed worker is started again by up, and records keep flowing.
        before = len(_positions(f"127.0.0.1:{port}", at_least=5))
        worker = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "atlas_stream worker"],
                                capture_output=True, text=True).stdout.split()
        assert len(worker) == 1, worker
        os.kill(int(worker[0]), signal.SIGKILL)
        _positions(f"127.0.0.1:{port}", at_least=before + 20)
        assert "up: worker exited with code -9; restarting it" in log.read_text()
    finally:
        children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        proc.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        code = proc.wait(60)
    stop_seconds = time.monotonic() - stopping
    assert len(children) >= 4, children  # broker, worker, gateway, sample producer
    assert code == 0 and "up: stopped" in log.read_text()
    assert stop_seconds < 10, f"Ctrl-C took {stop_seconds:.1f}s to stop everything"
    assert first_file < 60, f"the first lake file took {first_file:.0f}s"
    assert [pid for pid in children if Path(f"/proc/{pid}").exists()] == [], "a child outlived up"

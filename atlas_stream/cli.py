"""Commands that run without the Faust app: broker, contracts, sample and up."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

from .batch import add_arguments as add_batch_arguments
from .contracts import check_contracts, load_contracts
from .devbroker import DevBroker, choose_dev_broker, make_dev_broker, wait_for_kafka
from .devkafka import KAFKA_VERSION, KafkaCluster
from .errors import AtlasError, BrokerUnavailable
from .settings import DEV_BROKERS, Settings, arrow_pool_chosen

__all__ = ["COMMANDS", "main"]

COMMANDS = ("batch", "broker", "contracts", "gateway", "hive-ddl", "kibana", "poll", "sample", "up")


def _broker(args: argparse.Namespace, settings: Settings) -> int:
    kind, note = choose_dev_broker(args.kind)
    if note:
        print(f"broker: {note}", file=sys.stderr, flush=True)
    data_dir = Path(args.data_dir) if args.data_dir else settings.data_dir / f"broker-{kind}"
    broker = make_dev_broker(kind, args.port, args.host, data_dir, log=sys.stderr, brokers=args.brokers)
    stop = _stop_flag()
    if kind == "kafka":
        print(f"broker: starting Apache Kafka {KAFKA_VERSION} ({args.brokers} node(s), KRaft) ...", flush=True)
    broker.start()
    where = "in memory: a restart starts empty" if kind == "tansu" else f"data in {data_dir}"
    print(f"atlas broker ready: {kind} on {broker.url} ({where}); Ctrl-C stops it", flush=True)
    try:
        while not stop():
            died = broker.failed() if isinstance(broker, KafkaCluster) else (
                None if broker.process is None or broker.process.poll() is None
                else f"the {kind} broker exited with code {broker.process.returncode}")
            if died:
                print(f"error: {died}", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.2)
    finally:
        broker.stop()
    print("broker: stopped", flush=True)
    return 0


def _contracts(args: argparse.Namespace, settings: Settings) -> int:
    directory = Path(args.dir) if args.dir else settings.metadata_dir
    errors = check_contracts(directory)
    if errors:
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        print(f"{len(errors)} problem(s) in {directory}: fix them, then run this again", file=sys.stderr)
        return 1
    for contract in load_contracts(directory):
        names = ", ".join(ds.name for ds in contract.datasets)
        print(f"ok  {contract.file}: {contract.group} ({contract.source_type}) datasets: {names}")
    return 0


async def _publish_samples(settings: Settings, rate: float, count: int | None, groups: Sequence[str]) -> int:
    from aiokafka import AIOKafkaProducer

    from .kafka_admin import ensure_topics
    from .kafka_security import check_kafka, client_kwargs
    from .samples import SampleGenerator
    from .topics import raw_topic

    contracts = [c for c in load_contracts(settings.metadata_dir) if not groups or c.group in groups]
    gens = [(raw_topic(c.group, ds.name), SampleGenerator(ds)) for c in contracts for ds in c.datasets]
    if not gens:
        print("no dataset to publish to", file=sys.stderr)
        return 1
    security = settings.kafka_security
    await check_kafka(settings.bootstrap_servers, security)
    await ensure_topics(settings.bootstrap_servers, [t for t, _ in gens], settings.topic_partitions,
                        settings.topic_replication, security)
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", **client_kwargs(security))
    await producer.start()
    sent = 0
    try:
        while count is None or sent < count:
            topic, gen = gens[sent % len(gens)]
            value, _ = gen.raw()
            await producer.send_and_wait(topic, value)
            sent += 1
            if sent % 100 == 0:
                print(f"sample: {sent} records published", flush=True)
            if rate > 0:
                await asyncio.sleep(1.0 / rate)
    finally:
        await producer.stop()
    print(f"sample: {sent} records published", flush=True)
    return 0


def _sample(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return asyncio.run(_publish_samples(settings, args.rate, args.count, args.ocs or []))
    except KeyboardInterrupt:
        return 0


def _stop_flag():  # type: ignore[no-untyped-def]
    stopped = False

    def handler(signum: int, frame: object) -> None:
        nonlocal stopped
        stopped = True

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return lambda: stopped


def _local_port(settings: Settings) -> tuple[str, int] | None:
    first = settings.bootstrap_servers[0]
    host, _, port = first.rpartition(":")
    if host in ("127.0.0.1", "localhost") and port.isdigit():
        return host, int(port)
    return None


# `up` only: files reach the lake within a minute (the production defaults are 10 s and 300 s).
_UP_SINK = {"ATLAS_SINK_FLUSH_SECONDS": "5", "ATLAS_SINK_ROTATE_SECONDS": "20"}


def _up_banner(settings: Settings, kind: str) -> str:
    lake = settings.lake_uri.removeprefix("file://")
    query = (f"import duckdb; print(duckdb.sql(\\\"select _tier, count(*) from read_parquet('{lake}/**/*.parquet', "
             "hive_partitioning=true) group by 1 order by 1\\\"))")
    return "\n".join([
        f"up: running on {kind} at {settings.broker}; Ctrl-C stops everything (the broker keeps its data)",
        f"  dashboard  http://{settings.web_host}:{settings.web_port}/",
        f"  gateway    ws://{settings.gateway_host}:{settings.gateway_port}/ingest/<group>/<dataset>",
        f"  lake       {lake}  (first Parquet files within a minute)",
        f"  query it   .venv/bin/python -c \"{query}\"",
    ])


def _up(args: argparse.Namespace, settings: Settings) -> int:
    """Broker + worker + WebSocket gateway + sample producer, until Ctrl-C; restarts what crashes."""
    stop = _stop_flag()
    errors = check_contracts(settings.metadata_dir)
    if errors:
        for err in errors:
            print(f"error: {err}", file=sys.stderr)
        return 1
    broker: DevBroker | KafkaCluster | None = None
    local = _local_port(settings)
    kind = settings.dev_broker or "kafka"
    try:
        wait_for_kafka(settings.bootstrap_servers[0], timeout=2, security=settings.kafka_security)
        print(f"up: using the broker already running at {settings.broker}", flush=True)
    except BrokerUnavailable:
        if local is None:
            raise
        kind, note = choose_dev_broker(settings.dev_broker)
        if note:
            print(f"up: {note}", flush=True)
        broker = make_dev_broker(kind, local[1], local[0], settings.data_dir / f"broker-{kind}", log=sys.stderr)
        print(f"up: starting the {kind} development broker on {settings.broker} ...", flush=True)
        broker.start()
    env = {**_UP_SINK, **os.environ, "ATLAS_BROKER": settings.broker, "ATLAS_DEV_BROKER": kind}
    if kind != "kafka":
        env["ATLAS_EMBEDDED_BROKER"] = "1"  # the imitation's workarounds (docs/brokers.md)
    commands = {
        "worker": [sys.executable, "-m", "atlas_stream", "worker", "-l", settings.log_level],
        "gateway": [sys.executable, "-m", "atlas_stream", "gateway"],
        "sample": [sys.executable, "-m", "atlas_stream", "sample", "--rate", str(args.rate)],
    }
    if args.rate <= 0:
        del commands["sample"]
    procs: dict[str, subprocess.Popen[bytes]] = {}
    restarts: dict[str, list[float]] = {name: [] for name in commands}
    try:
        for name in ("worker", "gateway"):
            procs[name] = subprocess.Popen(commands[name], env=env)
        started = time.monotonic()
        print(_up_banner(settings, kind), flush=True)
        while not stop():
            if "sample" in commands and "sample" not in procs and time.monotonic() - started >= args.sample_delay:
                procs["sample"] = subprocess.Popen(commands["sample"], env=env)
            for name, proc in list(procs.items()):
                if proc.poll() is None or stop():  # Ctrl-C reaches the children too: no restart then
                    continue
                recent = [t for t in restarts[name] if time.monotonic() - t < 60] + [time.monotonic()]
                restarts[name] = recent
                if len(recent) > 5:
                    print(f"up: {name} exited with code {proc.returncode} {len(recent)} times within a "
                          "minute; stopping (its log is above)", file=sys.stderr, flush=True)
                    return proc.returncode or 1
                print(f"up: {name} exited with code {proc.returncode}; restarting it", file=sys.stderr, flush=True)
                procs[name] = subprocess.Popen(commands[name], env=env)
            if isinstance(broker, KafkaCluster) and (died := broker.failed()):
                print(f"up: {died}; stopping", file=sys.stderr, flush=True)
                return 1
            time.sleep(0.25)
        return 0
    finally:
        print("up: stopping ...", flush=True)
        _stop_all(list(procs.values()), timeout=6.0)
        if broker is not None:
            if kind == "noida":
                time.sleep(1.5)  # noida-db persists a snapshot about once a second
            broker.stop(timeout=3.0 if kind == "kafka" else 15.0)
        print("up: stopped", flush=True)


def _stop_all(procs: list["subprocess.Popen[bytes]"], timeout: float) -> None:
    """SIGTERM every process at once, SIGKILL those still running after ``timeout`` seconds."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _gateway(args: argparse.Namespace, settings: Settings) -> int:
    from .sources.gateway import run_gateway

    return run_gateway(args, settings)


def _poll(args: argparse.Namespace, settings: Settings) -> int:
    from .sources.poll import run_poller

    return run_poller(args, settings)


def _batch(args: argparse.Namespace, settings: Settings) -> int:
    from .batch.run import run_batch

    return run_batch(args, settings)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m atlas_stream")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("broker", help="run a development Kafka-protocol broker in the foreground")
    b.add_argument("--port", type=int, default=9092)
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--kind", choices=DEV_BROKERS, default=None,
                   help="kafka (real Apache Kafka, the default when Java 17+ is there), or the PyPI "
                        "fallbacks noida (persistent) and tansu (in memory); default ATLAS_DEV_BROKER")
    b.add_argument("--brokers", type=int, default=1,
                   help="kafka only: nodes in the cluster, on ports PORT, PORT+1, ... (3 for replication tests)")
    b.add_argument("--data-dir", default=None, help="log/data folder (default ATLAS_DATA_DIR/broker-<kind>)")
    c = sub.add_parser("contracts", help="validate every contract; non-zero exit on any error")
    c.add_argument("--dir", default=None, help="contracts folder (default ATLAS_METADATA_DIR)")
    s = sub.add_parser("sample", help="publish sample records to the raw topics")
    s.add_argument("--rate", type=float, default=10.0, help="records per second (0: as fast as possible)")
    s.add_argument("--count", type=int, default=None, help="stop after this many records")
    s.add_argument("--ocs", action="append", help="only this group (repeatable)")
    g = sub.add_parser("gateway", help="WebSocket gateway: ws://HOST:PORT/ingest/<group>/<dataset>")
    g.add_argument("--host", default=None, help="bind address (default ATLAS_GATEWAY_HOST)")
    g.add_argument("--port", type=int, default=None, help="port (default ATLAS_GATEWAY_PORT, 8765)")
    g.add_argument("--tls-cert", default=None, help="PEM certificate: serve wss://")
    g.add_argument("--tls-key", default=None, help="PEM private key for --tls-cert")
    p = sub.add_parser("poll", help="poll a contract's sources (files, database, REST, Kafka) into raw topics")
    p.add_argument("--ocs", required=True, help="the contract's ocs_group_name")
    p.add_argument("--dataset", default=None, help="only this dataset")
    p.add_argument("--once", action="store_true", help="process what is there now, then exit")
    p.add_argument("--interval", type=float, default=None, help="seconds between polls")
    add_batch_arguments(sub.add_parser("batch", help="score an fs or rdbms contract's files or tables into the lake"))
    u = sub.add_parser("up", help="broker + worker + gateway + sample data: the main job on embedded defaults")
    u.add_argument("--rate", type=float, default=5.0, help="sample records per second (0: none)")
    u.add_argument("--sample-delay", type=float, default=8.0, help="seconds before sample data starts")
    from .cli_lake import add_parsers

    add_parsers(sub)
    return parser


def _batch_memory_pool() -> None:
    """Arrow's jemalloc pool for every allocation of a batch run, its C++ internals' too (the CSV
    reader's, Parquet's): only ``ARROW_DEFAULT_MEMORY_POOL``, set before pyarrow allocates
    anything, does that (``pa.set_memory_pool``, which batch.run falls back to, covers what the
    Python API allocates). About 35 MB less peak RSS on the bench's 2 GB CSV, same speed. Left
    alone when the variable is set, when pyarrow is already imported (main() called in-process)
    and off Linux, where pyarrow may be built without jemalloc (Arrow would warn)."""
    if "pyarrow" in sys.modules or arrow_pool_chosen() or not sys.platform.startswith("linux"):
        return
    os.environ["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"


def main(argv: Sequence[str]) -> int:
    if list(argv[:1]) == ["batch"]:
        _batch_memory_pool()  # before _parser(), which imports pyarrow
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "broker" and args.kind is None:
            args.kind = settings.dev_broker
        from .cli_lake import hive_ddl_command, kibana_command

        handler = {"batch": _batch, "broker": _broker, "contracts": _contracts, "gateway": _gateway,
                   "poll": _poll, "sample": _sample, "up": _up, "hive-ddl": hive_ddl_command,
                   "kibana": kibana_command}[args.command]
        return handler(args, settings)
    except AtlasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

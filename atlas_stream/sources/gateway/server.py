"""WebSocket gateway: producers push JSON to ws://HOST:PORT/ingest/<group>/<dataset>.

Guarantees: every frame gets exactly one reply, in order; ``{"ok": true}`` only after the broker
acknowledged every record of the frame (acks=all); a frame without a reply when the connection
closes was never acknowledged (resend it: delivery is at least once). Checks stay at the edge
(JSON, objects, sizes, group, dataset, token); schemas are the worker's business.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import ssl

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from websockets.asyncio.server import Server, serve

from ...contracts import load_contracts
from ...errors import BrokerUnavailable, ConfigError
from ...kafka_admin import ensure_topics
from ...kafka_security import check_kafka, client_kwargs
from ...settings import Settings
from ...topics import SOURCE_STATUS_TOPIC, raw_topics
from .connection import REFUSE_PERIOD, Gateway
from .publish import Publisher, RecordBudget
from .routes import RouteTable
from .status import SourceStats, StatusReporter

__all__ = ["run_gateway", "serve_gateway"]

log = logging.getLogger(__name__)

#: websockets closes a connection (1009) above max_size; ours is this much over the frame limit,
#: so that a frame a little too big gets an error reply and the connection stays open.
_SIZE_MARGIN = 0.25
#: Frames buffered per connection before websockets stops reading the socket (backpressure).
_MAX_QUEUE = 4
_LEVELS = {"crit": logging.CRITICAL, "error": logging.ERROR, "warn": logging.WARNING, "info": logging.INFO,
           "debug": logging.DEBUG}


def _ssl_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None and key is None:
        return None
    if not cert or not key:
        raise ConfigError("--tls-cert and --tls-key go together: give both to serve wss://, or neither")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"cannot load the TLS certificate {cert} and key {key}: {exc}") from None
    return context


async def serve_gateway(settings: Settings, host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
    """Run until SIGTERM or SIGINT; then finish in-flight frames, report ``stopped`` and return."""
    contracts = load_contracts(settings.metadata_dir)
    routes = RouteTable(contracts, settings.gateway_max_frame_records)
    if not routes.routes:
        raise ConfigError(f"no contract in {settings.metadata_dir} has source_type websocket or stream: "
                          "the gateway has nothing to serve")
    for problem in routes.problems():
        log.warning("%s", problem)
    topics = [*raw_topics(contracts), SOURCE_STATUS_TOPIC]
    security = settings.kafka_security
    await check_kafka(settings.bootstrap_servers, security)
    producer = AIOKafkaProducer(**client_kwargs(security),
        bootstrap_servers=settings.bootstrap_servers, client_id="atlas-gateway", acks="all",
        request_timeout_ms=int(settings.gateway_send_timeout * 1000),
        max_batch_size=256 * 1024, max_request_size=max(settings.max_message_bytes + 65536, 1 << 20),
    )
    try:
        await asyncio.wait_for(ensure_topics(settings.bootstrap_servers, topics, settings.topic_partitions,
                                             settings.topic_replication, security), 30)
        await producer.start()
    except (KafkaError, OSError, TimeoutError) as exc:
        await producer.stop()
        raise BrokerUnavailable(f"cannot reach the broker at {settings.broker} ({type(exc).__name__}: {exc}); "
                                "start it or fix ATLAS_BROKER") from None
    stats = {r.source: SourceStats(r.source) for r in routes.routes}
    for route in routes.routes:
        refused = routes.problem_of(route)
        if refused is not None:  # reported as degraded, with the reason, until the contract is fixed
            stats[route.source].degraded = True
            stats[route.source].last_error = refused
    reporter = StatusReporter(producer, stats.values())
    budget = RecordBudget(max(settings.gateway_max_in_flight, settings.gateway_max_frame_records))
    gateway = Gateway(settings, routes, Publisher(producer, budget, settings.gateway_send_timeout), reporter,
                      stats)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stop)
    status_task: asyncio.Task[None] | None = None
    try:
        max_size = settings.gateway_max_frame_bytes + max(int(settings.gateway_max_frame_bytes * _SIZE_MARGIN),
                                                          64 * 1024)
        try:
            server = await serve(gateway.handler, host, port, process_request=gateway.process_request,
                                 max_size=max_size, max_queue=_MAX_QUEUE, ssl=tls)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc} (choose another "
                              "--port or ATLAS_GATEWAY_PORT)") from None
        async with server:
            status_task = asyncio.create_task(reporter.run())
            _announce(server, routes, tls is not None)
            await gateway.stopping.wait()
            server.close(close_connections=False)  # stop listening; handlers drain their frames
            deadline = settings.gateway_drain_seconds + REFUSE_PERIOD + settings.gateway_send_timeout + 5
            try:
                await asyncio.wait_for(server.wait_closed(), deadline)
            except TimeoutError:
                log.warning("connections still open after %gs; closing them", deadline)
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        if status_task is not None:
            status_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await status_task
        await reporter.report("stopped")
        await producer.stop()
    log.info("stopped")


def _announce(server: Server, routes: RouteTable, tls: bool) -> None:
    sockname = next(iter(server.sockets)).getsockname()
    scheme = "wss" if tls else "ws"
    names = ", ".join(f"{r.group}/{r.dataset}" for r in routes.routes)
    print(f"atlas gateway ready: {scheme}://{sockname[0]}:{sockname[1]}/ingest/<group>/<dataset> "
          f"({len(routes.routes)} datasets: {names})", flush=True)


def run_gateway(args: argparse.Namespace, settings: Settings) -> int:
    """``python -m atlas_stream gateway``: CLI arguments override ATLAS_GATEWAY_HOST/PORT."""
    logging.basicConfig(level=_LEVELS.get(settings.log_level, logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # websockets logs request lines and headers at debug level, and they may hold tokens.
    logging.getLogger("websockets").setLevel(max(logging.INFO, logging.getLogger().level))
    host = args.host if getattr(args, "host", None) is not None else settings.gateway_host
    port = args.port if getattr(args, "port", None) is not None else settings.gateway_port
    tls = _ssl_context(getattr(args, "tls_cert", None), getattr(args, "tls_key", None))
    asyncio.run(serve_gateway(settings, host, port, tls))
    return 0

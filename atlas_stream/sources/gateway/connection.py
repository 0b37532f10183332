"""Gateway handshakes and connections: frames in, one reply per frame out, in order."""

from __future__ import annotations

import asyncio
import logging
import time
from http import HTTPStatus
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from ...messages import record_key
from ...settings import Settings
from .auth import Refusal
from .frames import (
    BINARY_FRAME_ERROR,
    FrameError,
    decode_frame,
    error_reply,
    ok_reply,
)
from .publish import Publisher
from .routes import Route, RouteTable
from .status import SourceStats, StatusReporter

__all__ = ["DRAIN_IDLE", "PIPELINE", "REFUSE_PERIOD", "Gateway"]

log = logging.getLogger("atlas_stream.sources.gateway")

#: Frames of one connection being published at once. Their records enter the producer in frame
#: order and the replies go out in frame order; overlapping them lets a client that sends without
#: waiting share one broker round trip among several frames instead of paying one each.
PIPELINE = 8
#: While draining, a connection that sends nothing for this long is closed.
DRAIN_IDLE = 0.5
#: After the drain period, frames already received are refused (not published) for up to this long.
REFUSE_PERIOD = 1.0
_SHUTTING_DOWN = "the gateway is shutting down; frame not accepted, resend it after reconnecting"


def _peer(conn: ServerConnection) -> str:
    address = conn.remote_address
    if isinstance(address, tuple) and len(address) >= 2:
        return f"{address[0]}:{address[1]}"
    return str(address)


def _ready(reply: bytes) -> asyncio.Future[bytes]:
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    future.set_result(reply)
    return future


class Gateway:
    """Handshakes (``process_request``) and connection handlers (``handler``) of the server."""

    def __init__(self, settings: Settings, routes: RouteTable, publisher: Publisher,
                 reporter: StatusReporter, stats: dict[str, SourceStats]) -> None:
        self.settings = settings
        self.routes = routes
        self.publisher = publisher
        self.reporter = reporter
        self.stats = stats
        self.stopping = asyncio.Event()
        self._drain_until = 0.0
        self._stop_waiter: asyncio.Task[Any] | None = None

    def stop(self) -> None:
        """Start a graceful shutdown (signal handler): refuse new connections, drain open ones."""
        if not self.stopping.is_set():
            log.info("stopping: serving open connections for up to %gs", self.settings.gateway_drain_seconds)
            self._drain_until = asyncio.get_running_loop().time() + self.settings.gateway_drain_seconds
            self.stopping.set()

    def process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        if self.stopping.is_set():
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "the gateway is shutting down\n")
        decision = self.routes.resolve(request.path, request.headers.get("Authorization"))
        if isinstance(decision, Route):
            return None
        # Never log the path or headers: they may hold the token.
        log.info("refused %s: %d %s", _peer(conn), decision.status, decision.message)
        response = conn.respond(decision.status, decision.message + "\n")
        if decision.status == HTTPStatus.UNAUTHORIZED:
            response.headers["WWW-Authenticate"] = 'Bearer realm="atlas-gateway"'
        return response

    async def handler(self, conn: ServerConnection) -> None:
        assert conn.request is not None
        route = self.routes.resolve(conn.request.path, conn.request.headers.get("Authorization"))
        if isinstance(route, Refusal):  # cannot happen: process_request accepted it
            await conn.close(CloseCode.POLICY_VIOLATION, route.message)
            return
        peer = _peer(conn)
        log.info("connection %s: group=%s dataset=%s", peer, route.group, route.dataset)
        stats = self.stats[route.source]
        # One reply per frame, in order: the writer awaits each frame's reply in turn. The queue
        # is bounded, so a connection holds at most PIPELINE frames besides websockets' buffer.
        replies: asyncio.Queue[asyncio.Future[bytes] | None] = asyncio.Queue(PIPELINE)
        writer = asyncio.create_task(self._write_replies(conn, replies))
        in_order = asyncio.Lock()
        seq = 0
        draining = False
        try:
            while True:
                message, refuse = await self._next_frame(conn)
                if message is None:
                    draining = True
                    break
                seq += 1
                await replies.put(self._answer(route, stats, seq, message, refuse, in_order))
        except ConnectionClosed as exc:
            if exc.rcvd is None or exc.rcvd.code not in (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY):
                log.info("connection %s closed: %s", peer, exc)
        finally:
            await replies.put(None)
            await writer  # every frame read is finished, and answered while the connection lasts
            log.info("connection %s done: %d frames", peer, seq)
        if draining:
            await conn.close(CloseCode.GOING_AWAY, "gateway shutting down")

    async def _write_replies(self, conn: ServerConnection, replies: asyncio.Queue[asyncio.Future[bytes] | None],
                             ) -> None:
        closed = False
        while (future := await replies.get()) is not None:
            reply = await future  # never raises: _publish turns every failure into a reply
            if closed:
                continue  # the client is gone; still wait for the rest, so nothing is left running
            try:
                await conn.send(reply, text=True)
            except ConnectionClosed:
                closed = True

    async def _next_frame(self, conn: ServerConnection) -> tuple[str | bytes | None, bool]:
        """(next frame, refuse it?); (None, _) ends the connection (graceful shutdown)."""
        loop = asyncio.get_running_loop()
        if not self.stopping.is_set():
            if self._stop_waiter is None:
                self._stop_waiter = asyncio.ensure_future(self.stopping.wait())
            recv = asyncio.ensure_future(conn.recv())
            await asyncio.wait({recv, self._stop_waiter}, return_when=asyncio.FIRST_COMPLETED)
            if not recv.done():
                recv.cancel()  # websockets: cancelling recv() loses no data
                await asyncio.wait({recv})
            if not recv.cancelled():
                return recv.result(), False
        # Draining: keep serving until the client pauses or the drain period ends ...
        remaining = self._drain_until - loop.time()
        if remaining > 0:
            try:
                return await asyncio.wait_for(conn.recv(), min(remaining, DRAIN_IDLE)), False
            except TimeoutError:
                if loop.time() < self._drain_until:
                    return None, False
        # ... then answer what has already arrived with a refusal, so that it is not left unreplied.
        if loop.time() < self._drain_until + REFUSE_PERIOD:
            try:
                return await asyncio.wait_for(conn.recv(), 0.05), True
            except TimeoutError:
                pass
        return None, False

    def _answer(self, route: Route, stats: SourceStats, seq: int, message: str | bytes, refuse: bool,
                in_order: asyncio.Lock) -> asyncio.Future[bytes]:
        """The frame's reply to come: checked here, published by a task of its own."""
        stats.last_frame = time.time()
        if refuse:
            return _ready(error_reply(seq, _SHUTTING_DOWN, retriable=True))
        if isinstance(message, bytes):
            return _ready(error_reply(seq, BINARY_FRAME_ERROR))
        try:
            records, values = decode_frame(message, self.settings.gateway_max_frame_bytes, route.max_records,
                                           self.settings.max_message_bytes)
            keys = [record_key(r, route.key) for r in records]
        except FrameError as exc:
            return _ready(error_reply(seq, str(exc), items=exc.items))
        except Exception as exc:  # a frame never goes without a reply
            log.exception("frame %d of %s.%s could not be read", seq, route.group, route.dataset)
            return _ready(error_reply(seq, f"frame could not be read: {type(exc).__name__}"))
        return asyncio.ensure_future(self._publish(route, stats, seq, values, keys, in_order))

    async def _publish(self, route: Route, stats: SourceStats, seq: int, values: list[bytes],
                       keys: list[bytes | None], in_order: asyncio.Lock) -> bytes:
        try:
            outcome = await self.publisher.publish(route.topic, values, keys, in_order)
        except Exception:  # a frame never goes without a reply, whatever failed
            log.exception("frame %d of %s.%s failed", seq, route.group, route.dataset)
            return error_reply(seq, "internal gateway error (logged); the frame may be partly published: "
                                    "resend it", retriable=True)
        stats.rows += len(outcome.accepted)
        if outcome.ok:
            stats.degraded = False
            self.reporter.changed()
            return ok_reply(seq, len(values))
        stats.degraded = True
        stats.last_error = outcome.error
        self.reporter.changed()
        log.warning("%s.%s frame %d: %s", route.group, route.dataset, seq, outcome.error)
        return error_reply(seq, outcome.error or "not accepted", not_accepted=outcome.not_accepted,
                           count=len(outcome.accepted), retriable=True)

"""The gateway's HTTP/1.1 server: an ``asyncio.Protocol`` on httptools, for the reason the client in
:mod:`modelyard.transport.http1` is one.

Measured on this project's 2-core machine (``bench/server_overhead.py``: a handler that does no work, the
benchmark's 3 KB stream), aiohttp's server spends 91 µs of CPU per streamed request and this one 40, for
2.2x the requests per second; the difference is a fifth of modelyard's whole streamed request. httptools
(llhttp, the C parser under uvicorn and Node.js) parses and frames the requests: Content-Length and chunked
bodies, keep-alive rules, pipelining. Around it, only what a JSON API needs: a body limit (refused with the
handler's own 413, never read into memory past the limit), ``Expect: 100-continue``, header limits, an idle
sweep, client disconnects cancelling the handler, flow control on streamed responses, and a graceful close.
Handlers are called with a complete :class:`Request` and return a :class:`Response` or a :class:`Streamed`
one; the server frames it.

Facing a hostile client it holds to what nginx and Envoy enforce (:class:`~modelyard.transport.limits.Limits`
has each default and whose it is; ``docs/security.md`` the attacks): the target, the head and the header
count are bounded while they arrive (every read counts at least 64 bytes, so a head dribbled a byte at a
time cannot make llhttp re-copy its buffers without end); bytes that begin no request (blank lines) keep no
connection alive; a client that stops reading its answer is dropped after the write timeout, and while it
lags a stream waits (so does the upstream read, :mod:`modelyard.transport.http1`); connections are capped,
the soft open-file limit raised to the hard one. A request refused by the parser after valid ones in the
same read is answered only once those are; ``Upgrade`` (h2c, websocket) is ignored as nginx does: the
request is answered over HTTP/1.1. HTTP/1.1 without ``Host`` is refused. Paths are routed as sent, never
percent-decoded: ``/%6detrics`` is not ``/metrics``, whatever a proxy in front matched it against.
"""

from __future__ import annotations

import asyncio
import logging
import socket

from modelyard.transport.inbound import HttpConnection
from modelyard.transport.limits import Limits, connection_cap, raise_fd_limit
from modelyard.transport.messages import (
    Handler,
    Pump,
    Refusal,
    Refused,
    Request,
    Response,
    Streamed,
)

__all__ = [
    "Handler",
    "HttpConnection",
    "Limits",
    "Pump",
    "Refusal",
    "Refused",
    "Request",
    "Response",
    "Server",
    "Streamed",
]

log = logging.getLogger("modelyard.http")


class Server:
    """What the connections share: the handler, the limits, the live connections (for sweeps and close)."""

    def __init__(
        self, handler: Handler, refusal: Refusal, max_body_bytes: int, limits: Limits | None = None
    ) -> None:
        self.handler, self.refusal, self.max_body_bytes = handler, refusal, max_body_bytes
        self.limits = limits = limits or Limits()
        #: Timeouts in sweeps (the server's clock ticks once a sweep).
        self.idle_ticks = limits.sweeps(limits.idle_timeout_s)
        self.head_ticks = limits.sweeps(limits.head_timeout_s)
        self.body_ticks = limits.sweeps(limits.body_timeout_s)
        self.connections: set[HttpConnection] = set()
        self.cap = limits.max_connections
        #: Connections refused at the cap since the last sweep (logged there, once per sweep).
        self.refused = 0
        self.tick = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._listener: asyncio.Server | None = None

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    async def start(self, host: str, port: int, sock: socket.socket | None = None) -> int:
        """Listen on ``host:port`` (0 picks a free port), or accept on ``sock``, a listening socket
        already bound (one ``--workers`` shares with its siblings); returns the port."""
        self.cap = connection_cap(self.limits, raise_fd_limit())
        loop = asyncio.get_running_loop()
        if sock is not None:
            self._listener = await loop.create_server(self.protocol, sock=sock, backlog=1024)
        else:
            self._listener = await loop.create_server(self.protocol, host, port, backlog=1024)
        self._sweeper = loop.call_later(self.limits.sweep_s, self._sweep)
        return int(self._listener.sockets[0].getsockname()[1])

    def _sweep(self) -> None:
        self.tick += 1
        for connection in list(self.connections):
            connection.sweep(self.tick)
        if self.refused:
            log.warning("%d connections refused at the cap of %d open connections", self.refused, self.cap)
            self.refused = 0
        self._sweeper = asyncio.get_running_loop().call_later(self.limits.sweep_s, self._sweep)

    async def close(self, timeout_s: float) -> None:
        """Stop listening, let running requests finish for up to ``timeout_s``, then cancel them."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            self._listener.close()
        for connection in list(self.connections):
            connection.closing = True
            if connection.task is None:
                connection.close()
        tasks = [c.task for c in self.connections if c.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        # Still running: cancelled (a stream records itself as cut short) and the connection dropped.
        tasks = [c.task for c in self.connections if c.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        if self._listener is not None:
            await self._listener.wait_closed()

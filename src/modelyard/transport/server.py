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
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from time import time
from typing import Protocol
from urllib.parse import parse_qsl, unquote

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, parse_url
from multidict import CIMultiDict

log = logging.getLogger("modelyard.http")

#: Request heads larger than this (request line and headers) are refused with 431.
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 128
#: An oversized request's body is read and dropped (so the client reads its 413 rather than a reset) up to
#: this many times the limit; past it the connection is closed.
DISCARD_FACTOR = 4
#: Idle keep-alive connections are closed after one to two sweeps; a request whose head or body is
#: still arriving after two sweeps gets 408 (a slow client holding connections open).
SWEEP_S = 30.0


@dataclass(slots=True)
class Request:
    method: str
    path: str
    query_string: str
    headers: CIMultiDict[str]
    body: bytes = b""
    #: The declared Content-Length, when there was one.
    content_length: int | None = None
    #: The body went past the server's limit: ``body`` is empty and the connection closes after the answer.
    oversized: bool = False

    @property
    def query(self) -> dict[str, str]:
        return dict(parse_qsl(self.query_string))


@dataclass(slots=True)
class Response:
    body: bytes
    status: int = 200
    content_type: str = "application/json"
    headers: Mapping[str, str] | None = None


class Pump(Protocol):
    """A streamed body: every frame but the last through ``write``, the last returned (it goes with the
    end of the body). ``close`` is called instead of ``pump`` when the client left first."""

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class Streamed:
    body: Pump
    content_type: str = "text/event-stream"
    headers: Mapping[str, str] | None = None


Handler = Callable[[Request], Awaitable[Response | Streamed]]
#: The answer to a request refused before any handler ran (malformed HTTP, a head too large).
Refusal = Callable[[int, str], Response]

_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


class _Clock:
    """The ``Date`` header, formatted once a second rather than per response."""

    second = 0
    header = b""

    @classmethod
    def date_header(cls) -> bytes:
        now = int(time())
        if now != cls.second:
            cls.second, cls.header = now, f"Date: {formatdate(now, usegmt=True)}\r\n".encode()
        return cls.header


class Server:
    """What the connections share: the handler, the limits, the live connections (for sweeps and close)."""

    def __init__(self, handler: Handler, refusal: Refusal, max_body_bytes: int) -> None:
        self.handler, self.refusal, self.max_body_bytes = handler, refusal, max_body_bytes
        self.connections: set[HttpConnection] = set()
        self.tick = 0
        self._sweeper: asyncio.TimerHandle | None = None
        self._listener: asyncio.Server | None = None

    def protocol(self) -> HttpConnection:
        return HttpConnection(self)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port); returns the port."""
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self.protocol, host, port, backlog=1024)
        self._sweeper = loop.call_later(SWEEP_S, self._sweep)
        return int(self._listener.sockets[0].getsockname()[1])

    def _sweep(self) -> None:
        self.tick += 1
        for connection in list(self.connections):
            connection.sweep(self.tick)
        self._sweeper = asyncio.get_running_loop().call_later(SWEEP_S, self._sweep)

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


class HeadTooLarge(Exception):
    """Raised from a parser callback: ``feed_data`` raises httptools' callback error with it as context."""


class HttpConnection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered one at a time, in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.parser = HttpRequestParser(self)
        #: The handler answering this connection's current request.
        self.task: asyncio.Task[None] | None = None
        #: Requests that arrived (pipelined) while one was being answered.
        self.queue: deque[tuple[Request, bool]] = deque()
        #: No new request is taken (the server is stopping, or this connection is ending).
        self.closing = False
        self.active = True
        self._request: Request | None = None
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        self._body: list[bytes] = []
        self._body_bytes = 0
        self._begun_tick: int | None = None
        self._keep_alive = True
        #: The current request was handed on early (oversized): the rest of its body is dropped.
        self._dispatched = False
        self._drained: asyncio.Future[None] | None = None
        self._lost = False
        self._chunked = True
        self._unsent_head = b""

    # -- the transport's callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.server.connections.discard(self)
        if self.task is not None:
            self.task.cancel()  # the client hung up: its upstream call stops and its row says so
        if self._drained is not None:
            self._drained.cancel()

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def data_received(self, data: bytes) -> None:
        self.active = True
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade:
            self._refuse(400, "protocol upgrades are not supported")
        except HttpParserError as exc:
            if isinstance(exc.__context__, HeadTooLarge):  # raised in on_header, wrapped by httptools
                self._refuse(431, f"the request head exceeds {MAX_HEAD_BYTES} bytes or {MAX_HEADERS} headers")
            elif self._dispatched:
                self.close()
            else:
                self._refuse(400, f"malformed HTTP request: {exc}")

    def sweep(self, tick: int) -> None:
        if self.task is not None:
            return
        if self.closing:
            self.close()
            return
        if self._begun_tick is not None:
            if tick - self._begun_tick >= 2:
                self._refuse(408, "the request took too long to arrive")
        elif not self.active:
            self.close()
        self.active = False

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # -- httptools' callbacks --------------------------------------------------------------------------

    def on_message_begin(self) -> None:
        self._url, self._headers, self._body = b"", [], []
        self._head_bytes = self._body_bytes = 0
        self._dispatched = False
        self._begun_tick = self.server.tick

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        if self._head_bytes > MAX_HEAD_BYTES or len(self._headers) >= MAX_HEADERS:
            raise HeadTooLarge
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        path, _, query = self._url.decode("latin-1").partition("?")
        if not path.startswith("/"):  # absolute form (``POST http://host/v1/...``), as proxies send it
            path = parse_url(self._url).path.decode("latin-1") or "/"
        if "%" in path:
            path = unquote(path)
        headers = CIMultiDict(self._headers)
        declared = headers.get("Content-Length")
        length = int(declared) if declared and declared.isdigit() else None
        request = Request(self.parser.get_method().decode(), path, query, headers, content_length=length)
        self._request = request
        self._keep_alive = self.parser.should_keep_alive() and not self.closing
        if length is not None and length > self.server.max_body_bytes:
            self._dispatch_oversized(request)
        elif headers.get("Expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        if self._dispatched:
            if self._body_bytes > DISCARD_FACTOR * self.server.max_body_bytes:
                self.close()
            return
        if self._body_bytes > self.server.max_body_bytes:
            assert self._request is not None
            self._body.clear()
            self._dispatch_oversized(self._request)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._begun_tick = None
        if self._dispatched:
            if self.task is None:
                self.close()  # the oversized request was answered while its body was still arriving
            return
        if self.closing:
            return  # pipelined after a request that ends the connection
        request = self._request
        assert request is not None
        request.body = b"".join(self._body) if len(self._body) != 1 else self._body[0]
        self._body = []
        self._enqueue(request, self._keep_alive)

    # -- answering -------------------------------------------------------------------------------------

    def _dispatch_oversized(self, request: Request) -> None:
        """Answered at once (the handler refuses it); the body's remaining bytes are read and dropped,
        and the connection closes when it ends, so the client reads the answer rather than a reset."""
        request.oversized = True
        self._dispatched = True
        self.closing = True
        self._enqueue(request, False)

    def _enqueue(self, request: Request, keep_alive: bool) -> None:
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._answer(request, keep_alive))
        else:
            self.queue.append((request, keep_alive))
            if self.transport is not None:
                self.transport.pause_reading()  # one request waiting is enough; TCP holds the rest

    async def _answer(self, request: Request, keep_alive: bool) -> None:
        try:
            while True:
                if not await self._respond(request, keep_alive):
                    return
                if not self.queue:
                    break
                request, keep_alive = self.queue.popleft()
            if self.transport is not None and not self.closing:
                self.transport.resume_reading()
        except ConnectionError:
            self.closing = True  # the client went away while its answer was being written
        except Exception:
            # A streamed answer that broke after its head went out: nothing can be said in HTTP any more.
            log.exception("error while streaming the answer to %s %s", request.method, request.path)
            self.closing = True
        finally:
            self.task = None
            if self.closing and not self._dispatched_pending():
                self.close()

    def _dispatched_pending(self) -> bool:
        """An oversized request's body is still arriving: close when it ends (on_message_complete)."""
        return self._dispatched and self._begun_tick is not None and not self._lost

    async def _respond(self, request: Request, keep_alive: bool) -> bool:
        """Answer one request; whether the connection stays open for the next."""
        try:
            answer = await self.server.handler(request)
        except Exception:
            log.exception("unhandled error answering %s %s", request.method, request.path)
            answer = self.server.refusal(500, "internal error; the gateway's log has the details")
            keep_alive = False
        keep_alive = keep_alive and not self.closing  # the server may have begun closing meanwhile
        if isinstance(answer, Streamed):
            keep_alive = await self._stream(request, answer, keep_alive)
        else:
            self._send(request, answer, keep_alive)
        if not keep_alive:
            self.closing = True
        return keep_alive

    def _head(self, status: int, content_type: str, extra: Mapping[str, str] | None, framing: bytes) -> bytes:
        lines = [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS.get(status, b"Unknown")),
            b"Content-Type: ",
            content_type.encode("latin-1"),
            b"\r\n",
            framing,
            _Clock.date_header(),
            b"Server: modelyard\r\n",
        ]
        if extra:
            lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in extra.items())
        lines.append(b"\r\n")
        return b"".join(lines)

    def _send(self, request: Request, answer: Response, keep_alive: bool) -> None:
        framing = b"Content-Length: %d\r\n" % len(answer.body)
        if not keep_alive:
            framing += b"Connection: close\r\n"
        head = self._head(answer.status, answer.content_type, answer.headers, framing)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head if request.method == "HEAD" else head + answer.body)

    async def _stream(self, request: Request, answer: Streamed, keep_alive: bool) -> bool:
        """Chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0). The head goes with the
        first frame: one write where the whole answer is already here."""
        self._chunked = chunked = self.parser.get_http_version() == "1.1"
        keep_alive = keep_alive and chunked
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else b""
        if not keep_alive:
            framing += b"Connection: close\r\n"
        self._unsent_head = self._head(200, answer.content_type, answer.headers, framing)
        if self._lost:
            await answer.body.close()
            raise asyncio.CancelledError
        last = await answer.body.pump(self._write)
        end = ((_chunk(last) if last else b"") + b"0\r\n\r\n") if chunked else last
        if self._unsent_head:
            end, self._unsent_head = self._unsent_head + end, b""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(end)
        return keep_alive

    async def _write(self, data: bytes) -> None:
        """One frame of a streamed answer; waits while the client reads slower than the gateway writes."""
        transport = self.transport
        if self._lost or transport is None or transport.is_closing():
            raise ConnectionResetError("the client closed the connection")
        if not data:
            return  # an empty chunk would end the body
        out = _chunk(data) if self._chunked else data
        if self._unsent_head:
            out, self._unsent_head = self._unsent_head + out, b""
        transport.write(out)
        if self._drained is not None:
            await self._drained

    def _refuse(self, status: int, message: str) -> None:
        """A request that never reached a handler: answer and close."""
        self.closing = True
        if self.task is not None:
            self.close()
            return
        answer = self.server.refusal(status, message)
        framing = b"Content-Length: %d\r\nConnection: close\r\n" % len(answer.body)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(
                self._head(status, answer.content_type, answer.headers, framing) + answer.body
            )
        self.close()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)

"""One client connection to the gateway's HTTP server: httptools' callbacks, the limits checked as the
request arrives, and the answers written in order. :mod:`modelyard.transport.server` explains the design."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import cast

from httptools import HttpParserError, HttpParserUpgrade, HttpRequestParser, parse_url
from multidict import CIMultiDict

from modelyard.transport.limits import DISCARD_FACTOR, MIN_READ_CHARGE
from modelyard.transport.messages import Host, Refused, Request, Response, Streamed, chunk, frame_head

log = logging.getLogger("modelyard.http")


class HttpConnection(asyncio.Protocol):
    """One client connection: requests parsed by httptools, answered one at a time, in order."""

    def __init__(self, server: Host[HttpConnection]) -> None:
        self.server = server
        self.limits = server.limits
        self.transport: asyncio.Transport | None = None
        self.parser = HttpRequestParser(self)
        #: The handler answering this connection's current request.
        self.task: asyncio.Task[None] | None = None
        #: Requests that arrived (pipelined) while one was being answered.
        self.queue: deque[tuple[Request, bool]] = deque()
        #: No new request is taken (the server is stopping, or this connection is ending).
        self.closing = False
        self._request: Request | None = None
        self._url = b""
        self._headers: list[tuple[str, str]] = []
        self._head_bytes = 0
        #: Bytes read since the last head or body ended that completed no head (see MIN_READ_CHARGE).
        self._head_fed = 0
        #: Heads and messages completed so far: whether a read finished one.
        self._completed = 0
        self._in_body = False
        self._body: list[bytes] = []
        self._body_bytes = 0
        #: Sweep ticks: a request's first byte, its body's last read, the end of the last answer.
        self._begun_tick: int | None = None
        self._body_tick = 0
        self._idle_tick = server.tick
        self._keep_alive = True
        #: The current request was handed on early (oversized): the rest of its body is dropped.
        self._dispatched = False
        #: The parser stopped (malformed input): nothing more is read; a refusal may wait its turn.
        self._dead = False
        self._refusal: tuple[int, str] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._stalled: asyncio.TimerHandle | None = None
        self._lost = False
        self._chunked = True
        self._unsent_head = b""

    # -- the transport's callbacks ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        server = self.server
        if len(server.connections) >= server.cap:
            # Beyond the cap: a canned answer and the door, before any parsing; the clients already
            # connected keep their file descriptors and their upstream connections.
            server.refused += 1
            self._dead = self.closing = True
            self._write_refusal(503, "the gateway is at its limit of open connections; retry shortly")
            return
        server.connections.add(self)
        transport.set_write_buffer_limits(high=self.limits.write_buffer_bytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.server.connections.discard(self)
        if self.task is not None:
            self.task.cancel()  # the client hung up: its upstream call stops and its row says so
        if self._drained is not None:
            self._drained.cancel()
        if self._stalled is not None:
            self._stalled.cancel()

    def pause_writing(self) -> None:
        loop = asyncio.get_running_loop()
        self._drained = loop.create_future()
        self._stalled = loop.call_later(self.limits.write_timeout_s, self._write_timed_out)

    def resume_writing(self) -> None:
        if self._stalled is not None:
            self._stalled.cancel()
            self._stalled = None
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    def _write_timed_out(self) -> None:
        """The client read nothing for the write timeout: drop it (a stream's handler is cancelled by
        ``connection_lost`` and records itself as cut short by the client)."""
        self._stalled = None
        log.info("closing a connection whose client read nothing for %g s", self.limits.write_timeout_s)
        if self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._dead:
            return
        completed = self._completed
        try:
            self.parser.feed_data(data)
        except HttpParserUpgrade as exc:
            # The request asking to switch (h2c, websocket) was complete and is answered over HTTP/1.1, as
            # nginx does; what follows it is parsed as the next request, by a parser of its own (llhttp's
            # stays stopped after an upgrade).
            self.parser = HttpRequestParser(self)
            rest = data[int(exc.args[0]) :] if exc.args else b""
            if rest:
                self.data_received(rest)
            return
        except HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, Refused):
                self._refuse(cause.status, cause.message)
            elif self._dispatched:
                self.close()
            elif "PRI" in str(exc):
                self._refuse(505, "HTTP/2 is not served here (no h2c prior knowledge): send HTTP/1.1")
            else:
                self._refuse(400, f"malformed HTTP request: {exc}")
            return
        if self._in_body:
            return
        if self._completed != completed:
            self._head_fed = 0  # a head or body ended in this read; what follows is at most one read
            return
        self._head_fed += max(len(data), MIN_READ_CHARGE)
        if self._head_fed > self.limits.max_head_bytes:
            self._refuse(431, f"the request head exceeds {self.limits.max_head_bytes} bytes")

    def sweep(self, tick: int) -> None:
        if self.task is not None:
            return  # being answered: the upstream's timeouts and the write timeout apply
        server = self.server
        if self.closing or self._dispatched:
            self.close()
        elif self._begun_tick is None:
            if tick - self._idle_tick >= server.idle_ticks:
                self.close()
        elif not self._in_body:
            if tick - self._begun_tick >= server.head_ticks:
                self._refuse(408, "the request head took too long to arrive")
        elif tick - self._body_tick >= server.body_ticks:
            self._refuse(408, "the request body stopped arriving")

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
        # Concatenated as it comes: bounded by max_url_bytes, and one piece for any real client.
        self._url = self._url + url if self._url else url
        self._head_bytes += len(url)
        if len(self._url) > self.limits.max_url_bytes:
            raise Refused(414, f"the request target exceeds {self.limits.max_url_bytes} bytes")

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value)
        limits = self.limits
        if self._head_bytes > limits.max_head_bytes or len(self._headers) >= limits.max_headers:
            raise Refused(
                431, f"the request head exceeds {limits.max_head_bytes} bytes or {limits.max_headers} headers"
            )
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self._completed += 1
        self._in_body = True
        self._body_tick = self.server.tick
        parser = self.parser
        http11 = parser.get_http_version() == "1.1"
        path, _, query = self._url.decode("latin-1").partition("?")
        headers = CIMultiDict(self._headers)
        if not path.startswith("/"):
            # Absolute form (``POST http://host/v1/...``), as proxies send it: the path as sent.
            if not path.startswith(("http://", "https://")):
                raise Refused(400, "the request target must be a path or an absolute http(s) URL")
            path = parse_url(self._url).path.decode("latin-1") or "/"
        elif http11 and len(headers.getall("Host", ())) != 1:
            # RFC 9112 3.2, as nginx: "client sent HTTP/1.1 request without "Host" header".
            raise Refused(400, "an HTTP/1.1 request must carry exactly one Host header")
        declared = headers.get("Content-Length")
        length = int(declared) if declared and declared.isdigit() else None
        method = parser.get_method().decode()
        request = Request(method, path, query, headers, content_length=length, http11=http11)
        self._request = request
        self._keep_alive = parser.should_keep_alive() and not self.closing
        if length is not None and length > self.server.max_body_bytes:
            self._dispatch_oversized(request)
        elif headers.get("Expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        self._body_tick = self.server.tick
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
        self._completed += 1
        self._in_body = False
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
        self._dispatched = True  # what is pipelined after it is ignored (on_message_complete)
        # Not ``closing`` yet: requests pipelined before it are still to be answered, and keep-alive; its
        # own answer (keep_alive False) ends the connection. Setting it here cut those answers short: the
        # first got ``Connection: close`` and the rest none (found by test_transport_fuzz).
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
            if self.transport is not None and not self.closing and not self._dead:
                self.transport.resume_reading()
        except ConnectionError:
            self.closing = True  # the client went away while its answer was being written
        except Exception:
            # A streamed answer that broke after its head went out: nothing can be said in HTTP any more.
            log.exception("error while streaming the answer to %s %s", request.method, request.path)
            self.closing = True
        finally:
            self.task = None
            self._idle_tick = self.server.tick
            if self._refusal is not None and not self.closing:
                self._write_refusal(*self._refusal)  # what the parser refused after the answered requests
            elif self.closing and not self._dispatched_pending():
                self.close()

    def _dispatched_pending(self) -> bool:
        """An oversized request's body is still arriving: close when it ends (on_message_complete) — unless
        it announced more than the discard budget, which would be cut off anyway: then close once answered
        (a huge Content-Length must not hold the connection open waiting for bytes we would drop)."""
        if not (self._dispatched and self._begun_tick is not None and not self._lost):
            return False
        declared = self._request.content_length if self._request is not None else None
        return declared is None or declared <= DISCARD_FACTOR * self.server.max_body_bytes

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

    def _send(self, request: Request, answer: Response, keep_alive: bool) -> None:
        framing = b"Content-Length: %d\r\n" % len(answer.body)
        if not keep_alive:
            framing += b"Connection: close\r\n"
        head = frame_head(answer.status, answer.content_type, answer.headers, framing)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(head if request.method == "HEAD" else head + answer.body)

    async def _stream(self, request: Request, answer: Streamed, keep_alive: bool) -> bool:
        """Chunked (HTTP/1.1) or delimited by closing the connection (HTTP/1.0). The head goes with the
        first frame: one write where the whole answer is already here."""
        self._chunked = chunked = request.http11
        keep_alive = keep_alive and chunked
        framing = b"Transfer-Encoding: chunked\r\n" if chunked else b""
        if not keep_alive:
            framing += b"Connection: close\r\n"
        self._unsent_head = frame_head(200, answer.content_type, answer.headers, framing)
        if self._lost:
            await answer.body.close()
            raise asyncio.CancelledError
        last = await answer.body.pump(self._write)
        end = ((chunk(last) if last else b"") + b"0\r\n\r\n") if chunked else last
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
        out = chunk(data) if self._chunked else data
        if self._unsent_head:
            out, self._unsent_head = self._unsent_head + out, b""
        transport.write(out)
        if self._drained is not None:
            await self._drained

    def _refuse(self, status: int, message: str) -> None:
        """A request that never reached a handler: nothing more is read; it is answered (after the
        requests before it on this connection, if any are still being answered) and the connection
        closed."""
        if self._dead:
            return
        self._dead = True
        if self.task is not None:
            self._refusal = (status, message)
            if self.transport is not None and not self.transport.is_closing():
                self.transport.pause_reading()
            return
        self._write_refusal(status, message)

    def _write_refusal(self, status: int, message: str) -> None:
        self.closing = True
        answer = self.server.refusal(status, message)
        framing = b"Content-Length: %d\r\nConnection: close\r\n" % len(answer.body)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(
                frame_head(status, answer.content_type, answer.headers, framing) + answer.body
            )
        self.close()

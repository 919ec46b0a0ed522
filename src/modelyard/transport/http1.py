"""A lean HTTP/1.1 client: keep-alive connections to one origin, no per-chunk task switches.

Both hot paths that talk to upstream servers use it: the gateway's provider calls (through
``providers/http.py``) and the endpoint benchmark's load generator. Why not aiohttp's client: measured on
this project's 2-core machine against nginx, a minimal forwarder spends ~170 µs of CPU per upstream POST in
aiohttp's client and ~20 µs in this one; pyreqwest (reqwest under an asyncio API) costs ~75 µs but does not
close the upstream connection when the awaiting task is cancelled, and a client that hangs up must stop
the provider's generation. So this is a bare ``asyncio.Protocol`` that feeds every read to httptools
(llhttp, the C parser under uvicorn and Node.js), which frames the responses: Content-Length, chunked
encoding, 1xx, the keep-alive rules. Around it, only what these callers need: a request head built once
per endpoint, keep-alive connections (retried once when the server had dropped an idle one), bare timers
for the whole response and for the gap between reads, and a streamed body handed on straight from
``data_received`` with its arrival time (``perf_counter_ns``), so timestamps carry no scheduling delay.
httptools cannot be told that the input ended, so a body delimited by the connection closing is ended in
``connection_lost``. Cancelling a request closes its connection. No redirects, proxies, cookies or
compression (none is asked for): where a request goes is the caller's URL alone.

Errors: :class:`ConnectError` (no connection; :class:`ConnectTimeout` when it took too long),
:class:`StreamCut` (the connection closed before the response ended), :class:`ProtocolError` (not
HTTP/1.x); a response past its timeout raises ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import cast
from urllib.parse import urlsplit

from httptools import HttpParserCallbackError, HttpParserError, HttpParserUpgrade, HttpResponseParser

#: Receives a streamed body as it arrives, one call per read (however many HTTP chunks the read held), with
#: the ``perf_counter_ns`` time of the read. It runs inside the transport's callback: an exception it raises
#: fails the request with that exception.
BodySink = Callable[[bytes, int], None]

#: A body that is not streamed (an error page, ``GET /models``) is kept up to this many bytes.
BODY_LIMIT = 1 << 20


class ConnectError(OSError):
    """No connection could be opened to the server."""


class ConnectTimeout(ConnectError, TimeoutError):
    """Opening the connection took longer than the connect timeout."""


class StreamCut(ConnectionError):
    """The connection closed before the response ended."""


class ProtocolError(ValueError):
    """The server did not answer in HTTP/1.x."""


@dataclass(slots=True)
class Response:
    status: int = 0
    #: The media type, lower case, without parameters: ``text/event-stream``.
    content_type: str = ""
    #: Header names in lower case (a repeated header keeps its last value).
    headers: dict[str, str] = field(default_factory=dict)
    #: The body was handed to the sink, so :attr:`body` is empty.
    streamed: bool = False
    body: bytearray = field(default_factory=bytearray)
    #: ``perf_counter_ns`` when the last byte arrived.
    end_ns: int = 0


def request_head(method: str, url: str, headers: Mapping[str, str]) -> bytes:
    """The request line and headers for ``url``, built once; :meth:`Pool.request` adds ``Content-Length``."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc.rpartition('@')[2]}", "Accept: */*"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time (no pipelining).

    httptools parses the responses: ``data_received`` feeds it, and it calls the ``on_*`` methods below.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.keep_alive = False
        #: A request was sent and its response has not ended.
        self.busy = False
        #: Some byte of the current response arrived (a reused connection that fails before may be retried).
        self.received = False
        self._parser = HttpResponseParser(self)
        self._now = 0
        self._head_done = False
        self._content_type = b""
        #: The body is framed (Content-Length or chunked), so it does not end with the connection.
        self._framed = False
        self._pieces: list[bytes] = []
        self._response = Response()
        self._sink: BodySink | None = None
        self._stream_any = False
        self._on_head: Callable[[Response], None] | None = None
        self._waiter: asyncio.Future[Response] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._read_timeout_s = 0.0

    @property
    def reusable(self) -> bool:
        return not self.closed and self.keep_alive and not self.busy

    def send(
        self,
        data: bytes,
        sink: BodySink | None,
        timeout_s: float,
        *,
        read_timeout_s: float | None = None,
        stream_any: bool = False,
        on_head: Callable[[Response], None] | None = None,
    ) -> asyncio.Future[Response]:
        """Write one request; the future is the response once it has ended, or fails.

        With a ``sink``, a 200 event stream's body goes to it (every 2xx body with ``stream_any``);
        ``on_head`` is called once the status and headers are in; ``read_timeout_s`` bounds the wait for
        each read."""
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        # Bare timers: asyncio.timeout() costs several times more, and this runs thousands of times a second.
        self._timer = loop.call_later(timeout_s, self._time_out, timeout_s)
        if read_timeout_s is not None and read_timeout_s < timeout_s:
            self._read_timeout_s = read_timeout_s
            self._now = perf_counter_ns()
            self._idle_timer = loop.call_later(read_timeout_s, self._check_idle)
        self.busy, self.received, self._response, self._sink = True, False, Response(), sink
        self._stream_any, self._on_head = stream_any, on_head
        self.transport.write(data)
        return self._waiter

    def _time_out(self, timeout_s: float) -> None:
        self._fail(TimeoutError(f"the response did not end within {timeout_s:g} s"))
        self.close()

    def _check_idle(self) -> None:
        """The read timer: re-armed for the rest of the gap when bytes came since it was set (cheaper
        than moving a timer on every read)."""
        quiet = (perf_counter_ns() - self._now) / 1e9
        if quiet < self._read_timeout_s:
            self._idle_timer = asyncio.get_running_loop().call_later(
                self._read_timeout_s - quiet, self._check_idle
            )
            return
        self._fail(TimeoutError(f"no byte from the server for {self._read_timeout_s:g} s"))
        self.close()

    def close(self) -> None:
        self.keep_alive = False
        if self.transport is not None:
            self.transport.close()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop may call this only after create_connection has returned; the pool sets it first then.
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.busy:
            return
        if self._head_done and not self._framed:
            # Neither Content-Length nor chunked: the close ends the body (httptools has no "feed EOF").
            self._finish(perf_counter_ns())
        else:
            self._fail(StreamCut("the server closed the connection before the response ended"))

    def data_received(self, data: bytes) -> None:
        self._now = perf_counter_ns()
        self.received = True
        if not self.busy:
            self.close()  # bytes nobody asked for: the connection cannot be trusted for the next request
            return
        try:
            self._parser.feed_data(data)
            self._flush()
        except Exception as exc:  # a broken response, or the sink rejecting the stream
            self._fail(_reason(exc))
            self.close()

    # The parser's callbacks, run inside feed_data.

    def on_message_begin(self) -> None:
        if not self.busy:  # more bytes after the response, in the same read
            raise ProtocolError("the server sent more than one response")
        self._response.headers.clear()  # a 1xx response's headers are not the answer's
        self._head_done, self._content_type, self._framed = False, b"", False

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        self._response.headers[name.decode("latin-1")] = value.decode("latin-1")
        if name == b"content-type":
            self._content_type = value
        elif name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:
            return  # 1xx: llhttp ends this message here and parses the real response after it
        version = self._parser.get_http_version()
        if not version.startswith("1."):
            raise ProtocolError(f"HTTP/{version}")
        self._head_done = True
        response = self._response
        response.status = status
        response.content_type = self._content_type.partition(b";")[0].strip().lower().decode("latin-1")
        if self._sink is not None:
            if self._stream_any:
                response.streamed = status < 300
            else:
                response.streamed = status == 200 and response.content_type == "text/event-stream"
        if self._on_head is not None:
            self._on_head(response)

    def on_body(self, piece: bytes) -> None:
        response = self._response
        if response.streamed:
            self._pieces.append(piece)
        elif len(response.body) < BODY_LIMIT:
            response.body += piece[: BODY_LIMIT - len(response.body)]

    def on_message_complete(self) -> None:
        if self._head_done:  # not the end of a 1xx
            self._flush()
            self.keep_alive = self._parser.should_keep_alive()
            self._finish(self._now)

    def _flush(self) -> None:
        """Hand this read's streamed pieces to the sink in one call: they share one arrival time, and one
        call per read costs the stream reader far less than one per HTTP chunk (servers send one per event).
        """
        if self._pieces:
            assert self._sink is not None
            piece = self._pieces[0] if len(self._pieces) == 1 else b"".join(self._pieces)
            self._pieces.clear()
            self._sink(piece, self._now)

    def _stop_timers(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _finish(self, now: int) -> None:
        self.busy = False
        self._stop_timers()
        self._response.end_ns = now
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(self._response)

    def _fail(self, exc: Exception) -> None:
        self.busy, self.keep_alive = False, False
        self._stop_timers()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


def _reason(exc: Exception) -> Exception:
    """What to fail the request with when httptools stops: a callback's own exception, or a ProtocolError."""
    if isinstance(exc, HttpParserUpgrade):
        return ProtocolError("the server switched protocols (status 101), which was not asked for")
    if isinstance(exc, HttpParserCallbackError) and isinstance(exc.__context__, Exception):
        return exc.__context__  # the sink rejected the stream, or a check above failed
    if isinstance(exc, HttpParserError):
        return ProtocolError(str(exc))
    return exc


class Exchange:
    """A request whose answer is arriving (from :meth:`Pool.open`): its head now, its body as it comes.

    Read the body with :meth:`next_piece` (or ``async for``) or :meth:`read`, then, or on any way out,
    :meth:`close`: a connection whose response ended goes back to the pool, any other is closed — which is
    how cancelling a caller stops the server's work.
    """

    def __init__(self, pool: Pool, connection: _Connection) -> None:
        self._pool = pool
        self._connection = connection
        self.response = Response()
        self._headed = False
        self._pieces: deque[bytes] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._done: asyncio.Future[Response] | None = None
        self._released = False

    def _start(self, data: bytes, read_timeout_s: float | None) -> None:
        self._done = self._connection.send(
            data,
            self._feed,
            self._pool.request_timeout_s,
            read_timeout_s=read_timeout_s,
            stream_any=True,
            on_head=self._head_arrived,
        )
        self._done.add_done_callback(self._wake)
        # A failure is raised from next_piece() when the caller reads on; one it never reads (it closed the
        # exchange, or was cancelled) must not be logged as an exception nobody retrieved.
        self._done.add_done_callback(_consume)

    async def _until_head(self) -> None:
        """Wait for the status and headers; raises if the request failed before them."""
        while not self._headed:
            assert self._done is not None
            if self._done.done():
                self._done.result()
                return
            await self._wait()

    def _feed(self, piece: bytes, now_ns: int) -> None:
        self._pieces.append(piece)
        self._wake()

    def _head_arrived(self, response: Response) -> None:
        self.response, self._headed = response, True
        self._wake()

    def _wake(self, *_: object) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    @property
    def ready(self) -> bool:
        """Whether :meth:`next_piece` answers without waiting: a piece is in, or the response ended."""
        return bool(self._pieces) or (self._done is not None and self._done.done())

    async def next_piece(self) -> bytes | None:
        """The next piece of a 2xx body as read from the network, ``None`` at its end. Raises what broke
        the response: :class:`StreamCut`, :class:`ProtocolError`, ``TimeoutError``."""
        while True:
            if self._pieces:
                return self._pieces.popleft()
            assert self._done is not None
            if self._done.done():
                self._done.result()
                self.close()
                return None
            await self._wait()

    def __aiter__(self) -> Exchange:
        return self

    async def __anext__(self) -> bytes:
        piece = await self.next_piece()
        if piece is None:
            raise StopAsyncIteration
        return piece

    async def read(self) -> bytes:
        """The rest of the body: a 2xx body as pieces arrive, any other as kept (up to ``BODY_LIMIT``)."""
        pieces = [piece async for piece in self]
        return b"".join(pieces) if self.response.streamed else bytes(self.response.body)

    def close(self) -> None:
        """Give the connection back if its response ended, else close it. Idempotent."""
        if self._released:
            return
        self._released = True
        connection = self._connection
        if connection.reusable:
            self._pool._idle.append(connection)
        else:
            connection.close()
        self._pool._slots.release()


def _consume(future: asyncio.Future[Response]) -> None:
    if not future.cancelled():
        future.exception()


class Pool:
    """Keep-alive connections to the origin of ``base_url``; at most ``limit`` requests at once."""

    def __init__(
        self,
        base_url: str,
        limit: int = 1024,
        connect_timeout_s: float = 10.0,
        request_timeout_s: float = 600.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"expected an http:// or https:// URL, got {base_url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.connect_timeout_s = connect_timeout_s
        self.request_timeout_s = request_timeout_s
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(limit)

    async def request(self, head: bytes, body: bytes = b"", sink: BodySink | None = None) -> Response:
        """Send ``head`` (from :func:`request_head`) and ``body``; the response once it has ended.

        A streamed body (status 200, ``text/event-stream``) goes to ``sink`` as it arrives; any other is
        returned in :attr:`Response.body`.
        """
        data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        async with self._slots:
            connection, reused = await self._acquire(fresh=False)
            try:
                try:
                    response = await connection.send(data, sink, self.request_timeout_s)
                except StreamCut:
                    if not reused or connection.received:
                        raise
                    # The server had closed this idle keep-alive connection: retry once on a new one.
                    connection.close()
                    connection, _ = await self._acquire(fresh=True)
                    response = await connection.send(data, sink, self.request_timeout_s)
            except BaseException:
                connection.close()
                raise
        if connection.reusable:
            self._idle.append(connection)
        else:
            connection.close()
        return response

    async def open(self, head: bytes, body: bytes = b"", *, read_timeout_s: float | None = None) -> Exchange:
        """Send ``head`` (from :func:`request_head`) and ``body``; return once the status and headers are in.

        The body follows through the :class:`Exchange`, which the caller must ``close()``. A reused
        connection the server had dropped is replaced once, transparently (nothing had arrived)."""
        data = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        await self._slots.acquire()
        connection: _Connection | None = None
        try:
            connection, reused = await self._acquire(fresh=False)
            exchange = Exchange(self, connection)
            exchange._start(data, read_timeout_s)
            try:
                await exchange._until_head()
            except StreamCut:
                if not reused or connection.received:
                    raise
                connection.close()
                connection, _ = await self._acquire(fresh=True)
                exchange = Exchange(self, connection)
                exchange._start(data, read_timeout_s)
                await exchange._until_head()
        except BaseException:
            if connection is not None:
                connection.close()
            self._slots.release()
            raise
        return exchange

    async def _acquire(self, fresh: bool) -> tuple[_Connection, bool]:
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.reusable:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                transport, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl
                )
        except TimeoutError:
            raise ConnectTimeout(f"timed out after {self.connect_timeout_s:g} s") from None
        except OSError as exc:
            raise ConnectError(str(exc) or type(exc).__name__) from None
        connection.transport = transport
        return connection, False

    def close(self) -> None:
        """Close the idle connections (those in use close when their request ends or is cancelled)."""
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def __aenter__(self) -> Pool:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

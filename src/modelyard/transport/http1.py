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
from urllib.parse import urlsplit

from modelyard.transport.connection import (
    BODY_LIMIT,
    BodySink,
    ConnectError,
    Connection,
    ConnectTimeout,
    ProtocolError,
    Response,
    StreamCut,
    request_head,
)

#: Body bytes an :class:`Exchange` holds unread before it stops reading from the server (resumed when the
#: caller has taken a quarter's worth): a client reading a stream slower than the provider writes it holds
#: the provider back, not the gateway's memory. A read is at most 256 KiB, so this bounds what piles up.
HIGH_WATER = 256 * 1024

__all__ = [
    "BODY_LIMIT",
    "BodySink",
    "ConnectError",
    "ConnectTimeout",
    "Exchange",
    "Pool",
    "ProtocolError",
    "Response",
    "StreamCut",
    "request_head",
]


class Exchange:
    """A request whose answer is arriving (from :meth:`Pool.open`): its head now, its body as it comes.

    Read the body with :meth:`next_piece` (or ``async for``) or :meth:`read`, then, or on any way out,
    :meth:`close`: a connection whose response ended goes back to the pool, any other is closed — which is
    how cancelling a caller stops the server's work.
    """

    def __init__(self, pool: Pool, connection: Connection) -> None:
        self._pool = pool
        self._connection = connection
        self.response = Response()
        self._headed = False
        self._pieces: deque[bytes] = deque()
        self._held = 0
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
        self._held += len(piece)
        if self._held > HIGH_WATER:
            self._connection.hold_back(True)
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
                piece = self._pieces.popleft()
                self._held -= len(piece)
                if self._held <= HIGH_WATER // 4 and self._connection.held_back:
                    self._connection.hold_back(False)
                return piece
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
            connection.hold_back(False)  # the response ended while reading was paused
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
        self._idle: list[Connection] = []
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
        connection: Connection | None = None
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

    async def _acquire(self, fresh: bool) -> tuple[Connection, bool]:
        while self._idle and not fresh:
            connection = self._idle.pop()
            if connection.reusable:
                return connection, True
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                transport, connection = await loop.create_connection(
                    Connection, self.host, self.port, ssl=self.ssl
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

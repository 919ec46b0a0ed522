"""One keep-alive HTTP/1.1 connection to an upstream: an ``asyncio.Protocol`` that feeds every read to
httptools, and what the rest of the client shares (the request head, the response, the errors).

:mod:`modelyard.transport.http1` explains the design; :class:`Connection` is its lowest layer: one request
at a time, bare timers for the whole response and for the gap between reads, a streamed body handed to a
sink straight from ``data_received``.
"""

from __future__ import annotations

import asyncio
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


class Connection(asyncio.Protocol):
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
        #: Reading is paused: the caller holds too much of the body unread (see :meth:`hold_back`).
        self.held_back = False

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

    def hold_back(self, paused: bool) -> None:
        """Stop (or resume) reading from the server: the caller's consumer is slower than the server,
        so TCP's window pushes back on the server instead of the body piling up in memory."""
        if paused == self.held_back or self.transport is None:
            return
        self.held_back = paused
        if paused:
            self.transport.pause_reading()
        elif not self.transport.is_closing():
            self.transport.resume_reading()

    def _time_out(self, timeout_s: float) -> None:
        self._fail(TimeoutError(f"the response did not end within {timeout_s:g} s"))
        self.close()

    def _check_idle(self) -> None:
        """The read timer: re-armed for the rest of the gap when bytes came since it was set (cheaper
        than moving a timer on every read)."""
        quiet = (perf_counter_ns() - self._now) / 1e9
        if self.held_back:  # the wait is the consumer's, not the server's
            quiet = 0.0
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

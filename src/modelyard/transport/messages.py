"""What a handler of :mod:`modelyard.transport.server` receives and returns, what a connection
(:mod:`modelyard.transport.inbound`) needs of the server and raises to refuse a request, and the bytes of an
answer's head."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import formatdate
from http import HTTPStatus
from time import time
from typing import Protocol, TypeVar
from urllib.parse import parse_qsl

from multidict import CIMultiDict

from modelyard.transport.limits import Limits


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
    #: HTTP/1.1 (chunked streams, keep-alive by default); else HTTP/1.0.
    http11: bool = True

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


class Refused(Exception):
    """Raised from a parser callback (``feed_data`` raises httptools' callback error with it as context):
    the request is answered with ``status`` (by the server's :data:`Refusal`) and the connection closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


#: The connection's class (:class:`~.inbound.HttpConnection`), a type parameter so that this module need not
#: import it: inbound.py imports this module, and no circle is drawn, even one of types only.
Connection = TypeVar("Connection")


class Host(Protocol[Connection]):
    """What a connection needs of the server that accepted it (:class:`~.server.Server`): its handler and
    limits, the sweep's clock, and the set of open connections it belongs to."""

    handler: Handler
    refusal: Refusal
    max_body_bytes: int
    limits: Limits
    idle_ticks: int
    head_ticks: int
    body_ticks: int
    connections: set[Connection]
    cap: int
    refused: int
    tick: int


REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


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


def frame_head(status: int, content_type: str, extra: Mapping[str, str] | None, framing: bytes) -> bytes:
    lines = [
        b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b"Unknown")),
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


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)

"""Driving the gateway's HTTP server without sockets: a transport that records what the server writes, and
a reader of the answers. The fuzzing and limit tests feed the protocol object reads of their choosing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson

from modelyard.http.app import refusal
from modelyard.transport.limits import Limits
from modelyard.transport.server import HttpConnection, Request, Response, Server, Streamed

LIMIT = 4096


class Recorder(asyncio.Transport):
    """Stands in for a socket: keeps what is written; ``close`` ends the connection as a socket would."""

    def __init__(self, protocol: HttpConnection) -> None:
        super().__init__()
        self.protocol = protocol
        self.out = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed, "written after close"
        self.out += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        return None

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass
class Answers:
    """The responses in a server's output, framed by httptools as a client would; ``complete`` is False
    when the output ends inside a response, ``error`` when it is not HTTP at all."""

    done: list[Answer] = field(default_factory=list)
    complete: bool = True
    error: str | None = None


def read_answers(out: bytes, closed: bool = False) -> Answers:
    """``closed``: the connection ended after ``out`` (which ends a body that has neither length nor
    chunks, as HTTP/1.0 streams are delimited)."""
    answers = Answers()
    state: dict[str, Any] = {"headers": {}, "body": bytearray(), "in": False}

    class Callbacks:
        def on_message_begin(self) -> None:
            state["in"] = True

        def on_header(self, name: bytes, value: bytes) -> None:
            state["headers"][name.decode("latin-1").lower()] = value.decode("latin-1")

        def on_body(self, body: bytes) -> None:
            state["body"] += body

        def on_message_complete(self) -> None:
            status = parser.get_status_code()
            if status != 100:
                answers.done.append(Answer(status, state["headers"], bytes(state["body"])))
            state.update(headers={}, body=bytearray(), **{"in": False})

    parser = httptools.HttpResponseParser(Callbacks())
    try:
        parser.feed_data(out)
    except httptools.HttpParserError as exc:
        answers.error = str(exc)
    headers = state["headers"]
    if state["in"] and closed and "content-length" not in headers and "transfer-encoding" not in headers:
        answers.done.append(Answer(parser.get_status_code(), headers, bytes(state["body"])))
        state["in"] = False
    answers.complete = not state["in"]
    return answers


def is_openai_error(body: bytes) -> bool:
    error = orjson.loads(body).get("error")
    return isinstance(error, dict) and set(error) == {"message", "type", "code", "param"}


Handler = Callable[[Request], Awaitable[Response | Streamed]]


async def echo(request: Request) -> Response:
    if request.oversized:
        return Response(b'{"error":{"message":"too large","type":"x","code":null,"param":null}}', 413)
    return Response(orjson.dumps({"path": request.path, "body": request.body.decode("latin-1")}))


@dataclass
class Driven:
    connection: HttpConnection
    transport: Recorder
    #: The largest the connection's unfinished request held, in bytes, seen between reads.
    peak_held: int = 0


async def drive(
    reads: Iterable[bytes], handler: Handler = echo, limits: Limits | None = None, settle: int = 20
) -> Driven:
    """Feed ``reads`` to one connection, one ``data_received`` each, letting answers run between them
    (and waiting, as TCP would, while the server has paused reading)."""
    server = Server(handler, refusal, LIMIT, limits)
    connection = server.protocol()
    transport = Recorder(connection)
    connection.connection_made(transport)
    driven = Driven(connection, transport)
    for data in reads:
        for _ in range(200):
            if transport.reading or transport.closed:
                break
            await asyncio.sleep(0)
        if transport.closed:
            break
        connection.data_received(data)
        held = len(connection._url) + sum(map(len, connection._body)) + connection._head_bytes
        driven.peak_held = max(driven.peak_held, held)
        await asyncio.sleep(0)
    for _ in range(settle):
        await asyncio.sleep(0)
    if connection.task is not None:
        await asyncio.wait_for(asyncio.shield(connection.task), 2)
    await asyncio.sleep(0)
    return driven

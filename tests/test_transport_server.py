"""The gateway's HTTP/1.1 server, spoken to in raw bytes over loopback: framing, keep-alive and
pipelining, body limits, ``Expect: 100-continue``, malformed input, streamed answers with flow control,
client disconnects, idle sweeps and a graceful close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import httptools
import orjson
import pytest

from modelyard.http.app import refusal
from modelyard.transport.limits import Limits
from modelyard.transport.server import Request, Response, Server, Streamed

LIMIT = 4096


@dataclass
class Seen:
    requests: list[Request] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


class Frames:
    """A streamed body: ``count`` frames of ``size`` bytes, optionally stalling forever after them."""

    def __init__(self, seen: Seen, count: int, size: int = 16, stall: bool = False) -> None:
        self.seen, self.count, self.size, self.stall = seen, count, size, stall
        self.written = 0
        self.closed = False

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
        try:
            for index in range(self.count):
                await write(b"%d:" % index + b"x" * self.size + b"\n")
                self.written += 1
            if self.stall:
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.seen.cancelled.append("pump")
            raise
        return b"last\n"

    async def close(self) -> None:
        self.closed = True


@contextlib.asynccontextmanager
async def serving(
    handler: Callable[[Request], Awaitable[Response | Streamed]], limits: Limits | None = None
) -> AsyncIterator[tuple[Server, int]]:
    server = Server(handler, refusal, LIMIT, limits)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close(1.0)


def echo(seen: Seen) -> Callable[[Request], Awaitable[Response | Streamed]]:
    async def handle(request: Request) -> Response | Streamed:
        seen.requests.append(request)
        if request.path == "/boom":
            raise RuntimeError("a bug")
        if request.oversized:
            return Response(b'{"too":"large"}', status=413)
        if request.path == "/stream":
            return Streamed(Frames(seen, int(request.query.get("n", "3"))), headers={"X-Request-Id": "s1"})
        payload = {"method": request.method, "path": request.path, "body": request.body.decode()}
        return Response(orjson.dumps(payload), headers={"X-Request-Id": "r1"})

    return handle


class Parsed:
    """Responses read with httptools' response parser, as a client would frame them."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.done: list[tuple[int, dict[str, str], bytes]] = []
        self._headers: dict[str, str] = {}
        self._body = bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode().lower()] = value.decode()

    def on_body(self, body: bytes) -> None:
        self._body += body

    def on_message_complete(self) -> None:
        self.done.append((self.parser.get_status_code(), self._headers, bytes(self._body)))
        self._headers, self._body = {}, bytearray()


async def exchange(port: int, raw: bytes, responses: int = 1, timeout: float = 5.0) -> Parsed:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parsed = Parsed()
    writer.write(raw)
    async with asyncio.timeout(timeout):
        while len(parsed.done) < responses:
            data = await reader.read(65536)
            if not data:
                break
            parsed.parser.feed_data(data)
    writer.close()
    return parsed


async def until_closed(port: int, raw: bytes, timeout: float = 5.0) -> bytes:
    """Everything the server sends in answer to ``raw``, up to its closing the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    async with asyncio.timeout(timeout):
        answer = await reader.read()
    writer.close()
    return answer


def post(path: str, body: bytes, extra: str = "") -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    return head.encode() + body


async def test_keep_alive_and_pipelined_requests_are_answered_in_order() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        raw = post("/a", b"one") + post("/b?x=1", b"two") + b"GET /c HTTP/1.1\r\nHost: x\r\n\r\n"
        parsed = await exchange(port, raw, responses=3)
    assert [orjson.loads(body)["path"] for _, _, body in parsed.done] == ["/a", "/b", "/c"]
    assert [orjson.loads(body)["body"] for _, _, body in parsed.done] == ["one", "two", ""]
    status, headers, _ = parsed.done[0]
    assert status == 200 and headers["x-request-id"] == "r1" and headers["server"] == "modelyard"
    assert headers["date"].endswith("GMT") and "connection" not in headers
    assert seen.requests[1].query_string == "x=1"


async def test_absolute_form_names_the_route_and_percent_encoded_paths_are_routed_as_sent() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        raw = b"GET http://gateway:8080/v1/models?x=1 HTTP/1.1\r\nHost: x\r\n\r\n"
        raw += b"GET /v1/chat%2Fcompletions HTTP/1.1\r\nHost: x\r\n\r\n"
        raw += b"GET /%6detrics HTTP/1.1\r\nHost: x\r\n\r\n"
        await exchange(port, raw, responses=3)
    # Never decoded: a proxy in front that refuses /metrics by its raw path must not be bypassed.
    assert [r.path for r in seen.requests] == ["/v1/models", "/v1/chat%2Fcompletions", "/%6detrics"]


async def test_chunked_request_body_is_joined_and_headers_are_case_insensitive() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        raw = (
            b"POST /j HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nX-Modelyard-Workload: w1\r\n\r\n"
            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
        )
        parsed = await exchange(port, raw)
    assert orjson.loads(parsed.done[0][2])["body"] == "abcdefg"
    assert seen.requests[0].headers.get("x-modelyard-workload") == "w1"
    assert seen.requests[0].headers.get("X-MODELYARD-WORKLOAD") == "w1"


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_body_is_refused_unread_and_the_connection_closes(chunked: bool) -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        body = b"y" * (LIMIT * 2)
        if chunked:
            raw = b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            raw += b"".join(b"400\r\n" + body[i : i + 1024] + b"\r\n" for i in range(0, len(body), 1024))
            raw += b"0\r\n\r\n"
        else:
            raw = post("/big", body)
        answer = await until_closed(port, raw + post("/after", b"never"))
    assert answer.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in answer
    assert answer.count(b"HTTP/1.1") == 1, "nothing after the refused request is answered"
    (request,) = seen.requests
    assert request.oversized and request.body == b""
    assert request.content_length == (None if chunked else LIMIT * 2)


async def test_expect_100_continue_is_answered_before_the_body_is_sent() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
            assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
            writer.write(b"hello")
            head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    assert seen.requests[0].body == b"hello"


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "invalid_http"),
        (b"POST /x HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "invalid_http"),
        (
            b"GET /x HTTP/1.1\r\n"
            + b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 1000) for i in range(80))
            + b"\r\n",
            431,
            "request_head_too_large",
        ),
    ],
    ids=["garbage", "smuggling-shaped", "head-too-large"],
)
async def test_malformed_requests_get_an_openai_shaped_error_and_no_handler_call(
    raw: bytes, status: int, code: str
) -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        parsed = await exchange(port, raw)
    (answer,) = parsed.done
    assert answer[0] == status and answer[1]["connection"] == "close"
    assert orjson.loads(answer[2])["error"]["code"] == code
    assert not seen.requests


async def test_a_handler_bug_is_a_500_in_openai_shape_not_a_trace() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        parsed = await exchange(port, b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = parsed.done[0]
    assert status == 500 and headers["content-type"] == "application/json"
    assert set(orjson.loads(body)["error"]) == {"message", "type", "code", "param"}
    assert b"Traceback" not in body and b"a bug" not in body


async def test_streamed_answer_is_chunked_and_ends_with_the_last_frame() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        parsed = await exchange(port, b"GET /stream?n=3 HTTP/1.1\r\nHost: x\r\n\r\n" + post("/next", b"k"), 2)
    status, headers, body = parsed.done[0]
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "text/event-stream" and headers["x-request-id"] == "s1"
    assert body.split(b"\n")[:-1] == [b"0:" + b"x" * 16, b"1:" + b"x" * 16, b"2:" + b"x" * 16, b"last"]
    assert orjson.loads(parsed.done[1][2])["path"] == "/next", "the connection stays usable"


async def test_a_stream_that_breaks_midway_is_cut_never_ended_cleanly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Breaks:
        async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
            await write(b"data: 1\n\n")
            raise RuntimeError("a bug after the head went out")

        async def close(self) -> None:
            return None

    async def handle(request: Request) -> Streamed:
        return Streamed(Breaks())

    async with serving(handle) as (_, port):
        answer = await until_closed(port, b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 ") and b"data: 1" in answer
    assert not answer.endswith(b"0\r\n\r\n"), "a chunked body without its last chunk: the client sees a cut"
    assert "a bug after the head went out" in caplog.text


async def test_http10_stream_is_delimited_by_closing_the_connection() -> None:
    seen = Seen()
    async with serving(echo(seen)) as (_, port):
        answer = await until_closed(port, b"GET /stream?n=2 HTTP/1.0\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding" not in head and b"Connection: close" in head
    assert body == b"0:" + b"x" * 16 + b"\n1:" + b"x" * 16 + b"\nlast\n"


async def test_a_client_that_hangs_up_cancels_the_stream() -> None:
    seen = Seen()
    frames = Frames(seen, 1, stall=True)

    async def handle(request: Request) -> Streamed:
        return Streamed(frames)

    async with serving(handle) as (server, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            await reader.readuntil(b"0:")
            writer.close()
            while not seen.cancelled:
                await asyncio.sleep(0.01)
        assert not server.connections
    assert seen.cancelled == ["pump"] and frames.written == 1


async def test_a_slow_reader_holds_the_stream_back_instead_of_filling_memory() -> None:
    seen = Seen()
    frames = Frames(seen, 2000, size=64 * 1024)  # 128 MiB if nothing pushed back

    async def handle(request: Request) -> Streamed:
        return Streamed(frames)

    async with serving(handle) as (_, port):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 16)
        writer.write(b"GET /s HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.3)  # not reading: the socket buffers fill, the server must wait
        held_back_at = frames.written
        parsed = Parsed()
        async with asyncio.timeout(30):
            while not parsed.done:
                parsed.parser.feed_data(await reader.read(1 << 20))
        writer.close()
    assert held_back_at < 200, f"{held_back_at} frames of 64 KiB written to a client that read nothing"
    assert frames.written == 2000 and parsed.done[0][2].endswith(b"last\n")


async def test_idle_connections_are_swept_and_slow_bodies_get_408() -> None:
    seen = Seen()
    limits = Limits(idle_timeout_s=0.2, head_timeout_s=0.2, body_timeout_s=0.2)
    async with serving(echo(seen), limits) as (_, port):
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
        slow_writer.write(b"POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        async with asyncio.timeout(5):
            assert await idle_reader.read() == b""
            slow_answer = await slow_reader.read()
        idle_writer.close()
        slow_writer.close()
    assert slow_answer.startswith(b"HTTP/1.1 408 ")
    assert not seen.requests


async def test_close_lets_running_requests_finish_then_cuts_the_rest() -> None:
    seen = Seen()
    release = asyncio.Event()
    stalled = Frames(seen, 1, stall=True)

    async def handle(request: Request) -> Response | Streamed:
        if request.path == "/stall":
            return Streamed(stalled)
        await release.wait()
        return Response(b"{}")

    server = Server(handle, refusal, LIMIT)
    port = await server.start("127.0.0.1", 0)
    quick = asyncio.create_task(exchange(port, b"GET /quick HTTP/1.1\r\nHost: x\r\n\r\n"))
    stuck = asyncio.create_task(exchange(port, b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n"))
    await asyncio.sleep(0.1)
    closing = asyncio.create_task(server.close(0.5))
    await asyncio.sleep(0.1)
    release.set()
    parsed = await quick
    await closing
    await stuck
    assert parsed.done[0][0] == 200 and parsed.done[0][1]["connection"] == "close"
    assert seen.cancelled == ["pump"], "the request still running after the grace period was cancelled"
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", port)

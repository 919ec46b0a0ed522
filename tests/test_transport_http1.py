"""The load generator's own HTTP/1.1 client and stream reader, against real aiohttp servers on loopback.

The stream shapes are those OpenAI-compatible servers send (``chat.completion.chunk`` events, a usage
chunk with empty ``choices``, ``data: [DONE]``), framed every way HTTP/1.x allows: chunked in pieces that
split events anywhere, one Content-Length body (nginx's ``return``), and (HTTP/1.0, from a bare asyncio
server, as aiohttp always frames its answers) until the connection closes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import orjson
import pytest
from aiohttp import web

from modelyard.benchmark.client import Endpoint, RequestResult, stream_once
from modelyard.transport.http1 import Pool, request_head
from tests.fakes.common import serve_app

MODEL = "fake/model"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def event(delta: dict[str, object], *, usage: dict[str, int] | None = None, spaced: bool = False) -> bytes:
    chunk = {"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
             "choices": [{"index": 0, "delta": delta, "finish_reason": None}] if delta else []}  # fmt: skip
    if usage is not None:
        chunk["usage"] = usage
    data = orjson.dumps(chunk).decode()
    if spaced:  # Python's json.dumps default: ", " and ": " separators
        data = data.replace('":', '": ').replace(',"', ', "')
    return f"data: {data}\n\n".encode()


def stream(tokens: int, *, spaced: bool = False, usage_every_chunk: bool = False) -> list[bytes]:
    """Role chunk, ``tokens`` content chunks, usage chunk, [DONE]: one element per event."""
    usage = {"prompt_tokens": 12, "completion_tokens": tokens, "total_tokens": 12 + tokens}
    parts = [event({"role": "assistant", "content": ""}, spaced=spaced)]
    for i in range(tokens):
        running = {"prompt_tokens": 12, "completion_tokens": i + 1} if usage_every_chunk else None
        parts.append(event({"content": f' say "hi": {i}\n'}, usage=running, spaced=spaced))
    parts.append(event({}, usage=usage, spaced=spaced))
    return [*parts, b"data: [DONE]\n\n"]


async def chunked_in_odd_pieces(request: web.Request) -> web.StreamResponse:
    """Pieces that split events mid-line and mid-CRLF, with a comment and an ``event:`` line mixed in."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
    await response.prepare(request)
    body = b": keep-alive\r\n\r\n" + b"".join(stream(5)).replace(b"\n", b"\r\n")
    body = body.replace(b"data: [DONE]", b"event: end\r\ndata: [DONE]")
    for start in range(0, len(body), 37):
        await response.write(body[start : start + 37])
        await asyncio.sleep(0.003)
    return response


async def one_body(request: web.Request) -> web.Response:
    """The whole stream as one Content-Length body; the path's first part says how it is written."""
    shape = request.path.split("/")[1]
    spaced, every = shape == "spaced", shape == "every"
    return web.Response(body=b"".join(stream(6, spaced=spaced, usage_every_chunk=every)),
                        content_type="text/event-stream")  # fmt: skip


async def token_by_token(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for part in stream(4):
        await response.write(part)
        await asyncio.sleep(0.02)
    return response


@asynccontextmanager
async def raw_server(answer: bytes, *, close: bool = True) -> AsyncIterator[tuple[str, list[object]]]:
    """A bare asyncio server answering every request with ``answer`` as given: framings aiohttp never
    sends (HTTP/1.0 with no length, 1xx heads, bytes past the body, not HTTP at all). With ``close`` it
    closes each connection after one answer; it yields its URL and the peer of every connection."""
    peers: list[object] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peers.append(writer.get_extra_info("peername"))
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                writer.write(answer)
                await writer.drain()
                if close:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the client closed the connection
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", peers


def sse_head(status: str = "200 OK", version: str = "1.1", length: int | None = None) -> bytes:
    framing = f"Content-Length: {length}\r\n" if length is not None else ""
    return f"HTTP/{version} {status}\r\nContent-Type: text/event-stream\r\n{framing}\r\n".encode()


async def cut(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(stream(3)[1])
    assert request.transport is not None
    request.transport.abort()
    return response


async def stalls(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(stream(3)[1])
    await asyncio.sleep(1)  # past the client's timeout; short, as the server waits for it at shutdown
    return response


async def in_stream_error(request: web.Request) -> web.Response:
    error = b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'
    return web.Response(body=stream(2)[1] + error, content_type="text/event-stream")


async def rate_limited(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "slow down", "type": "rate_limit"}}, status=429)


async def closes_after_answer(request: web.Request) -> web.Response:
    """Answers with keep-alive, then drops the idle connection soon after, as servers' idle timeouts do."""
    assert request.transport is not None
    asyncio.get_running_loop().call_later(0.02, request.transport.close)
    return await one_body(request)


def app(peers: set[object]) -> web.Application:
    application = web.Application()

    @web.middleware
    async def record_peer(request: web.Request, handler: Handler) -> web.StreamResponse:
        assert request.transport is not None
        peers.add(request.transport.get_extra_info("peername"))
        return await handler(request)

    application.middlewares.append(record_peer)
    handlers: dict[str, Handler] = {
        "odd": chunked_in_odd_pieces, "one": one_body, "spaced": one_body, "every": one_body,
        "slow": token_by_token, "cut": cut, "stall": stalls, "error": in_stream_error, "429": rate_limited,
        "idle": closes_after_answer,
    }  # fmt: skip
    for name, handler in handlers.items():
        application.router.add_post(f"/{name}/v1/chat/completions", handler)
    return application


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, set[object]]]:
    peers: set[object] = set()
    async with serve_app(app(peers)) as url:
        yield url, peers


async def run(url: str, path: str, timeout_s: float = 5.0, times: int = 1) -> list[RequestResult]:
    endpoint = Endpoint(f"{url}/{path}/v1", MODEL)
    async with Pool(endpoint.base_url, request_timeout_s=timeout_s) as pool:
        results = []
        for _ in range(times):
            results.append(await stream_once(pool, endpoint, endpoint.body("hello", 8)))
            await asyncio.sleep(0.05 if path == "idle" else 0)
        return results


async def test_chunked_stream_split_anywhere_with_crlf_comments_and_fields(
    server: tuple[str, set[object]],
) -> None:
    (result,) = await run(server[0], "odd")
    assert result.ok, result.detail
    assert (result.input_tokens, result.output_tokens) == (12, 5)
    assert result.first_token is not None and len(result.gaps) == 4  # 5 content chunks: 4 gaps


@pytest.mark.parametrize("shape", ["one", "spaced", "every"])
async def test_one_body_compact_spaced_or_with_usage_in_every_chunk(
    server: tuple[str, set[object]], shape: str
) -> None:
    # Compact JSON takes the bulk path, the others the general one: the figures must not differ.
    (result,) = await run(server[0], shape)
    assert result.ok, result.detail
    assert (result.input_tokens, result.output_tokens) == (12, 6)
    assert result.first_token is not None and list(result.gaps) == [0] * 5  # all in one read


async def test_timings_follow_the_tokens_as_they_arrive(server: tuple[str, set[object]]) -> None:
    (result,) = await run(server[0], "slow")
    assert result.ok and result.output_tokens == 4
    assert result.ttft is not None and result.ttft >= 0.015  # the role chunk came first, then 20 ms
    assert len(result.gaps) == 3 and min(result.gaps) >= 15_000_000  # nanoseconds
    assert result.e2e >= result.ttft + 3 * 0.015


async def test_body_ended_by_connection_close() -> None:
    async with raw_server(sse_head(version="1.0") + b"".join(stream(3))) as (url, _):
        (result,) = await run(url, "any")
    assert result.ok, result.detail
    assert result.output_tokens == 3 and len(result.gaps) == 2


async def test_informational_responses_before_the_answer_are_skipped() -> None:
    body = b"".join(stream(3))
    early = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 100 Continue\r\n\r\n"
    async with raw_server(early + sse_head(length=len(body)) + body, close=False) as (url, peers):
        results = await run(url, "any", times=2)
    assert all(r.ok and r.output_tokens == 3 for r in results), [r.detail for r in results]
    assert len(peers) == 1  # and the connection stays usable


async def test_the_chunks_of_one_read_reach_the_sink_in_one_call() -> None:
    # One HTTP chunk per event, as uvicorn sends them, with a chunk extension and a trailer.
    events = stream(3)
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(e), e) for e in events) + b"0\r\nTrailer-Field: x\r\n\r\n"
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
    pieces: list[tuple[bytes, int]] = []
    async with raw_server(head + chunks) as (url, _), Pool(url) as pool:
        response = await pool.request(
            request_head("POST", f"{url}/x", {}), b"{}", lambda piece, now: pieces.append((piece, now))
        )
    assert response.streamed and b"".join(piece for piece, _ in pieces) == b"".join(events)
    assert len({now for _, now in pieces}) == len(pieces)  # one call per read, however many chunks it held
    assert response.end_ns == pieces[-1][1]


@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        (b"SSH-2.0-OpenSSH_9.2\r\n", "not HTTP/1.x"),
        (sse_head(version="2.0", length=0), "not HTTP/1.x: HTTP/2.0"),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", "101"),
        (sse_head("200 OK\r\nContent-Length: 1\r\nContent-Length: 2") + b"ab", "not HTTP/1.x"),
        (sse_head(length=12) + b"data: {oops\n\n", "not a chat.completion.chunk"),  # the sink's own error
    ],
    ids=["not-http", "http2", "upgrade", "two-lengths", "sink-rejects"],
)
async def test_answers_that_are_not_an_http1_event_stream(answer: bytes, detail: str) -> None:
    async with raw_server(answer) as (url, _):
        (result,) = await run(url, "any")
    assert result.error == "bad_stream" and detail in result.detail, result.detail


@pytest.mark.parametrize(
    ("extra", "connections"),
    [(b"", 1), (b"HTTP/1.1 200 OK\r\n", 2), (b"junk", 2)],
    ids=["none", "head", "junk"],
)
async def test_bytes_past_the_response_end_it_but_retire_the_connection(
    extra: bytes, connections: int
) -> None:
    body = b"".join(stream(2))
    async with raw_server(sse_head(length=len(body)) + body + extra, close=False) as (url, peers):
        results = await run(url, "any", times=2)
    assert all(r.ok and r.output_tokens == 2 for r in results), [r.detail for r in results]
    assert len(peers) == connections


@pytest.mark.parametrize(
    ("path", "error", "detail"),
    [
        ("cut", "stream_cut", "closed the connection"),
        ("stall", "stream_cut", "did not end within 0.3 s"),
        ("error", "stream_error", "overloaded"),
        ("429", "http_429", "slow down"),
    ],
)
async def test_failures_are_recorded_not_raised(
    server: tuple[str, set[object]], path: str, error: str, detail: str
) -> None:
    (result,) = await run(server[0], path, timeout_s=0.3)
    assert result.error == error and detail in result.detail


async def test_connections_are_kept_alive_and_renewed_when_the_server_drops_them(
    server: tuple[str, set[object]],
) -> None:
    url, peers = server
    results = await run(url, "one", times=5)
    assert all(r.ok for r in results) and len(peers) == 1
    peers.clear()
    results = await run(url, "idle", times=3)
    assert all(r.ok for r in results), [r.detail for r in results]
    assert len(peers) == 3

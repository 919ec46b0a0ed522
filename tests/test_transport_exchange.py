"""The transport as the gateway uses it (``Pool.open`` → ``Exchange``), against real servers on loopback:
pieces as they arrive, error bodies and headers, the gap timeout, keep-alive reuse, and — what a gateway
owes its upstreams — closing the connection when the caller goes away."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from modelyard.transport.http1 import ConnectError, Pool, request_head
from tests.fakes.common import free_port, serve_app
from tests.test_transport_http1 import app, stream


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, set[object]]]:
    peers: set[object] = set()
    application = app(peers)

    async def limited(request: web.Request) -> web.Response:
        return web.json_response(
            {"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "7"}
        )

    application.router.add_post("/limited", limited)
    async with serve_app(application) as url:
        yield url, peers


def head(url: str) -> bytes:
    return request_head("POST", url, {"Content-Type": "application/json"})


async def test_a_streamed_body_arrives_piece_by_piece_before_its_end(server: tuple[str, set[object]]) -> None:
    url, _ = server
    async with Pool(url) as pool:
        started = time.perf_counter()
        exchange = await pool.open(head(f"{url}/slow/v1/chat/completions"), b"{}")
        arrivals, pieces = [], []
        async for piece in exchange:
            arrivals.append(time.perf_counter() - started)
            pieces.append(piece)
    assert exchange.response.status == 200
    assert exchange.response.headers["content-type"].startswith("text/event-stream")
    assert b"".join(pieces) == b"".join(stream(4))
    # token_by_token sleeps 20 ms between events: the first piece is not held back until the end.
    assert len(pieces) >= 4 and arrivals[0] < arrivals[-1] - 0.05


async def test_an_error_answer_keeps_its_body_and_headers(server: tuple[str, set[object]]) -> None:
    url, _ = server
    async with Pool(url) as pool:
        exchange = await pool.open(head(f"{url}/limited"), b"{}")
        body = await exchange.read()
        exchange.close()
    assert exchange.response.status == 429 and not exchange.response.streamed
    assert exchange.response.headers["retry-after"] == "7"
    assert b"slow down" in body


async def test_a_stalled_stream_times_out_on_the_gap_not_the_total(server: tuple[str, set[object]]) -> None:
    url, _ = server
    async with Pool(url, request_timeout_s=30) as pool:
        exchange = await pool.open(head(f"{url}/stall/v1/chat/completions"), b"{}", read_timeout_s=0.2)
        first = await exchange.next_piece()
        started = time.perf_counter()
        with pytest.raises(TimeoutError, match="no byte"):
            await exchange.next_piece()
        exchange.close()
    assert first and time.perf_counter() - started < 0.9


async def test_keep_alive_connections_are_reused_and_renewed(server: tuple[str, set[object]]) -> None:
    url, peers = server
    async with Pool(url) as pool:
        for _ in range(3):
            exchange = await pool.open(head(f"{url}/one/v1/chat/completions"), b"{}")
            assert await exchange.read() == b"".join(stream(6))
            exchange.close()
        assert len(peers) == 1
        for _ in range(2):  # the server drops each idle connection: the next request opens another
            exchange = await pool.open(head(f"{url}/idle/v1/chat/completions"), b"{}")
            assert await exchange.read()
            exchange.close()
            await asyncio.sleep(0.05)
    assert len(peers) == 2


async def test_a_connection_dropped_as_it_is_reused_is_replaced_unseen() -> None:
    """The race keep-alive clients must handle: the server closes an idle connection just as the next
    request goes out on it. Nothing of an answer arrived, so the request is sent again on a new one."""
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    connections = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        try:
            head_bytes = await reader.readuntil(b"\r\n\r\n")
            await reader.readexactly(int(head_bytes.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
            writer.write(answer)
            await reader.readuntil(b"\r\n\r\n")  # the next request on this connection: dropped unanswered
        except asyncio.IncompleteReadError:
            pass  # the client closed its idle connection at the end
        finally:
            writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server, Pool(url) as pool:
        for _ in range(2):
            exchange = await pool.open(head(f"{url}/v1/chat/completions"), b"{}")
            assert await exchange.read() == b"{}"
            exchange.close()
    assert connections == 2


@pytest.mark.parametrize("when", ["before the head", "mid-body"])
async def test_a_caller_that_goes_away_closes_the_upstream_connection(when: str) -> None:
    """The upstream sees its connection close: for an LLM, that is what stops generation (and billing)."""
    closed = asyncio.Event()

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head_bytes = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(head_bytes.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
        if when == "mid-body":
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            writer.write(b"6\r\ndata: \r\n")
        if await reader.read(1) == b"":  # nothing more comes from the client: it closed
            closed.set()
        writer.close()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server, Pool(url) as pool:

        async def call() -> None:
            exchange = await pool.open(head(f"{url}/v1/chat/completions"), b"{}")
            try:
                async for _ in exchange:
                    pass
            finally:
                exchange.close()

        task = asyncio.create_task(call())
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 2)


async def test_no_listener_is_a_connect_error() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    async with Pool(url) as pool:
        with pytest.raises(ConnectError):
            await pool.open(head(url + "/x"), b"{}")
        # The failed attempt gave its slot back: the pool is still usable (and still refused).
        with pytest.raises(ConnectError):
            await pool.open(head(url + "/x"), b"{}")

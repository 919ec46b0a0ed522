"""A client that opens a stream and never reads it (issue 13, row 4): the upstream read is held back
rather than the body piling up in the gateway, the write timeout closes the connection, and the ledger
still gets the request's row (cut short by the client)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from modelyard.catalog.prices import load_catalog
from modelyard.gateway.pipeline import Gateway
from modelyard.http.app import Api, refusal
from modelyard.ledger.writer import Ledger
from modelyard.providers.registry import build_adapter
from modelyard.transport.http1 import HIGH_WATER, Pool, request_head
from modelyard.transport.limits import Limits
from modelyard.transport.server import Server
from tests.conftest import FAKE_KEY, GatewayUnderTest, gateway_config

#: What the upstream would send if nothing held it back: far more than every socket buffer between.
TOTAL = 24 << 20
#: One uvloop read at most; what may sit unread beside the high-water mark.
READ = 256 * 1024


@dataclass
class Upstream:
    port: int = 0
    written: int = 0
    finished: bool = False


def _event(content: str) -> bytes:
    chunk = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": None}],
    }
    data = b"data: " + orjson.dumps(chunk) + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


@contextlib.asynccontextmanager
async def firehose() -> AsyncIterator[Upstream]:
    """An OpenAI-shaped upstream that streams ``TOTAL`` bytes of events as fast as it may write them."""
    state = Upstream()
    event = _event("x" * 4000)

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        await reader.readexactly(length)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while state.written < TOTAL:
                writer.write(event)
                state.written += len(event)
                await writer.drain()
            writer.write(b"0\r\n\r\n")
            await writer.drain()
            state.finished = True
        except ConnectionError:
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


async def until_still(upstream: Upstream, seconds: float = 10.0) -> None:
    """Wait until the upstream has stopped writing (held back, or done)."""
    last = -1
    async with asyncio.timeout(seconds):
        while upstream.written != last:
            last = upstream.written
            await asyncio.sleep(0.2)


async def test_an_unread_upstream_body_stops_the_upstream_instead_of_piling_up() -> None:
    async with firehose() as upstream:
        url = f"http://127.0.0.1:{upstream.port}/v1/chat/completions"
        pool = Pool(url)
        exchange = await pool.open(request_head("POST", url, {}), b"{}")
        await until_still(upstream)
        held = exchange._held
        assert not upstream.finished, "the upstream was never held back"
        assert held <= HIGH_WATER + READ, f"{held} bytes of body held for a reader that reads nothing"
        received = len(await exchange.read())  # reading again lets the upstream finish
        pool.close()
    assert upstream.finished and received > 0.99 * TOTAL  # all of it, less the chunk framing


async def test_a_client_that_never_reads_its_stream_is_closed_and_its_row_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_OPENAI_KEY", FAKE_KEY)
    async with firehose() as upstream:
        config = gateway_config(tmp_path, {"openai": f"http://127.0.0.1:{upstream.port}/v1"})
        ledger = Ledger(config.ledger)
        await ledger.start()
        adapters = {name: build_adapter(name, provider) for name, provider in config.providers.items()}
        gateway = Gateway(config, adapters, load_catalog(config.catalog.price_files), ledger)
        server = Server(
            Api(gateway).handle, refusal, config.server.max_body_bytes, Limits(write_timeout_s=0.5)
        )
        port = await server.start("127.0.0.1", 0)
        under_test = GatewayUnderTest(f"http://127.0.0.1:{port}", config, tmp_path / "ledger.db", {})
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            body = orjson.dumps(
                {"model": "openai-chat", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            )
            writer.write(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            # ... and never read again.
            async with asyncio.timeout(10):
                while server.connections:
                    await asyncio.sleep(0.05)
            rows = await under_test.wait_rows(1)
            writer.close()
        finally:
            await server.close(1.0)
            await gateway.close()
            await ledger.close()
    assert head.startswith(b"HTTP/1.1 200 ")
    request_id = next(
        line.split(b": ")[1].decode()
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"x-request-id")
    )
    (row,) = [r for r in rows if r["request_id"] == request_id]
    assert row["status"] == 499 and row["error_kind"] == "client_cancelled"
    assert not upstream.finished, "the upstream call was closed, not read to its end"

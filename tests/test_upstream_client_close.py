"""``UpstreamClient.post_json`` and the upstream connection: an answer read to its end gives the
connection back for the next call (keep-alive), a caller that goes away mid-answer closes it (what stops
an LLM generating, and billing), and a body cut short is an upstream error, its connection not reused."""

from __future__ import annotations

import asyncio

import pytest

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError
from modelyard.providers.http import UpstreamClient

ANSWER = b'{"choices":[]}'


async def _head(reader: asyncio.StreamReader) -> None:
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))


def _client(url: str) -> UpstreamClient:
    return UpstreamClient("up", ProviderConfig(kind="openai_compatible", base_url=url))


async def test_an_answer_read_to_its_end_gives_the_connection_back() -> None:
    connections = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while True:
            try:
                await _head(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    client = _client(url)
    async with server:
        for _ in range(3):
            assert await client.post_json(url, b"{}", {"Content-Type": "application/json"}) == (
                ANSWER,
                {"choices": []},
            )
        await client.close()
        await asyncio.sleep(0.05)  # the upstream's handler sees the close and ends
    assert connections == 1


@pytest.mark.parametrize("ending", ["cancelled", "cut"])
async def test_an_answer_not_read_to_its_end_closes_the_connection(ending: str) -> None:
    closed = asyncio.Event()
    connections = 0

    async def upstream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await _head(reader)
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"choi')
        await writer.drain()
        if ending != "cut" and await reader.read(1) == b"":  # nothing more from the gateway: it closed
            closed.set()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(upstream, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat/completions"
    client = _client(url)
    async with server:
        call = asyncio.create_task(client.post_json(url, b"{}", {}))
        if ending == "cancelled":
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            await asyncio.wait_for(closed.wait(), 2)
        else:
            with pytest.raises(UpstreamError):
                await call
        pool = next(iter(client._pools.values()))
        assert not pool._idle, "a connection whose answer did not end is not given back"
        await client.close()
        await asyncio.sleep(0.05)

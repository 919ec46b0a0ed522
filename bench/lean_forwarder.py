"""The minimal forwarder again, on modelyard's own transport: what modelyard's logic costs, stack for stack.

The same work as ``minimal_forwarder.py`` — parse the request, pick the upstream by model, forward it over a
pooled keep-alive client, parse the usage out of the answer, return the bytes — but served by
``modelyard.transport.server`` and forwarded by ``modelyard.transport.http1`` instead of aiohttp on both
sides. modelyard against this one is the price of its validation, routing, policy, metering and ledger
alone. Usage: ``lean_forwarder.py PORT MODEL=URL [MODEL=URL ...]``.
"""

import asyncio
import sys
from collections.abc import Awaitable, Callable

import orjson
import uvloop

from modelyard.transport.http1 import Exchange, Pool, request_head
from modelyard.transport.server import Request, Response, Server, Streamed

UPSTREAMS = {name: (Pool(url), request_head("POST", url, {"Content-Type": "application/json"}))
             for name, url in (arg.split("=", 1) for arg in sys.argv[2:])}  # fmt: skip


class Relay:
    """Every upstream read written on as it comes; the usage parsed from the tail."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange, self.usage = exchange, None

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
        tail = b""
        while (piece := await self.exchange.next_piece()) is not None:
            await write(piece)
            tail = (tail + piece)[-4096:]  # the usage chunk is the last before [DONE]
        for event in reversed(tail.split(b"\n\n")):
            if event.startswith(b"data: {") and b'"usage":{' in event:
                self.usage = orjson.loads(event[6:])["usage"]  # what a meter would record
                break
        return b""

    async def close(self) -> None:
        self.exchange.close()


async def chat(request: Request) -> Response | Streamed:
    body = orjson.loads(request.body)
    pool, head = UPSTREAMS[body["model"]]
    exchange = await pool.open(head, orjson.dumps(body))
    if not body.get("stream"):
        raw = await exchange.read()
        orjson.loads(raw).get("usage")  # what a meter would record
        return Response(raw, status=exchange.response.status)
    return Streamed(Relay(exchange))


def refusal(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": {"message": message}}), status=status)


async def main(port: int) -> None:
    await Server(chat, refusal, 1 << 22).start("127.0.0.1", port)
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))

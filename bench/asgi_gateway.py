"""modelyard's full gateway behind ASGI (uvicorn) and RSGI (granian), for ``bench/server_choice.py`` only.

A thin adapter: the same assembly as ``modelyard/app.py`` (catalog, ledger, adapters, ``Gateway``,
``Api``), each request turned into the transport's :class:`Request` and the answer sent back through the
server's interface. Client disconnects and graceful close are left to the server (a benchmark needs
neither). The config path comes from ``MODELYARD_CONFIG``.

    uvicorn asgi_gateway:asgi_app --loop uvloop --http httptools
    granian --interface rsgi asgi_gateway:rsgi_app --loop uvloop
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import Any

from multidict import CIMultiDict

from modelyard.catalog.prices import load_catalog
from modelyard.config.loader import load_config
from modelyard.gateway.pipeline import Gateway
from modelyard.http.app import Api
from modelyard.ledger.writer import Ledger
from modelyard.providers.registry import build_adapter
from modelyard.transport.server import Request, Response, Streamed

_api: Api | None = None
_lock: asyncio.Lock | None = None


async def api() -> Api:
    """The gateway, assembled on first use (granian's RSGI has no async start-up hook)."""
    global _api, _lock
    if _api is not None:
        return _api
    if _lock is None:
        _lock = asyncio.Lock()
    async with _lock:
        if _api is None:
            config = load_config(os.environ["MODELYARD_CONFIG"])
            ledger = Ledger(config.ledger)
            await ledger.start()
            adapters = {name: build_adapter(name, p) for name, p in config.providers.items()}
            _api = Api(Gateway(config, adapters, load_catalog(config.catalog.price_files), ledger))
    return _api


def _head(answer: Response | Streamed) -> list[tuple[str, str]]:
    headers = [("content-type", answer.content_type)]
    headers += list((answer.headers or {}).items())
    return headers


async def asgi_app(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await api()
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    headers = CIMultiDict((k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"])
    request = Request(
        scope["method"], scope["path"], scope["query_string"].decode("latin-1"), headers, b"".join(chunks)
    )
    answer = await (await api()).handle(request)
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in _head(answer)]
    status = answer.status if isinstance(answer, Response) else 200
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    if isinstance(answer, Response):
        await send({"type": "http.response.body", "body": answer.body})
        return

    async def write(data: bytes) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": True})

    last = await answer.body.pump(write)
    await send({"type": "http.response.body", "body": last})


class RsgiApp:
    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        body = await proto()
        headers = CIMultiDict(scope.headers.items())
        request = Request(scope.method, scope.path, scope.query_string, headers, body)
        answer = await (await api()).handle(request)
        if isinstance(answer, Response):
            proto.response_bytes(answer.status, _head(answer), answer.body)
            return
        transport = proto.response_stream(200, _head(answer))
        last = await answer.body.pump(transport.send_bytes)
        await transport.send_bytes(last)


rsgi_app = RsgiApp()

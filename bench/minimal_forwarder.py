"""The ceiling: the least a Python gateway can do per request, on the same stack as modelyard.

Parse the request, pick the upstream by model, forward it with one pooled aiohttp client, parse the usage
out of the answer, return the bytes. No validation, no ledger, no error mapping: whatever modelyard adds
on top of this is its overhead. Usage: ``minimal_forwarder.py PORT MODEL=URL [MODEL=URL ...]``.
"""

import sys

import aiohttp
import orjson
import uvloop
from aiohttp import web

UPSTREAMS = dict(arg.split("=", 1) for arg in sys.argv[2:])
SESSION = web.AppKey("session", aiohttp.ClientSession)
HEADERS = {"Content-Type": "application/json"}


async def chat(request: web.Request) -> web.StreamResponse:
    body = orjson.loads(await request.read())
    session = request.app[SESSION]
    async with session.post(UPSTREAMS[body["model"]], data=orjson.dumps(body), headers=HEADERS) as upstream:
        if not body.get("stream"):
            raw = await upstream.read()
            request["usage"] = orjson.loads(raw).get("usage")  # what a meter would record
            return web.Response(body=raw, status=upstream.status, content_type="application/json")
        response = web.StreamResponse(status=upstream.status, headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        tail = b""
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
            tail = (tail + chunk)[-4096:]  # the usage chunk is the last before [DONE]
        for event in reversed(tail.split(b"\n\n")):
            if event.startswith(b"data: {") and b'"usage":{' in event:
                request["usage"] = orjson.loads(event[6:])["usage"]
                break
        await response.write_eof()
        return response


async def make_app() -> web.Application:
    app = web.Application()
    app[SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))
    app.router.add_post("/v1/chat/completions", chat)
    return app


if __name__ == "__main__":
    port = int(sys.argv[1])
    # uvloop: the same event loop modelyard serves on.
    web.run_app(
        make_app(), host="127.0.0.1", port=port, access_log=None, print=None, loop=uvloop.new_event_loop()
    )

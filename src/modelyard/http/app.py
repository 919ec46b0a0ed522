"""The thin HTTP layer: parse, call the gateway, serialise. OpenAI-shaped errors for everything.

aiohttp serves it: measured here, uvicorn and granian were within noise of it, and using one library for
server and upstream client keeps one event-loop stack. Handlers catch errors themselves rather than
through a middleware, which would add a coroutine hop to every request.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from collections.abc import Callable
from time import perf_counter, time
from typing import Any

import orjson
from aiohttp import web

from modelyard.config.schema import ModelKind
from modelyard.errors import (
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    ModelyardError,
    NotFound,
    PayloadTooLarge,
)
from modelyard.gateway.metering import RequestContext
from modelyard.gateway.pipeline import Admitted, Gateway
from modelyard.gateway.streaming import ClientStream
from modelyard.http.openapi import openapi_document
from modelyard.http.validation import check_chat_request, check_embedding_request

GATEWAY_KEY = web.AppKey("gateway", Gateway)
log = logging.getLogger("modelyard.http")
JSON_TYPE = "application/json"


def error_response(error: ModelyardError, request_id: str | None = None) -> web.Response:
    headers = {"X-Request-Id": request_id} if request_id else None
    return web.Response(
        body=orjson.dumps(error.to_body()), status=error.status, content_type=JSON_TYPE, headers=headers
    )


async def read_json(request: web.Request) -> Any:
    limit = request.app[GATEWAY_KEY].config.server.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is {request.content_length} bytes; the limit is {limit}")
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes") from None
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    return body


#: Request ids: a random per-process prefix and a counter — unique without a syscall per request.
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def _internal_error(ctx: RequestContext) -> web.Response:
    """A bug must not reach the client as a stack trace: log it, answer in OpenAI's shape."""
    log.exception("internal error handling request %s", ctx.request_id)
    message = f"internal error (request {ctx.request_id}); the gateway's log has the details"
    return error_response(InternalError(message), ctx.request_id)


def _context(endpoint: str) -> RequestContext:
    request_id = f"{_ID_PREFIX}{next(_ID_COUNTER):012x}"
    return RequestContext(request_id=request_id, ts=time(), t0=perf_counter(), endpoint=endpoint)


async def _admit(
    request: web.Request, ctx: RequestContext, check: Callable[[Any], None], kind: ModelKind
) -> tuple[dict[str, Any], Admitted]:
    """Parse, validate and resolve; refusals are recorded in the ledger and re-raised."""
    gateway = request.app[GATEWAY_KEY]
    body: Any = None
    try:
        caller = gateway.keys.authenticate(request.headers.get("Authorization"))
        if caller is not None:
            ctx.tenant, ctx.api_key_id = caller.tenant, caller.key_id
        body = await read_json(request)
        check(body)
        admitted = gateway.resolve(body, request.headers, kind, caller)
    except ModelyardError as error:
        gateway.record_refusal(ctx, body, error, None)
        raise
    return body, admitted


async def chat_completions(request: web.Request) -> web.StreamResponse:
    ctx = _context("chat")
    gateway = request.app[GATEWAY_KEY]
    try:
        body, admitted = await _admit(request, ctx, check_chat_request, "chat")
        if body.get("stream"):
            return await _stream(request, ctx, await gateway.stream_chat(ctx, admitted, body))
        result = await gateway.chat(ctx, admitted, body)
    except ModelyardError as error:
        return error_response(error, ctx.request_id)
    except Exception:
        return _internal_error(ctx)
    payload = result.raw if result.raw is not None else orjson.dumps(result.body)
    return web.Response(body=payload, content_type=JSON_TYPE, headers={"X-Request-Id": ctx.request_id})


async def _stream(request: web.Request, ctx: RequestContext, stream: ClientStream) -> web.StreamResponse:
    # The stream was opened up to its first token before the headers go: an upstream that fails at once
    # (429, 5xx, refused connection) gets a real HTTP status instead of a 200 followed by an error event.
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Request-Id": ctx.request_id,
        }
    )
    try:
        await response.prepare(request)
    except BaseException:
        await stream.close()  # records the abandoned stream and stops the upstream call
        raise
    # The last frame ([DONE], or the error event of a cut stream) goes with the end of the body.
    last = await stream.pump(response.write)
    await response.write_eof(last)
    return response


async def embeddings(request: web.Request) -> web.Response:
    ctx = _context("embeddings")
    gateway = request.app[GATEWAY_KEY]
    try:
        body, admitted = await _admit(request, ctx, check_embedding_request, "embedding")
        result = await gateway.embeddings(ctx, admitted, body)
    except ModelyardError as error:
        return error_response(error, ctx.request_id)
    except Exception:
        return _internal_error(ctx)
    payload = result.raw if result.raw is not None else orjson.dumps(result.body)
    return web.Response(body=payload, content_type=JSON_TYPE, headers={"X-Request-Id": ctx.request_id})


async def list_models(request: web.Request) -> web.Response:
    gateway = request.app[GATEWAY_KEY]
    data = [
        {
            "id": name,
            "object": "model",
            "created": 0,
            "owned_by": route.targets[0].provider if route.strategy == "single" else "modelyard",
            "kind": route.targets[0].kind,
        }
        for name, route in sorted(gateway.routes.items())
    ]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type=JSON_TYPE)


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type=JSON_TYPE)


async def usage(request: web.Request) -> web.Response:
    """The calling tenant's own spend and latency, per workload and model: never another tenant's."""
    gateway = request.app[GATEWAY_KEY]
    try:
        caller = gateway.keys.authenticate(request.headers.get("Authorization"))
        if caller is None:
            raise AuthenticationFailed(
                "usage is per tenant: send 'Authorization: Bearer <your modelyard key>'"
            )
        since = float(request.query.get("since", "0"))
    except ModelyardError as error:
        return error_response(error)
    except ValueError:
        return error_response(InvalidRequest("since: unix seconds expected", param="since"))
    groups = await gateway.ledger.usage(caller.tenant, since)
    return web.Response(
        body=orjson.dumps({"tenant": caller.tenant, "groups": groups}), content_type=JSON_TYPE
    )


async def metrics(request: web.Request) -> web.Response:
    body = request.app[GATEWAY_KEY].metrics.render()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})


async def openapi(request: web.Request) -> web.Response:
    return web.Response(body=orjson.dumps(openapi_document()), content_type=JSON_TYPE)


ROUTES: dict[str, tuple[str, Callable[[web.Request], Any]]] = {
    "/v1/chat/completions": ("POST", chat_completions),
    "/v1/embeddings": ("POST", embeddings),
    "/v1/models": ("GET", list_models),
    "/healthz": ("GET", healthz),
    "/metrics": ("GET", metrics),
    "/v1/usage": ("GET", usage),
    "/openapi.json": ("GET", openapi),
}


async def fallback(request: web.Request) -> web.Response:
    """Unknown paths and wrong methods, answered in OpenAI's error shape rather than aiohttp's HTML."""
    known = ROUTES.get(request.path) or ROUTES.get(request.path.rstrip("/"))
    if known is not None:
        error = InvalidRequest(
            f"method {request.method} is not allowed on {request.path}; use {known[0]}",
            code="method_not_allowed",
        )
        error.status = 405
        return error_response(error)
    return error_response(NotFound(f"unknown path {request.path}", code="unknown_url"))


def create_app(gateway: Gateway) -> web.Application:
    # client_max_size is a second guard for bodies sent without Content-Length (chunked).
    app = web.Application(client_max_size=gateway.config.server.max_body_bytes)
    app[GATEWAY_KEY] = gateway
    for path, (method, handler) in ROUTES.items():
        app.router.add_route(method, path, handler)
    app.router.add_route("*", "/{tail:.*}", fallback)
    return app

"""The thin HTTP layer: parse, call the gateway, serialise. OpenAI-shaped errors for everything.

The gateway's own HTTP/1.1 server (:mod:`modelyard.transport.server`) calls :meth:`Api.handle` with each
complete request. Handlers catch errors themselves: a bug answers as an OpenAI-shaped 500, never a trace.
"""

from __future__ import annotations

import logging
from asyncio import get_running_loop
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import unquote

import orjson

from modelyard.config.schema import ModelKind
from modelyard.errors import (
    AuthenticationFailed,
    InternalError,
    InvalidRequest,
    ModelyardError,
    NotFound,
    PayloadTooLarge,
)
from modelyard.gateway.admission import RequestPlan
from modelyard.gateway.metering import RequestContext
from modelyard.gateway.pipeline import Gateway
from modelyard.gateway.recording import before_admission
from modelyard.gateway.streaming import ClientStream
from modelyard.gateway.targets import Target
from modelyard.governance.model import Subject
from modelyard.http.admin import PREFIX as ADMIN_PREFIX
from modelyard.http.admin import Admin
from modelyard.http.answers import (
    error_response,
    internal_error,
    json_answer,
    request_context,
    stream_headers,
    unvalidated,
)
from modelyard.http.console import Console
from modelyard.http.meta import AUTHORIZATION, read_meta
from modelyard.http.openapi import openapi_document
from modelyard.http.translated_routes import TranslatedRoutes
from modelyard.http.validation import (
    check_chat_request,
    check_depth,
    check_embedding_request,
)
from modelyard.routing.plan import Route
from modelyard.transport.server import Request, Response, Streamed

log = logging.getLogger("modelyard.http")


def read_json(request: Request, limit: int, max_depth: int = 128) -> Any:
    if request.oversized:
        if request.content_length is not None and request.content_length > limit:
            raise PayloadTooLarge(f"request body is {request.content_length} bytes; the limit is {limit}")
        raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"could not parse the JSON body of your request: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object", code="invalid_json")
    if len(request.body) > 2 * max_depth:  # a shorter body cannot nest that deep (see check_depth)
        check_depth(request.body, body, max_depth)
    return body


#: Codes of the refusals the server makes before any handler runs.
_REFUSAL_CODES = {400: "invalid_http", 408: "request_timeout", 431: "request_head_too_large"}


#: One model by id (``models.retrieve``); ids may hold slashes (``meta-llama/Llama-3.1-8B``).
MODEL_PATH = "/v1/models/{model}"
_MODEL_PREFIX = "/v1/models/"

#: Path → (method, handler method of :class:`Api`): every route the API serves (and documents).
ROUTES: dict[str, tuple[str, str]] = {
    "/v1/chat/completions": ("POST", "chat_completions"),
    "/v1/embeddings": ("POST", "embeddings"),
    "/v1/responses": ("POST", "responses"),
    "/v1/completions": ("POST", "completions"),
    "/v1/messages": ("POST", "messages"),
    "/v1/rerank": ("POST", "rerank"),
    "/v1/models": ("GET", "list_models"),
    MODEL_PATH: ("GET", "retrieve_model"),
    "/healthz": ("GET", "healthz"),
    "/metrics": ("GET", "metrics"),
    "/v1/usage": ("GET", "usage"),
    "/openapi.json": ("GET", "openapi"),
}


class Api(TranslatedRoutes):
    """The routes of the OpenAI-compatible API (and health, metrics, usage, OpenAPI) over one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.max_body_bytes = gateway.config.server.max_body_bytes
        self.max_json_depth = gateway.config.server.max_json_depth
        self.public_metrics = gateway.config.auth.public_metrics
        self.routes: dict[str, tuple[str, Callable[[Request], Awaitable[Response | Streamed]]]] = {
            path: (method, getattr(self, name)) for path, (method, name) in ROUTES.items()
        }
        governance = gateway.governance
        self.admin = Admin(gateway.config, governance.key_store if governance else None)
        self.console = Console(self.admin, gateway.config, gateway.ledger, governance)

    def handle(self, request: Request) -> Awaitable[Response | Streamed]:
        # Not ``async``: an API route's own coroutine is handed to the server, one coroutine layer fewer
        # on every request.
        route = self.routes.get(request.path)
        if route is not None and route[0] == request.method:
            return route[1](request)
        return self._elsewhere(request)

    async def _elsewhere(self, request: Request) -> Response | Streamed:
        """The admin API, the console, a model by id, or an unknown route."""
        if request.path.startswith(ADMIN_PREFIX):
            return self.admin.handle(request)
        if Console.serves(request.path):
            return await self.console.handle(request)
        if request.path.startswith(_MODEL_PREFIX) and request.method == "GET":
            return await self.retrieve_model(request)
        return self.unknown_route(request)

    def unknown_route(self, request: Request) -> Response:
        """Unknown paths and wrong methods, answered in OpenAI's error shape."""
        known = self.routes.get(request.path) or self.routes.get(request.path.rstrip("/"))
        if known is not None:
            error = InvalidRequest(
                f"method {request.method} is not allowed on {request.path}; use {known[0]}",
                code="method_not_allowed",
            )
            error.status = 405
            # RFC 9110 15.5.6: a 405 lists the methods the resource supports.
            return Response(orjson.dumps(error.to_body()), status=405, headers={"Allow": known[0]})
        return error_response(NotFound(f"unknown path {request.path}", code="unknown_url"))

    def _admit(
        self, request: Request, ctx: RequestContext, check: Callable[[Any, bytes], None], kind: ModelKind
    ) -> RequestPlan:
        """Authenticate, parse, validate (``check`` sees the parsed body and the bytes it came from), admit.
        Every refusal is recorded in the ledger (with whatever admission had decided) and raised."""
        gateway = self.gateway
        body: Any = None
        try:
            caller = gateway.keys.authenticate(request.headers.get(AUTHORIZATION))
            if caller is not None:
                ctx.tenant, ctx.api_key_id = caller.tenant, caller.key_id
            body = read_json(request, self.max_body_bytes, self.max_json_depth)
            check(body, request.body)
            meta = read_meta(request.headers, body, kind)
        except ModelyardError as error:
            gateway.recorder.refused(ctx, before_admission(body, error))
            raise
        return gateway.admit(ctx, meta, body, caller)

    async def chat_completions(self, request: Request) -> Response | Streamed:
        ctx = request_context("chat")
        gateway = self.gateway
        try:
            plan = self._admit(request, ctx, check_chat_request, "chat")
            if plan.stream:
                # The stream was opened up to its first token before the headers go: an upstream that
                # fails at once (429, 5xx, refused connection) gets a real HTTP status instead of a 200
                # followed by an error event. The last frame ([DONE], or the error event of a cut
                # stream) goes with the end of the body.
                stream: ClientStream = await gateway.stream_chat(ctx, plan)
                return Streamed(stream, headers=stream_headers(ctx.request_id, stream))
            result = await gateway.chat(ctx, plan)
        except ModelyardError as error:
            return error_response(error, ctx.request_id)
        except Exception:
            return internal_error(ctx)
        if result.rejection is not None:
            return unvalidated(result.body, result.rejection, ctx.request_id)
        # json_answer's work, written out: this is every chat answer.
        payload = result.raw if result.raw is not None else orjson.dumps(result.body)
        return Response(payload, headers={"X-Request-Id": ctx.request_id})

    async def embeddings(self, request: Request) -> Response:
        ctx = request_context("embeddings")
        try:
            plan = self._admit(request, ctx, check_embedding_request, "embedding")
            result = await self.gateway.embeddings(ctx, plan)
        except ModelyardError as error:
            return error_response(error, ctx.request_id)
        except Exception:
            return internal_error(ctx)
        return json_answer(
            result.raw if result.raw is not None else orjson.dumps(result.body), ctx.request_id
        )

    def _keyed(self, request: Request) -> Response | None:
        """The refusal of a call without a valid key where keys are required; None when it may pass."""
        try:
            self.gateway.keys.authenticate(request.headers.get(AUTHORIZATION))
        except ModelyardError as error:
            return error_response(error)
        return None

    async def list_models(self, request: Request) -> Response:
        refused = self._keyed(request)
        if refused is not None:
            return refused
        data = [_model_object(name, route) for name, route in sorted(self.gateway.routes.items())]
        return json_answer(orjson.dumps({"object": "list", "data": data}))

    async def retrieve_model(self, request: Request) -> Response:
        """One model or route by its public name, as in the list; 404 naming the ones that exist."""
        refused = self._keyed(request)
        if refused is not None:
            return refused
        name = unquote(request.path[len(_MODEL_PREFIX) :])
        route = self.gateway.routes.get(name)
        if route is None:
            available = ", ".join(sorted(self.gateway.routes))
            message = f"The model {name!r} does not exist on this gateway; available: {available}"
            return error_response(NotFound(message, param="model", code="model_not_found"))
        return json_answer(orjson.dumps(_model_object(name, route)))

    async def healthz(self, request: Request) -> Response:
        return json_answer(b'{"status":"ok"}')

    async def usage(self, request: Request) -> Response:
        """The calling tenant's own spend and latency, per workload and model: never another tenant's."""
        gateway = self.gateway
        try:
            caller = gateway.keys.authenticate(request.headers.get(AUTHORIZATION))
            if caller is None:
                raise AuthenticationFailed(
                    "usage is per tenant: send 'Authorization: Bearer <your modelyard key>'"
                )
            since = float(request.query.get("since", "0"))
        except ModelyardError as error:
            return error_response(error)
        except ValueError:
            return error_response(InvalidRequest("since: unix seconds expected", param="since"))
        try:
            groups = await gateway.ledger.usage(caller.tenant, since)
        except Exception as exc:  # the database is away (or its driver failed): the client may retry
            log.warning("usage: the ledger cannot be read (%s: %s)", type(exc).__name__, exc)
            unavailable = InternalError(
                "the ledger's database cannot be read right now; retry later", code="ledger_unavailable"
            )
            unavailable.status = 503
            return error_response(unavailable)
        payload: dict[str, Any] = {"tenant": caller.tenant, "groups": groups}
        governance = gateway.governance
        if governance is not None:
            read = partial(
                governance.governor.status, Subject(caller.tenant, caller.key_id, None), caller.budgets
            )
            offload = governance.settler.offload  # a network store (PostgreSQL, Redis): off the loop
            try:
                statuses = (
                    read() if offload is None else await get_running_loop().run_in_executor(offload, read)
                )
            except Exception as exc:  # the budget store is away: the spend above still answers
                log.warning("usage: the budget store cannot be read (%s: %s)", type(exc).__name__, exc)
                payload["budgets_error"] = "the budget store cannot be read right now; retry later"
            else:
                payload["budgets"] = [status.to_json() for status in statuses]
        return json_answer(orjson.dumps(payload))

    async def metrics(self, request: Request) -> Response:
        if not self.public_metrics:
            refused = self._keyed(request)
            if refused is not None:
                return refused
        await self.gateway.metrics.read_stores()  # a network budget store is read off the loop
        body = self.gateway.metrics.render()
        return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(self, request: Request) -> Response:
        return json_answer(orjson.dumps(openapi_document()))


def _model_object(name: str, route: Route[Target]) -> dict[str, Any]:
    """OpenAI's model object, plus the kind (chat or embedding) the gateway serves it as."""
    return {
        "id": name,
        "object": "model",
        "created": 0,
        "owned_by": route.targets[0].provider if route.strategy == "single" else "modelyard",
        "kind": route.targets[0].kind,
    }


def refusal(status: int, message: str) -> Response:
    """The answer to a request the server refused before any handler ran (malformed HTTP, a head too
    large, too slow to arrive) or that failed outside every handler."""
    error: ModelyardError
    if status >= 500:
        error = InternalError(message)
    else:
        error = InvalidRequest(message, code=_REFUSAL_CODES.get(status, "invalid_request"))
        error.status = status
    return error_response(error)

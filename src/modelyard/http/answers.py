"""How the HTTP layer answers: the request's context and id, JSON answers, OpenAI-shaped (and Anthropic-
shaped) errors, stream headers, answers marked as unvalidated. Shared by every route module."""

from __future__ import annotations

import itertools
import logging
import secrets
from time import perf_counter, time
from typing import Any

import orjson

from modelyard.errors import InternalError, ModelyardError
from modelyard.gateway.metering import RequestContext
from modelyard.gateway.streaming import Frames
from modelyard.gateway.unvalidated import marked_body, marked_headers
from modelyard.governance.model import BudgetExceeded, RateLimited
from modelyard.http import messages_api
from modelyard.transport.server import Response

log = logging.getLogger("modelyard.http")


def error_response(error: ModelyardError, request_id: str | None = None) -> Response:
    headers = {"X-Request-Id": request_id} if request_id else {}
    if isinstance(error, BudgetExceeded | RateLimited):
        # RFC 9110 10.2.3: when to try again (the budget's window reset, or the next minute).
        headers["Retry-After"] = str(error.retry_after)
    return Response(orjson.dumps(error.to_body()), status=error.status, headers=headers or None)


#: Request ids: a random per-process prefix and a counter — unique without a syscall per request.
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def internal_error(ctx: RequestContext) -> Response:
    """A bug must not reach the client as a stack trace: log it, answer in OpenAI's shape."""
    log.exception("internal error handling request %s", ctx.request_id)
    message = f"internal error (request {ctx.request_id}); the gateway's log has the details"
    return error_response(InternalError(message), ctx.request_id)


def request_context(endpoint: str) -> RequestContext:
    return RequestContext(f"{_ID_PREFIX}{next(_ID_COUNTER):012x}", time(), perf_counter(), endpoint)


def json_answer(payload: bytes, request_id: str | None = None) -> Response:
    return Response(payload, headers={"X-Request-Id": request_id} if request_id else None)


def anthropic_error(error: ModelyardError, request_id: str) -> Response:
    response = error_response(error, request_id)
    response.body = orjson.dumps(messages_api.error_body(error))
    return response


def unvalidated(body: dict[str, Any], reason: str, request_id: str) -> Response:
    """An answer that failed validation after every attempt, returned marked (gateway/unvalidated.py)."""
    headers = {"X-Request-Id": request_id, **marked_headers(reason)}
    return Response(orjson.dumps(marked_body(body, reason)), headers=headers)


def stream_headers(request_id: str, stream: object = None) -> dict[str, str]:
    """A stream's headers; marked as an unvalidated answer's are when ``stream`` is a cascade's answer
    that failed validation (known whole before the headers go)."""
    headers = {"Cache-Control": "no-cache", "X-Request-Id": request_id}
    if isinstance(stream, Frames) and stream.rejection is not None:
        headers.update(marked_headers(stream.rejection))
    return headers

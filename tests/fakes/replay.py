"""A fake provider that replays recorded wire answers from files: ``tests/fixtures/wire/<kind>/``.

Each provider kind answers its upstream operations (:data:`OPERATIONS`) with the files written after the
provider's documented format: ``<operation>.json`` for a whole answer, ``<operation>.sse`` for the SSE byte
sequence of a streamed one, replayed exactly as recorded (event names, framing, CRLF for Gemini). Before
answering it checks, as the provider does, the credential header and the request body against the
operation's JSON Schema (``tests/fixtures/wire/schemas/``, each naming the reference it follows); a body
that breaks it gets a 400 in the provider's error shape and is kept in :attr:`ReplayState.violations`,
so a conformance test sees every request the gateway sent that the provider would refuse. Scenario
``rate_limited`` answers every operation with the kind's recorded 429 body (``error_429.json``) and
``retry-after: 7``; scenario ``tool_call`` replays ``<operation>_tool_call.json`` / ``.sse`` (one call of
``get_weather({"city": "Paris"})``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
from aiohttp import web

from tests.fakes.common import STATE, FakeState

WIRE = Path(__file__).parent.parent / "fixtures" / "wire"
API_KEY = "sk-test-SECRET-0001"  # tests/conftest.py FAKE_KEY


@dataclass(frozen=True)
class Operation:
    """One upstream call a provider kind serves: where, its fixture files, its request schema."""

    path: str
    fixture: str
    schema: str


#: kind → its operations. Gemini's model is in the path (``{target}`` = ``model:method``).
OPERATIONS: dict[str, list[Operation]] = {
    "openai": [
        Operation("/v1/chat/completions", "chat", "openai_chat"),
        Operation("/v1/completions", "completions", "openai_completions"),
        Operation("/v1/responses", "responses", "openai_responses"),
    ],
    "openai_compatible": [
        Operation("/v1/chat/completions", "chat", "openai_chat"),
        Operation("/v1/completions", "completions", "openai_completions"),
        Operation("/v1/rerank", "rerank", "rerank_vllm"),
    ],
    "anthropic": [Operation("/v1/messages", "messages", "anthropic_messages")],
    "gemini": [Operation("/v1beta/models/{target}", "generate", "gemini_generate")],
    "cohere": [Operation("/v2/rerank", "rerank", "rerank_cohere")],
    "jina": [Operation("/v1/rerank", "rerank", "rerank_jina")],
    "voyage": [Operation("/v1/rerank", "rerank", "rerank_voyage")],
}
#: The base URL suffix a config gives each kind (the part of the path before the operation's).
BASE_SUFFIX = {"openai": "/v1", "openai_compatible": "/v1", "cohere": "/v2", "jina": "/v1", "voyage": "/v1"}


@dataclass
class ReplayState(FakeState):
    #: Every request body the schema refused: (operation fixture, the first violation).
    violations: list[tuple[str, str]] = field(default_factory=list)


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(json.loads((WIRE / "schemas" / f"{name}.json").read_text()))


def fixture(kind: str, name: str) -> bytes:
    return (WIRE / kind / name).read_bytes()


def _authorised(kind: str, request: web.Request) -> bool:
    headers = request.headers
    if kind == "anthropic":
        return headers.get("x-api-key") == API_KEY and bool(headers.get("anthropic-version"))
    if kind == "gemini":
        return headers.get("x-goog-api-key") == API_KEY
    return headers.get("Authorization") == f"Bearer {API_KEY}"


def _error(kind: str, status: int, message: str) -> web.Response:
    """The provider's error body: Anthropic's, Google's, Cohere's, FastAPI's, or OpenAI's."""
    body: dict[str, Any]
    if kind == "anthropic":
        body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
    elif kind == "gemini":
        body = {"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}
    elif kind == "cohere":
        body = {"message": message}
    elif kind in ("jina", "voyage"):
        body = {"detail": message}
    else:
        body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
    return web.json_response(body, status=status)


def _streamed(kind: str, request: web.Request, body: Any) -> bool:
    if kind == "gemini":
        return request.match_info["target"].endswith(":streamGenerateContent")
    return isinstance(body, dict) and body.get("stream") is True


def handler(kind: str, operation: Operation) -> Any:
    async def answer(request: web.Request) -> web.StreamResponse:
        state = request.app[STATE]
        assert isinstance(state, ReplayState)
        body = await state.record(request)
        if not _authorised(kind, request):
            return _error(kind, 401, "invalid credentials")
        problem = next(iter(_validator(operation.schema).iter_errors(body)), None)
        if problem is not None:
            where = "/".join(map(str, problem.absolute_path)) or "(body)"
            state.violations.append((operation.fixture, f"{where}: {problem.message}"))
            return _error(kind, 400, f"{where}: {problem.message}")
        if state.scenario == "rate_limited":
            return web.Response(
                body=fixture(kind, "error_429.json"),
                status=429,
                content_type="application/json",
                headers={"retry-after": "7"},
            )
        # Scenario "text" is the operation's plain files; another (tool_call) has its own.
        name = operation.fixture if state.scenario == "text" else f"{operation.fixture}_{state.scenario}"
        if not _streamed(kind, request, body):
            return web.Response(body=fixture(kind, f"{name}.json"), content_type="application/json")
        if kind == "gemini" and request.query.get("alt") != "sse":
            return _error(kind, 400, "the gateway streams Gemini with alt=sse")
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(fixture(kind, f"{name}.sse"))
        await response.write_eof()
        return response

    return answer


def create_app(kind: str, state: ReplayState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    for operation in OPERATIONS[kind]:
        app.router.add_post(operation.path, handler(kind, operation))
    return app

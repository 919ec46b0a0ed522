"""A fake OpenAI API (and OpenAI-compatible server) on loopback.

Follows platform.openai.com/docs/api-reference: ``POST /v1/chat/completions`` returns a
``chat.completion`` object, or with ``stream: true`` a ``text/event-stream`` of ``chat.completion.chunk``
objects ending in ``data: [DONE]`` (with ``stream_options.include_usage`` a last chunk with empty
``choices`` and the usage); ``POST /v1/embeddings``; errors as ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.common import EXPECTED_TEXT, EXPECTED_USAGE, STATE, FakeState, cut_connection

API_KEY = "sk-test-SECRET-0001"
CREATED = 1_763_900_000

_ERRORS: dict[str, tuple[int, str, str]] = {
    "rate_limited": (429, "rate_limit_exceeded", "Rate limit reached for requests"),
    "overloaded": (503, "server_error", "The engine is currently overloaded, please try again later"),
    "server_error": (500, "server_error", "The server had an error while processing your request"),
    "bad_request": (400, "invalid_request_error", "bad things"),
}


def _error(status: int, kind: str, message: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"retry-after": "7"} if status == 429 else None
    return web.json_response(body, status=status, headers=headers)


def _usage(scenario: str) -> dict[str, Any]:
    prompt, completion, cached, _write, reasoning = EXPECTED_USAGE.get(scenario, EXPECTED_USAGE["text"])
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0},
    }


def _echo(body: dict[str, Any]) -> str:
    """The "echo" scenario answers with the last user message: what the upstream really saw."""
    return str(next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user"))


def _message(scenario: str, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    if scenario == "echo":
        return {"role": "assistant", "content": _echo(body), "refusal": None}, "stop"
    if scenario == "tool_call":
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        }
        return {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}, "tool_calls"
    finish = "length" if scenario == "length" else "stop"
    return {"role": "assistant", "content": EXPECTED_TEXT[scenario], "refusal": None}, finish


def _check(state: FakeState, request: web.Request, body: Any) -> web.Response | None:
    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return _error(401, "invalid_request_error", f"Incorrect API key provided: {key}.", "invalid_api_key")
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list) or "model" not in body:
        return _error(400, "invalid_request_error", "'messages' and 'model' are required")
    if state.scenario == "auth_error":
        return _error(
            401, "invalid_request_error", f"Incorrect API key provided: {API_KEY}.", "invalid_api_key"
        )
    if state.scenario in _ERRORS:
        status, kind, message = _ERRORS[state.scenario]
        return _error(status, kind, message)
    return None


async def chat_completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await state.record(request)
    failure = _check(state, request, body)
    if failure is not None:
        return failure
    model = body["model"]
    if body.get("stream"):
        return await _stream(request, state, body)
    if state.scenario in ("stream_cut", "stream_error"):
        return web.Response(
            body=b'{"id": "chatcmpl-1", "object": "chat.comp', content_type="application/json"
        )
    message, finish = _message(state.scenario, body)
    return web.json_response(
        {
            "id": "chatcmpl-fake1",
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
            "usage": _usage(state.scenario),
            "system_fingerprint": "fp_fake",
        }
    )


def _chunk(model: str, delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    payload = {
        "id": "chatcmpl-fake1",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        "usage": usage,
    }
    return b"data: " + orjson.dumps(payload) + b"\n\n"


async def _stream(request: web.Request, state: FakeState, body: dict[str, Any]) -> web.StreamResponse:
    model = body["model"]
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(_chunk(model, {"role": "assistant", "content": "", "refusal": None}))
    if state.scenario in ("stream_cut", "stream_error"):
        await response.write(_chunk(model, {"content": "Hel"}))
        await asyncio.sleep(0.01)
        await cut_connection(response, request)
        return response
    if state.scenario == "tool_call":
        call = {
            "index": 0,
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        }
        await response.write(_chunk(model, {"tool_calls": [call]}))
        for piece in ('{"city"', ': "Paris"}'):
            await response.write(
                _chunk(model, {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]})
            )
        finish = "tool_calls"
    else:
        text = _echo(body) if state.scenario == "echo" else EXPECTED_TEXT[state.scenario]
        for i in range(0, len(text), 3):
            await response.write(_chunk(model, {"content": text[i : i + 3]}))
        finish = "length" if state.scenario == "length" else "stop"
    await response.write(_chunk(model, {}, finish))
    if include_usage:
        payload = {
            "id": "chatcmpl-fake1",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": _usage(state.scenario),
        }
        await response.write(b"data: " + orjson.dumps(payload) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def embeddings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    body = await state.record(request)
    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        return _error(401, "invalid_request_error", "Incorrect API key provided", "invalid_api_key")
    if state.scenario in _ERRORS:
        status, kind, message = _ERRORS[state.scenario]
        return _error(status, kind, message)
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = [
        {"object": "embedding", "index": i, "embedding": [0.1 * (i + 1), 0.2, 0.3]}
        for i in range(len(inputs))
    ]
    tokens = 2 * len(inputs)
    return web.json_response(
        {
            "object": "list",
            "data": data,
            "model": body["model"],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
    )


def create_app(state: FakeState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    return app

"""A fake OpenAI API (and OpenAI-compatible server) on loopback.

Follows platform.openai.com/docs/api-reference: ``POST /v1/chat/completions`` returns a
``chat.completion`` object, or with ``stream: true`` a ``text/event-stream`` of ``chat.completion.chunk``
objects ending in ``data: [DONE]`` (with ``stream_options.include_usage`` a last chunk with empty
``choices`` and the usage); ``POST /v1/embeddings``; ``POST /v1/responses`` (a ``response`` object, or the
``response.*`` events ending in ``response.completed``); legacy ``POST /v1/completions``
(``text_completion``); errors as ``{"error": {message, type, param, code}}``.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.common import (
    EXPECTED_TEXT,
    EXPECTED_USAGE,
    STATE,
    FakeState,
    cut_connection,
    verbose_output_tokens,
)

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


def _usage(scenario: str, body: Any = None) -> dict[str, Any]:
    prompt, completion, cached, _write, reasoning = EXPECTED_USAGE.get(scenario, EXPECTED_USAGE["text"])
    if scenario == "verbose":  # OpenAI's reasoning models honour only the newer name
        completion = verbose_output_tokens(body, "max_completion_tokens", "max_tokens")
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
    finish = "length" if scenario in ("length", "verbose") else "stop"
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
            "usage": _usage(state.scenario, body),
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
        finish = "length" if state.scenario in ("length", "verbose") else "stop"
    await response.write(_chunk(model, {}, finish))
    if include_usage:
        payload = {
            "id": "chatcmpl-fake1",
            "object": "chat.completion.chunk",
            "created": CREATED,
            "model": model,
            "choices": [],
            "usage": _usage(state.scenario, body),
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


# -- Responses API (platform.openai.com/docs/api-reference/responses) ---------------------------------------


def _responses_usage(scenario: str, body: Any = None) -> dict[str, Any]:
    prompt, completion, cached, _write, reasoning = EXPECTED_USAGE.get(scenario, EXPECTED_USAGE["text"])
    if scenario == "verbose":
        completion = verbose_output_tokens(body, "max_output_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def _response_output(scenario: str) -> list[dict[str, Any]]:
    if scenario == "tool_call":
        return [
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "name": "get_weather",
                "arguments": '{"city": "Paris"}',
                "status": "completed",
            }
        ]
    text = EXPECTED_TEXT.get(scenario, EXPECTED_TEXT["text"])  # stream_cut: cut after its first delta
    content = [{"type": "output_text", "text": text, "annotations": []}]
    return [
        {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": content}
    ]


def _response(body: dict[str, Any], scenario: str, status: str) -> dict[str, Any]:
    done = status != "in_progress"
    return {
        "id": "resp_fake1",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
        "instructions": body.get("instructions"),
        "model": f"{body['model']}-2024-07-18",
        "output": _response_output(scenario) if done else [],
        "parallel_tool_calls": True,
        "store": body.get("store", True),
        "tool_choice": body.get("tool_choice", "auto"),
        "tools": body.get("tools", []),
        "text": body.get("text", {"format": {"type": "text"}}),
        "usage": _responses_usage(scenario, body) if done else None,
    }


def _sse(payload: dict[str, Any]) -> bytes:
    return f"event: {payload['type']}\n".encode() + b"data: " + orjson.dumps(payload) + b"\n\n"


async def responses(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await state.record(request)
    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        return _error(401, "invalid_request_error", "Incorrect API key provided", "invalid_api_key")
    if not isinstance(body, dict) or "input" not in body or "model" not in body:
        return _error(400, "invalid_request_error", "'input' and 'model' are required")
    if state.scenario in _ERRORS:
        status, kind, message = _ERRORS[state.scenario]
        return _error(status, kind, message)
    scenario = "text" if state.scenario == "echo" else state.scenario
    final = "incomplete" if scenario in ("length", "verbose") else "completed"
    if not body.get("stream"):
        return web.json_response(_response(body, scenario, final))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    seq = iter(range(1000))
    for kind in ("response.created", "response.in_progress"):
        start = {
            "type": kind,
            "sequence_number": next(seq),
            "response": _response(body, scenario, "in_progress"),
        }
        await response.write(_sse(start))
    for index, item in enumerate(_response_output(scenario)):
        empty = {**item, "status": "in_progress"}
        if item["type"] == "message":
            empty["content"] = []
        else:
            empty["arguments"] = ""
        await response.write(
            _sse(
                {
                    "type": "response.output_item.added",
                    "sequence_number": next(seq),
                    "output_index": index,
                    "item": empty,
                }
            )
        )
        if item["type"] == "message":
            text = item["content"][0]["text"]
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            part = {"type": "output_text", "text": "", "annotations": []}
            added = {
                "type": "response.content_part.added",
                "sequence_number": next(seq),
                **where,
                "part": part,
            }
            await response.write(_sse(added))
            for i in range(0, len(text), 3):
                delta = {
                    "item_id": item["id"],
                    "output_index": index,
                    "content_index": 0,
                    "delta": text[i : i + 3],
                }
                await response.write(
                    _sse(
                        {
                            "type": "response.output_text.delta",
                            "sequence_number": next(seq),
                            **delta,
                            "logprobs": [],
                        }
                    )
                )
                if scenario == "stream_cut" and i == 0:
                    await cut_connection(response, request)
                    return response
            finished = {**where, "text": text, "logprobs": []}
            await response.write(
                _sse({"type": "response.output_text.done", "sequence_number": next(seq), **finished})
            )
            part = item["content"][0]
            await response.write(
                _sse(
                    {
                        "type": "response.content_part.done",
                        "sequence_number": next(seq),
                        **where,
                        "part": part,
                    }
                )
            )
        else:
            await response.write(
                _sse(
                    {
                        "type": "response.function_call_arguments.delta",
                        "sequence_number": next(seq),
                        "item_id": item["id"],
                        "output_index": index,
                        "delta": item["arguments"],
                    }
                )
            )
            done = {"item_id": item["id"], "output_index": index, "arguments": item["arguments"]}
            event = {"type": "response.function_call_arguments.done", "sequence_number": next(seq), **done}
            await response.write(_sse(event))
        await response.write(
            _sse(
                {
                    "type": "response.output_item.done",
                    "sequence_number": next(seq),
                    "output_index": index,
                    "item": item,
                }
            )
        )
    kind = "response.completed" if final == "completed" else "response.incomplete"
    await response.write(
        _sse({"type": kind, "sequence_number": next(seq), "response": _response(body, scenario, final)})
    )
    await response.write_eof()
    return response


# -- legacy Completions (platform.openai.com/docs/api-reference/completions) ----------------------------------


async def completions(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await state.record(request)
    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        return _error(401, "invalid_request_error", "Incorrect API key provided", "invalid_api_key")
    if not isinstance(body, dict) or "prompt" not in body or "model" not in body:
        return _error(400, "invalid_request_error", "'prompt' and 'model' are required")
    if state.scenario in _ERRORS:
        status, kind, message = _ERRORS[state.scenario]
        return _error(status, kind, message)
    scenario = state.scenario if state.scenario in EXPECTED_TEXT else "text"
    text, finish = EXPECTED_TEXT[scenario], "length" if scenario in ("length", "verbose") else "stop"
    # The legacy endpoint has only ``max_tokens``: a verbose model ignores any other name.
    bound = {"max_tokens": body["max_tokens"]} if isinstance(body.get("max_tokens"), int) else {}
    usage = {k: v for k, v in _usage(scenario, bound).items() if k != "completion_tokens_details"}

    def payload(choice_text: str, finish_reason: str | None, with_usage: Any = None) -> dict[str, Any]:
        choice = {"text": choice_text, "index": 0, "logprobs": None, "finish_reason": finish_reason}
        return {
            "id": "cmpl-fake1",
            "object": "text_completion",
            "created": CREATED,
            "model": body["model"],
            "choices": [choice],
            "usage": with_usage,
        }

    if not body.get("stream"):
        return web.json_response(payload(text, finish, usage))
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for i in range(0, len(text), 3):
        await response.write(b"data: " + orjson.dumps(payload(text[i : i + 3], None)) + b"\n\n")
    await response.write(b"data: " + orjson.dumps(payload("", finish)) + b"\n\n")
    if (body.get("stream_options") or {}).get("include_usage"):
        last = {**payload("", None, usage), "choices": []}
        await response.write(b"data: " + orjson.dumps(last) + b"\n\n")
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


# -- rerank, as vLLM serves it (docs.vllm.ai, "Re-rank API": Jina/Cohere-compatible) --------------------------


async def rerank(request: web.Request) -> web.Response:
    """Scores each document by the query words it contains; usage counts 2 tokens per text."""
    state = request.app[STATE]
    body = await state.record(request)
    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        return _error(401, "invalid_request_error", "Incorrect API key provided", "invalid_api_key")
    if state.scenario in _ERRORS:
        status, kind, message = _ERRORS[state.scenario]
        return _error(status, kind, message)
    words = set(body["query"].lower().split())
    texts = [d if isinstance(d, str) else d["text"] for d in body["documents"]]
    scored = [
        {
            "index": i,
            "document": {"text": text},
            "relevance_score": len(words & set(text.lower().split())) / 10,
        }
        for i, text in enumerate(texts)
    ]
    scored.sort(key=lambda r: -r["relevance_score"])
    results = scored[: body.get("top_n") or len(scored)]
    usage = {"total_tokens": 2 * (len(texts) + 1)}
    return web.json_response(
        {"id": "rerank-fake1", "model": body["model"], "usage": usage, "results": results}
    )


def create_app(state: FakeState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post("/v1/responses", responses)
    app.router.add_post("/v1/completions", completions)
    app.router.add_post("/v1/rerank", rerank)
    return app

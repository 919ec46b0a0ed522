"""A fake Anthropic Messages API (``POST /v1/messages``) on loopback, after Anthropic's published references.

It checks the ``x-api-key`` and ``anthropic-version`` headers and the request shape Anthropic requires
(answering with Anthropic's error bodies), then answers the scenario of :class:`FakeState` either as one
JSON message or as the full SSE sequence: ``message_start``, ``content_block_start``, ``ping``,
``content_block_delta``…, ``content_block_stop``, ``message_delta``, ``message_stop``. Each scenario is
scripted once as content blocks plus usage, and both forms are rendered from that script.

Anthropic specifics the scripts exercise: ``input_tokens`` excludes cache reads and writes (the ``cached``
scenario reports 30 + 60 read + 10 written = 100, of which 4 written for one hour); thinking blocks whose
tokens are inside ``output_tokens``; a ``json_schema`` request answered through the forced tool.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.common import FakeState, cut_connection, verbose_output_tokens

API_KEY = "sk-test-SECRET-0001"
MODEL_SUFFIX = "-20250514"  # Anthropic reports the dated model snapshot it ran

_TOP_LEVEL = {
    "model", "messages", "max_tokens", "system", "metadata", "stop_sequences", "stream", "temperature",
    "top_p", "top_k", "tools", "tool_choice", "thinking", "service_tier",
}  # fmt: skip
_BLOCKS = {"user": {"text", "image", "tool_result", "document"}, "assistant": {"text", "tool_use"}}
_IMAGE_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp"}
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_ERRORS = {
    "rate_limited": (
        429,
        "rate_limit_error",
        "Number of request tokens has exceeded your per-minute rate limit",
    ),
    "overloaded": (529, "overloaded_error", "Overloaded"),
    "stream_error": (529, "overloaded_error", "Overloaded"),  # non-streaming form of the in-stream error
    "server_error": (500, "api_error", "Internal server error"),
    "bad_request": (400, "invalid_request_error", "bad things"),
    "auth_error": (401, "authentication_error", "invalid x-api-key"),
}


@dataclass
class Script:
    """One scripted answer: Anthropic content blocks, the stop reason and the usage object."""

    blocks: list[dict[str, Any]]
    stop_reason: str
    usage: dict[str, Any]


def _usage(
    input_tokens: int, output_tokens: int, read: int = 0, write_5m: int = 0, write_1h: int = 0
) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": write_5m + write_1h,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def script_for(scenario: str, request: dict[str, Any]) -> Script:
    """The answer to ``scenario``; ``json`` answers through the forced tool when the request forces one."""
    if scenario == "tool_call":
        call = {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}
        return Script([call], "tool_use", _usage(20, 9))
    if scenario == "json":
        forced = request.get("tool_choice") or {}
        if forced.get("type") == "tool":
            call = {"type": "tool_use", "id": "toolu_json", "name": forced["name"], "input": {"answer": 42}}
            return Script([call], "tool_use", _usage(15, 6))
        return Script([_text('{"answer": 42}')], "end_turn", _usage(15, 6))
    if scenario == "cached":
        return Script([_text("Cached hello")], "end_turn", _usage(30, 3, read=60, write_5m=6, write_1h=4))
    if scenario == "reasoning":
        thinking = {"type": "thinking", "thinking": "Six times seven is 42.", "signature": "EqQBCgIYAhIM"}
        return Script([thinking, _text("42")], "end_turn", _usage(10, 50))
    if scenario == "length":
        return Script([_text("Hello")], "max_tokens", _usage(11, 2))
    if scenario == "verbose":  # writes until max_tokens (required by the Messages API) stops it
        written = verbose_output_tokens(request, "max_tokens")
        return Script([_text("Hello, world!")], "max_tokens", _usage(11, written))
    return Script([_text("Hello, world!")], "end_turn", _usage(11, 4))  # text, slow


def error_body(kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_fake0001"}


def _error(status: int, kind: str, message: str, **headers: str) -> web.Response:
    return web.json_response(error_body(kind, message), status=status, headers=headers)


def create_app(state: FakeState) -> web.Application:
    """The fake's aiohttp application; ``state`` picks the scenario and records requests."""

    async def messages(request: web.Request) -> web.StreamResponse:
        body = await state.record(request)
        if request.headers.get("x-api-key") != API_KEY or state.scenario == "auth_error":
            return _error(401, "authentication_error", "invalid x-api-key")
        if not request.headers.get("anthropic-version"):
            return _error(400, "invalid_request_error", "anthropic-version: header is required")
        problem = validate(body)
        if problem:
            return _error(400, "invalid_request_error", problem)
        streaming = bool(body.get("stream"))
        if state.scenario in _ERRORS and not (streaming and state.scenario == "stream_error"):
            status, kind, message = _ERRORS[state.scenario]
            headers = {"retry-after": "7"} if status == 429 else {}
            return _error(status, kind, message, **headers)
        message_id = f"msg_fake_{len(state.received):04d}"
        model = body["model"] + MODEL_SUFFIX
        if state.scenario in ("stream_cut", "stream_error"):
            if not streaming:  # a body cut short: HTTP 200 with truncated JSON
                raw = orjson.dumps(_message(message_id, model, script_for("text", body)))
                return web.Response(body=raw[: len(raw) // 2], content_type="application/json")
            return await _broken_stream(request, message_id, model, state.scenario)
        script = script_for(state.scenario, body)
        if not streaming:
            return web.json_response(_message(message_id, model, script))
        return await _stream(request, message_id, model, script)

    async def not_found(request: web.Request) -> web.Response:
        await state.record(request)
        return _error(404, "not_found_error", f"Not found: {request.path}")

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    app.router.add_route("*", "/{tail:.*}", not_found)
    return app


def _message(message_id: str, model: str, script: Script) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": script.blocks,
        "stop_reason": script.stop_reason,
        "stop_sequence": None,
        "usage": script.usage,
    }


# --- streaming ----------------------------------------------------------------------------------------------


def sse(event_type: str, data: dict[str, Any]) -> bytes:
    """One SSE event as Anthropic frames it: the event name repeated as ``type`` in the data."""
    return (
        b"event: " + event_type.encode() + b"\ndata: " + orjson.dumps({"type": event_type, **data}) + b"\n\n"
    )


def _pieces(text: str, size: int = 5) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


def _message_start(message_id: str, model: str, usage: dict[str, Any]) -> bytes:
    # message_start carries the input side; output_tokens here is a placeholder the final delta replaces.
    start_usage = {**usage, "output_tokens": 1}
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model, "content": []}
    message.update(stop_reason=None, stop_sequence=None, usage=start_usage)
    return sse("message_start", {"message": message})


def block_events(index: int, block: dict[str, Any]) -> list[bytes]:
    """content_block_start, its deltas and content_block_stop for one block."""
    kind = block["type"]
    if kind == "text":
        shell: dict[str, Any] = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
    elif kind == "tool_use":
        shell = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
        arguments = json.dumps(block["input"])  # ", " and ": " separators: the spacing Claude streams with
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *_pieces(arguments, 9)]]
    else:  # thinking
        shell = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(block["thinking"], 8)]
        deltas.append({"type": "signature_delta", "signature": block["signature"]})
    events = [sse("content_block_start", {"index": index, "content_block": shell})]
    events += [sse("content_block_delta", {"index": index, "delta": delta}) for delta in deltas]
    events.append(sse("content_block_stop", {"index": index}))
    return events


def stream_events(message_id: str, model: str, script: Script) -> list[bytes]:
    """The whole SSE body for ``script``."""
    events = [_message_start(message_id, model, script.usage)]
    for index, block in enumerate(script.blocks):
        events += block_events(index, block)
        if index == 0:
            events.append(sse("ping", {}))
    # Cumulative usage; the input-side fields are repeated here, as the current API does.
    final_usage = {name: value for name, value in script.usage.items() if name != "cache_creation"}
    delta = {"stop_reason": script.stop_reason, "stop_sequence": None}
    events.append(sse("message_delta", {"delta": delta, "usage": final_usage}))
    events.append(sse("message_stop", {}))
    return events


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    return response


async def _stream(request: web.Request, message_id: str, model: str, script: Script) -> web.StreamResponse:
    response = await _open_stream(request)
    for event in stream_events(message_id, model, script):
        await response.write(event)
    await response.write_eof()
    return response


async def _broken_stream(
    request: web.Request, message_id: str, model: str, scenario: str
) -> web.StreamResponse:
    """``Hel`` and then either a dropped connection or Anthropic's in-stream ``overloaded_error``."""
    response = await _open_stream(request)
    await response.write(_message_start(message_id, model, _usage(11, 4)))
    await response.write(
        sse("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    )
    await response.write(sse("ping", {}))
    await response.write(
        sse("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}})
    )
    if scenario == "stream_cut":
        await cut_connection(response, request)
        return response
    await response.write(sse("error", error_body("overloaded_error", "Overloaded")))
    await response.write_eof()
    return response


# --- request validation: the shape Anthropic requires -------------------------------------------------------


def validate(body: Any) -> str | None:
    """The first problem with ``body`` in Anthropic's ``field.path: message`` style, or None."""
    if not isinstance(body, dict):
        return "body: Input should be a valid dictionary"
    extra = sorted(set(body) - _TOP_LEVEL)
    if extra:
        return f"{extra[0]}: Extra inputs are not permitted"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Field required (an integer of at least 1)"
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and not 0 <= value <= 1:
            return f"{name}: Input should be less than or equal to 1"
    if not _string_list(body.get("stop_sequences", [])):
        return "stop_sequences: Input should be a valid list of strings"
    if set(body.get("metadata") or {}) - {"user_id"}:
        return "metadata: Extra inputs are not permitted"
    system = body.get("system", "")
    if not isinstance(system, str | list):
        return "system: Input should be a valid string or list of text blocks"
    return _validate_tools(body) or _validate_messages(body.get("messages"))


def _string_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _validate_tools(body: dict[str, Any]) -> str | None:
    names = set()
    for i, tool in enumerate(body.get("tools") or []):
        if not _TOOL_NAME.match(str(tool.get("name", ""))):
            return f"tools.{i}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            return f"tools.{i}.custom.input_schema.type: Input should be 'object'"
        names.add(tool["name"])
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if choice.get("type") not in ("auto", "any", "tool", "none"):
        return "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"
    if choice["type"] == "tool" and choice.get("name") not in names:
        return f"tool_choice.name: Tool '{choice.get('name')}' not found in tools"
    if set(choice) - {"type", "name", "disable_parallel_tool_use"}:
        return "tool_choice: Extra inputs are not permitted"
    return None


def _validate_messages(messages: Any) -> str | None:
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    tool_use_ids: set[str] = set()
    for i, message in enumerate(messages):
        role = message.get("role")
        if role not in _BLOCKS:
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        content = message.get("content")
        if isinstance(content, str):
            continue
        if not isinstance(content, list) or not content:
            return f"messages.{i}.content: non-empty content is required"
        for j, block in enumerate(content):
            problem = _validate_block(block, role, tool_use_ids)
            if problem:
                return f"messages.{i}.content.{j}.{problem}"
            if block["type"] == "tool_use":
                tool_use_ids.add(block["id"])
    return None


def _validate_block(block: dict[str, Any], role: str, tool_use_ids: set[str]) -> str | None:
    kind = block.get("type")
    if kind not in _BLOCKS[role]:
        return f"type: '{kind}' blocks are not allowed in {role} messages"
    if kind == "text" and not (isinstance(block.get("text"), str) and block["text"]):
        return "text: text content blocks must be non-empty"
    if kind == "tool_use" and not (isinstance(block.get("input"), dict) and block.get("id")):
        return "input: Input should be a valid dictionary"
    if kind == "tool_result" and block.get("tool_use_id") not in tool_use_ids:
        return "tool_use_id: unexpected `tool_use_id` found in `tool_result` blocks"
    if kind == "image":
        source = block.get("source") or {}
        if source.get("type") == "base64" and source.get("media_type") in _IMAGE_TYPES and source.get("data"):
            return None
        if source.get("type") == "url" and str(source.get("url", "")).startswith(("http://", "https://")):
            return None
        return "source: Input should be a base64 source with a supported media_type or a url source"
    return None

"""A fake Gemini API server speaking the published v1beta wire format, driven by :class:`FakeState`.

Endpoints (https://ai.google.dev/api): ``POST /v1beta/models/{model}:generateContent``,
``:streamGenerateContent`` (``?alt=sse`` gives Server-Sent Events, each ``data:`` a whole
GenerateContentResponse; without it, one JSON array) and ``:batchEmbedContents``. The key travels in the
``x-goog-api-key`` header (or ``?key=``). Like Google, a missing key gets 403 PERMISSION_DENIED and a wrong
one 400 INVALID_ARGUMENT with ``ErrorInfo.reason`` API_KEY_INVALID; the ``auth_error`` scenario answers
the latter. Request bodies are checked for the shape Gemini requires (camelCase fields only, roles
user/model, non-empty parts, one data field per part, object args/responses) and refused with Google's
400 body otherwise, so an adapter that sends OpenAI-shaped fields fails here as it would upstream.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from aiohttp import web

from tests.fakes.common import FakeState, cut_connection

API_KEY = "sk-test-SECRET-0001"
STATE = web.AppKey("state", FakeState)

_REQUEST_FIELDS = {
    "contents",
    "systemInstruction",
    "tools",
    "toolConfig",
    "generationConfig",
    "safetySettings",
    "cachedContent",
}
_GENERATION_FIELDS = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "thinkingConfig",
    "mediaResolution",
}
_DATA_FIELDS = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "executableCode",
    "codeExecutionResult",
}
_PART_META = {"thought", "thoughtSignature", "videoMetadata"}
_FUNCTION_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$")


class Invalid(Exception):
    """The request does not have the shape Gemini accepts; the message is what Google would say."""


# -- the scripted answers -------------------------------------------------------------------------------

#: scenario → (chunks of parts as streamed, finishReason, final usageMetadata)
SCRIPTS: dict[str, tuple[list[list[dict[str, Any]]], str, dict[str, int]]] = {
    "text": (
        [[{"text": "Hello"}], [{"text": ", world!"}]],
        "STOP",
        {"promptTokenCount": 11, "candidatesTokenCount": 4},
    ),
    "tool_call": (
        [[{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]],
        "STOP",
        {"promptTokenCount": 20, "candidatesTokenCount": 9},
    ),
    "json": (
        [[{"text": '{"answer":'}], [{"text": " 42}"}]],
        "STOP",
        {"promptTokenCount": 15, "candidatesTokenCount": 6},
    ),
    "cached": (
        [[{"text": "Cached"}], [{"text": " hello"}]],
        "STOP",
        {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 3},
    ),
    "reasoning": (
        [[{"text": "The user wants the answer to everything.", "thought": True}], [{"text": "42"}]],
        "STOP",
        {"promptTokenCount": 10, "candidatesTokenCount": 4, "thoughtsTokenCount": 46},
    ),
    "length": (
        [[{"text": "Hel"}], [{"text": "lo"}]],
        "MAX_TOKENS",
        {"promptTokenCount": 11, "candidatesTokenCount": 2},
    ),
}
SCRIPTS["slow"] = SCRIPTS["text"]

#: scenario → (HTTP status, google.rpc status, message, extra headers, details)
ERRORS: dict[str, tuple[int, str, str, dict[str, str], list[dict[str, Any]]]] = {
    "rate_limited": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for generate_content requests per minute.",
        {"retry-after": "7"},
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "7s"}],
    ),
    "overloaded": (503, "UNAVAILABLE", "The model is overloaded. Try again later.", {}, []),
    "server_error": (500, "INTERNAL", "An internal error occurred.", {}, []),
    "bad_request": (400, "INVALID_ARGUMENT", "bad things", {}, []),
}


def error_response(
    code: int,
    status: str,
    message: str,
    headers: dict[str, str] | None = None,
    details: list[Any] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return web.json_response(
        {"error": error}, status=code, headers=headers, dumps=lambda v: orjson.dumps(v).decode()
    )


def _bad_key() -> web.Response:
    info = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    return error_response(400, "INVALID_ARGUMENT", "API key not valid; pass a valid API key.", details=[info])


def _usage(final: dict[str, int]) -> dict[str, int]:
    total = sum(final.get(k, 0) for k in ("promptTokenCount", "candidatesTokenCount", "thoughtsTokenCount"))
    return {**final, "totalTokenCount": total}


def _partial_usage(final: dict[str, int]) -> dict[str, int]:
    """Early chunks carry the prompt figures only, as Gemini's do."""
    prompt = {k: v for k, v in final.items() if k in ("promptTokenCount", "cachedContentTokenCount")}
    return {**prompt, "totalTokenCount": prompt["promptTokenCount"]}


def _response(
    model: str, parts: list[dict[str, Any]], finish: str | None, usage: dict[str, int]
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": model,
        "responseId": "fake-resp-1",
    }


def _merged_parts(chunks: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """The non-streaming answer: adjacent text parts of the same kind joined, as Gemini returns them."""
    merged: list[dict[str, Any]] = []
    for part in (part for chunk in chunks for part in chunk):
        last = merged[-1] if merged else None
        if last and "text" in last and "text" in part and last.get("thought") == part.get("thought"):
            last["text"] += part["text"]
        else:
            merged.append(dict(part))
    return merged


def stream_events(model: str, scenario: str) -> list[dict[str, Any]]:
    chunks, finish, final = SCRIPTS[scenario]
    events = [_response(model, parts, None, _partial_usage(final)) for parts in chunks[:-1]]
    events.append(_response(model, chunks[-1], finish, _usage(final)))
    return events


# -- request validation ---------------------------------------------------------------------------------


def _unknown(fields: set[str], allowed: set[str], where: str) -> None:
    unknown = sorted(fields - allowed)
    if unknown:
        raise Invalid(
            f"Invalid JSON payload received. Unknown name \"{unknown[0]}\" at '{where}': Cannot find field."
        )


def _check_part(part: Any, where: str) -> None:
    if not isinstance(part, dict):
        raise Invalid(f"{where} must be an object")
    _unknown(set(part), _DATA_FIELDS | _PART_META, where)
    data = set(part) & _DATA_FIELDS
    if len(data) != 1:
        raise Invalid(f"{where} must set exactly one data field, got {sorted(data)}")
    if "functionCall" in part:
        call = part["functionCall"]
        if not call.get("name") or not isinstance(call.get("args", {}), dict):
            raise Invalid(f"{where}.function_call needs a name and an object args")
    if "functionResponse" in part:
        answer = part["functionResponse"]
        if not answer.get("name") or not isinstance(answer.get("response"), dict):
            raise Invalid(f"{where}.function_response needs a name and an object response")
    if "inlineData" in part and not {"mimeType", "data"} <= set(part["inlineData"]):
        raise Invalid(f"{where}.inline_data needs mimeType and data")


def _check_contents(contents: Any) -> None:
    if not isinstance(contents, list) or not contents:
        raise Invalid("* GenerateContentRequest.contents: contents is not specified")
    for i, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            raise Invalid(
                f"Please use a valid role: user, model. Got '{content.get('role')}' at contents[{i}]"
            )
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            raise Invalid(f"* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty.")
        for j, part in enumerate(parts):
            _check_part(part, f"contents[{i}].parts[{j}]")


def _check_tools(body: dict[str, Any]) -> None:
    for tool in body.get("tools") or ():
        for declaration in tool.get("functionDeclarations") or ():
            if not _FUNCTION_NAME.match(declaration.get("name", "")):
                raise Invalid(
                    f"* GenerateContentRequest.tools: invalid function name '{declaration.get('name')}'"
                )
            if "parameters" in declaration and "parametersJsonSchema" in declaration:
                raise Invalid("parameters and parametersJsonSchema are mutually exclusive")
    config = (body.get("toolConfig") or {}).get("functionCallingConfig")
    if config is not None:
        if config.get("mode") not in ("AUTO", "ANY", "NONE", "VALIDATED"):
            raise Invalid(
                f"Invalid value at 'tool_config.function_calling_config.mode': {config.get('mode')}"
            )
        if config.get("allowedFunctionNames") and config["mode"] != "ANY":
            raise Invalid("allowed_function_names may be set only when the mode is ANY")


def _check_generation(config: dict[str, Any]) -> None:
    _unknown(set(config), _GENERATION_FIELDS, "generation_config")
    if "responseSchema" in config and "responseJsonSchema" in config:
        raise Invalid("responseSchema and responseJsonSchema are mutually exclusive")
    if ("responseSchema" in config or "responseJsonSchema" in config) and config.get(
        "responseMimeType"
    ) != "application/json":
        raise Invalid("a response schema needs responseMimeType application/json")
    if config.get("candidateCount", 1) != 1:
        raise Invalid("Only one candidate can be specified in the current model")


def check_generate_request(body: Any) -> None:
    if not isinstance(body, dict):
        raise Invalid("Invalid JSON payload received.")
    _unknown(set(body), _REQUEST_FIELDS, "")
    _check_contents(body.get("contents"))
    system = body.get("systemInstruction")
    if system is not None:
        for j, part in enumerate(system.get("parts") or [None]):
            _check_part(part, f"system_instruction.parts[{j}]")
    _check_tools(body)
    _check_generation(body.get("generationConfig") or {})


def check_embed_request(body: Any, model: str) -> None:
    requests = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(requests, list) or not requests:
        raise Invalid("* BatchEmbedContentsRequest.requests: requests is not specified")
    for i, request in enumerate(requests):
        if request.get("model") != f"models/{model}":
            raise Invalid(f"Model names should match in all requests: requests[{i}].model")
        parts = (request.get("content") or {}).get("parts") or []
        if not parts or not all(isinstance(part.get("text"), str) for part in parts):
            raise Invalid(f"* BatchEmbedContentsRequest.requests[{i}].content: text parts are required")


# -- handlers -------------------------------------------------------------------------------------------


async def handle(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE]
    body = await state.record(request)
    model, _, method = request.match_info["target"].rpartition(":")
    key = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not key:
        return error_response(
            403, "PERMISSION_DENIED", "Unregistered callers are not allowed; pass an API key."
        )
    if key != API_KEY or state.scenario == "auth_error":
        return _bad_key()
    if method not in ("generateContent", "streamGenerateContent", "batchEmbedContents"):
        return error_response(404, "NOT_FOUND", f"Method '{method}' is not found for model '{model}'.")
    try:
        if method == "batchEmbedContents":
            check_embed_request(body, model)
        else:
            check_generate_request(body)
    except Invalid as exc:
        return error_response(400, "INVALID_ARGUMENT", str(exc))
    if state.scenario in ERRORS:
        code, status, message, headers, details = ERRORS[state.scenario]
        return error_response(code, status, message, headers, details)
    if method == "batchEmbedContents":
        return _embeddings(body)
    if method == "generateContent":
        return _complete(model, state)
    if request.query.get("alt") != "sse":
        return _stream_as_array(model, state)
    return await _stream(request, model, state)


def _scenario(state: FakeState) -> str:
    """Embedding-only and error scenarios answer chat as plain text."""
    return state.scenario if state.scenario in SCRIPTS else "text"


def _complete(model: str, state: FakeState) -> web.Response:
    if state.scenario in ("stream_cut", "stream_error"):
        return web.Response(
            body=b'{"candidates": [{"content": {"parts": [{"text": "Hel', content_type="application/json"
        )
    chunks, finish, final = SCRIPTS[_scenario(state)]
    return web.json_response(_response(model, _merged_parts(chunks), finish, _usage(final)))


def _stream_as_array(model: str, state: FakeState) -> web.Response:
    return web.Response(
        body=orjson.dumps(stream_events(model, _scenario(state))), content_type="application/json"
    )


async def _stream(request: web.Request, model: str, state: FakeState) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    if state.scenario in ("stream_cut", "stream_error"):
        first = _response(model, [{"text": "Hel"}], None, {"promptTokenCount": 11, "totalTokenCount": 11})
        await response.write(b"data: " + orjson.dumps(first) + b"\r\n\r\n")
        await cut_connection(response, request)
        return response
    for event in stream_events(model, _scenario(state)):
        await response.write(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
    await response.write_eof()
    return response


def _embeddings(body: dict[str, Any]) -> web.Response:
    vectors = [{"values": [0.1 * (i + 1), 0.2, 0.3]} for i in range(len(body["requests"]))]
    return web.json_response({"embeddings": vectors})


def create_app(state: FakeState) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_post("/v1beta/models/{target}", handle)
    return app

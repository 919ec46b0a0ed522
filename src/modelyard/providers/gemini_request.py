"""OpenAI Chat Completions → Gemini ``generateContent`` request translation: pure functions, no I/O.

The reverse direction (responses, stream events, usage) lives in :mod:`modelyard.providers.gemini_response`.
Field names follow the Gemini API reference (https://ai.google.dev/api/generate-content); every request
field is camelCase because the API rejects unknown (e.g. snake_case) names with a 400.

Choices worth knowing:

* Tool parameters go in ``parametersJsonSchema`` and structured output in ``responseJsonSchema``. Both take
  plain JSON Schema, so an OpenAI schema passes unchanged. The older ``parameters`` / ``responseSchema``
  fields take an OpenAPI 3.0 *subset* that rejects ``additionalProperties``, ``$ref``, ``const`` and
  friends, and would force us to strip or rewrite the client's schema (and silently loosen it).
* Gemini 3 rejects a function-call turn whose first ``functionCall`` part lacks the ``thoughtSignature``
  the model gave it (https://ai.google.dev/gemini-api/docs/thought-signatures). We hand signatures to
  clients on each tool call as ``extra_content.google.thought_signature`` (the field Google's own
  OpenAI-compatible endpoint uses) and put them back here; a history that never came from Gemini gets the
  documented placeholder so it is not refused.
* Function-call ids are not sent upstream: the ids a client holds are usually ours (``call_<n>``), and
  Gemini pairs calls with responses by order and name.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.errors import InvalidRequest, UpstreamError
from modelyard.providers.base import JSON

#: What the thought-signatures guide says to send for a function call Gemini did not produce.
PLACEHOLDER_SIGNATURE = "skip_thought_signature_validator"

_SYSTEM_ROLES = ("system", "developer")
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}


def to_gemini_request(body: JSON) -> JSON:
    """The ``generateContent`` body for a validated OpenAI chat request (the model goes in the URL)."""
    messages = body.get("messages") or []
    request: JSON = {"contents": _contents(messages)}
    system = _system_parts(messages)
    if system:
        request["systemInstruction"] = {"parts": system}
    tools = _tools(body.get("tools"))
    if tools:
        request["tools"] = tools
    if body.get("tool_choice") is not None:
        request["toolConfig"] = {"functionCallingConfig": _function_calling_config(body["tool_choice"])}
    request["generationConfig"] = _generation_config(body)
    return request


# -- messages -------------------------------------------------------------------------------------------


def _system_parts(messages: list[JSON]) -> list[JSON]:
    """Every system/developer message, wherever it sits; Gemini has one system instruction per request."""
    return [
        {"text": text}
        for message in messages
        if message.get("role") in _SYSTEM_ROLES
        for text in _texts(message.get("content"))
    ]


def _contents(messages: list[JSON]) -> list[JSON]:
    contents: list[JSON] = []
    call_names: dict[str, str] = {}  # tool_call_id → function name, for the functionResponse parts
    for message in messages:
        role = message.get("role")
        if role in _SYSTEM_ROLES:
            continue
        if role == "assistant":
            parts = _assistant_parts(message, call_names)
            _append(contents, "model", parts)
        elif role in ("tool", "function"):
            _append(contents, "user", [_function_response(message, call_names)])
        elif role == "user":
            _append(contents, "user", _user_parts(message.get("content")))
        else:
            raise InvalidRequest(f"unsupported message role '{role}'", param="messages")
    if not contents:
        raise InvalidRequest("Gemini needs at least one user or assistant message", param="messages")
    return contents


def _append(contents: list[JSON], role: str, parts: list[JSON]) -> None:
    """Add a turn, merging it into the previous one when the role repeats (parallel tool results)."""
    if not parts:
        return
    if contents and contents[-1]["role"] == role:
        contents[-1]["parts"].extend(parts)
    else:
        contents.append({"role": role, "parts": parts})


def _texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, dict) and part.get("text")]
    return []


def _user_parts(content: Any) -> list[JSON]:
    if not isinstance(content, list):
        return [{"text": text} for text in _texts(content)]
    parts: list[JSON] = []
    for part in content:
        kind = part.get("type")
        if kind == "text":
            if part.get("text"):
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            parts.append(_media_part(part["image_url"]["url"]))
        elif kind == "input_audio":
            audio = part["input_audio"]
            parts.append({"inlineData": {"mimeType": f"audio/{audio['format']}", "data": audio["data"]}})
        elif kind == "file" and isinstance(part.get("file", {}).get("file_data"), str):
            parts.append(_media_part(part["file"]["file_data"]))
        else:
            raise InvalidRequest(f"Gemini cannot take a '{kind}' content part", param="messages")
    return parts


def _media_part(url: str) -> JSON:
    """A data URL becomes inline bytes; any other URL is passed as a file URI for Gemini to fetch."""
    if not url.startswith("data:"):
        return {"fileData": {"fileUri": url}}
    header, comma, data = url[5:].partition(",")
    mime_type, _, encoding = header.partition(";")
    if not comma or encoding != "base64":
        raise InvalidRequest("image data URLs must be base64 ('data:<type>;base64,...')", param="messages")
    return {"inlineData": {"mimeType": mime_type or "application/octet-stream", "data": data}}


def _assistant_parts(message: JSON, call_names: dict[str, str]) -> list[JSON]:
    parts: list[JSON] = [{"text": text} for text in _texts(message.get("content"))]
    for position, call in enumerate(message.get("tool_calls") or ()):
        function = call["function"]
        call_names[call["id"]] = function["name"]
        part: JSON = {
            "functionCall": {"name": function["name"], "args": _arguments(function.get("arguments"))}
        }
        signature = ((call.get("extra_content") or {}).get("google") or {}).get("thought_signature")
        if signature or position == 0:
            part["thoughtSignature"] = signature or PLACEHOLDER_SIGNATURE
        parts.append(part)
    return parts


def _arguments(raw: Any) -> JSON:
    if not raw:
        return {}
    try:
        args = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    except orjson.JSONDecodeError:
        raise InvalidRequest("tool_calls[].function.arguments is not valid JSON", param="messages") from None
    if not isinstance(args, dict):
        raise InvalidRequest("tool_calls[].function.arguments must be a JSON object", param="messages")
    return args


def _function_response(message: JSON, call_names: dict[str, str]) -> JSON:
    if message.get("role") == "function":  # the deprecated form names the function itself
        name = message.get("name")
    else:
        name = call_names.get(message.get("tool_call_id", ""))
    if not name:
        raise InvalidRequest(
            f"tool message '{message.get('tool_call_id')}' answers no earlier assistant tool call",
            param="messages",
        )
    return {"functionResponse": {"name": name, "response": _function_output(message.get("content"))}}


def _function_output(content: Any) -> JSON:
    """Gemini wants an object; the API reference says to put a plain result under ``output``."""
    text = "".join(_texts(content))
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        value = text
    return value if isinstance(value, dict) else {"output": value}


# -- tools and generation settings ----------------------------------------------------------------------


def _tools(tools: list[JSON] | None) -> list[JSON]:
    declarations: list[JSON] = []
    for tool in tools or ():
        if tool.get("type") != "function":
            raise InvalidRequest(
                f"Gemini supports function tools only, not '{tool.get('type')}'", param="tools"
            )
        function = tool["function"]
        declaration: JSON = {"name": function["name"]}
        if function.get("description"):
            declaration["description"] = function["description"]
        if function.get("parameters"):
            declaration["parametersJsonSchema"] = function["parameters"]
        declarations.append(declaration)
    return [{"functionDeclarations": declarations}] if declarations else []


def _function_calling_config(choice: Any) -> JSON:
    if isinstance(choice, str):
        if choice not in _TOOL_CHOICE_MODES:
            raise InvalidRequest(f"unknown tool_choice '{choice}'", param="tool_choice")
        return {"mode": _TOOL_CHOICE_MODES[choice]}
    # {"type": "function", "function": {"name": ...}}: force that one function.
    return {"mode": "ANY", "allowedFunctionNames": [choice["function"]["name"]]}


def _generation_config(body: JSON) -> JSON:
    config: JSON = {"candidateCount": 1}
    if (body.get("n") or 1) != 1:
        raise InvalidRequest("Gemini adapter returns one choice; n must be 1", param="n")
    for ours, theirs in (
        ("temperature", "temperature"),
        ("top_p", "topP"),
        ("seed", "seed"),
        ("presence_penalty", "presencePenalty"),
        ("frequency_penalty", "frequencyPenalty"),
    ):
        if body.get(ours) is not None:
            config[theirs] = body[ours]
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    if max_tokens is not None:
        config["maxOutputTokens"] = max_tokens
    stop = body.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    config.update(_response_format(body.get("response_format")))
    return config


def _response_format(response_format: JSON | None) -> JSON:
    kind = (response_format or {}).get("type", "text")
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = response_format["json_schema"].get("schema") if response_format else None
        config: JSON = {"responseMimeType": "application/json"}
        if schema:
            config["responseJsonSchema"] = schema
        return config
    return {}


# -- embeddings -----------------------------------------------------------------------------------------


def embedding_inputs(body: JSON) -> list[str]:
    """The texts of an OpenAI embeddings request; Gemini embeds text only, not token-id arrays."""
    raw = body.get("input")
    texts = [raw] if isinstance(raw, str) else raw
    if not isinstance(texts, list) or not texts or not all(isinstance(text, str) for text in texts):
        raise UpstreamError(
            "Gemini embeds text, not token ids: send 'input' as a string or a list of strings"
            " (LangChain's OpenAIEmbeddings sends token ids unless check_embedding_ctx_length=False)",
            provider="gemini",
            code="token_ids_unsupported" if _token_ids(raw) else "invalid_input",
            status=400,
        )
    return texts


def _token_ids(raw: object) -> bool:
    """An OpenAI token-id input: a list of ints, or a list of such lists."""
    if not isinstance(raw, list) or not raw:
        return False
    return all(isinstance(item, int) for item in raw) or all(isinstance(item, list) for item in raw)


def to_gemini_embedding_request(body: JSON, model: str) -> JSON:
    """The ``batchEmbedContents`` body: one request per input, each naming the model again (required)."""
    requests = []
    for text in embedding_inputs(body):
        request: JSON = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if body.get("dimensions"):
            request["outputDimensionality"] = body["dimensions"]
        requests.append(request)
    return {"requests": requests}

"""Anthropic Messages API requests from OpenAI Chat Completions bodies: pure functions.

Written against Anthropic's "Messages" API reference, "Tool use" (tool_choice, tool_result) and "Vision"
(image sources). The response side and the adapter are in :mod:`modelyard.providers.anthropic`.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.errors import InvalidRequest
from modelyard.providers.base import JSON

DEFAULT_API_VERSION = "2023-06-01"
#: Anthropic requires ``max_tokens``; OpenAI does not. 4096 is the largest output limit every Claude model
#: accepts (Claude 3 Haiku's ceiling), so a request that sets no limit is valid on all of them.
DEFAULT_MAX_TOKENS = 4096
#: The tool that carries a ``json_schema`` answer (see :func:`_apply_response_format`).
JSON_TOOL = "json_response"
JSON_OBJECT_INSTRUCTION = "Answer with one valid JSON object only: no prose and no code fences around it."

_TOOL_CHOICE = {"auto": "auto", "required": "any", "none": "none"}


def to_anthropic_request(body: JSON, upstream_model: str, *, stream: bool = False) -> JSON:
    """Translate a validated OpenAI Chat Completions body into a Messages API body."""
    if (body.get("n") or 1) > 1:
        raise InvalidRequest("Anthropic models return one choice per request; set n to 1", param="n")
    system, messages = translate_messages(body.get("messages") or [])
    request: JSON = {"model": upstream_model, "max_tokens": max_tokens_of(body), "messages": messages}
    tools = [tool_to_anthropic(tool) for tool in body.get("tools") or []]
    tool_choice = tool_choice_to_anthropic(body.get("tool_choice"), body.get("parallel_tool_calls"))
    tool_choice = _apply_response_format(body.get("response_format"), system, tools, tool_choice)
    if system:
        request["system"] = "\n\n".join(system)
    if tools:
        request["tools"] = tools
        if tool_choice is not None:
            request["tool_choice"] = tool_choice
    stop = body.get("stop")
    if stop:
        request["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    # Passed through unchanged: Anthropic accepts temperature 0-1 (OpenAI 0-2) and answers a value out of
    # range with a 400 that names it, which tells the client more than a silent clamp would.
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            request[name] = body[name]
    if body.get("user"):
        request["metadata"] = {"user_id": body["user"]}
    if stream:
        request["stream"] = True
    return request


def max_tokens_of(body: JSON) -> int:
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            return int(body[name])
    return DEFAULT_MAX_TOKENS


def translate_messages(messages: list[JSON]) -> tuple[list[str], list[JSON]]:
    """Split OpenAI messages into system texts and Anthropic turns.

    Consecutive turns of one role are merged, so the results of parallel tool calls (OpenAI: one ``tool``
    message each) land in the single user turn Anthropic expects after the assistant's ``tool_use`` blocks.
    """
    system: list[str] = []
    turns: list[JSON] = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(_text_of(message.get("content")))
            continue
        if role == "user":
            blocks = _user_blocks(message.get("content"))
        elif role == "assistant":
            blocks = _assistant_blocks(message)
        elif role == "tool":
            role, blocks = "user", [_tool_result_block(message)]
        else:
            raise InvalidRequest(
                f"message role '{role}' cannot be sent to Anthropic; allowed: system, developer, user, "
                "assistant, tool",
                param="messages",
            )
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def _user_blocks(content: Any) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    blocks: list[JSON] = []
    for part in content or []:
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(image_block(part["image_url"]["url"]))
        else:
            raise InvalidRequest(
                f"content part type '{kind}' is not supported for Anthropic models; allowed: text, image_url",
                param="messages",
            )
    return blocks


def image_block(url: str) -> JSON:
    """An OpenAI image URL as an Anthropic image block: data URLs inline (base64), others by URL."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type, _, encoding = header.removeprefix("data:").partition(";")
        if encoding != "base64" or not data:
            raise InvalidRequest(
                "image data URLs must be base64: data:<media type>;base64,<data>", param="messages"
            )
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise InvalidRequest("image_url.url must be an http(s) URL or a base64 data URL", param="messages")


def _assistant_blocks(message: JSON) -> list[JSON]:
    blocks: list[JSON] = []
    text = _text_of(message.get("content"))
    if text:  # Anthropic rejects empty text blocks, and a tool-calling turn often has no text
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        function = call["function"]
        blocks.append(
            {"type": "tool_use", "id": call["id"], "name": function["name"], "input": _arguments(function)}
        )
    return blocks


def _arguments(function: JSON) -> Any:
    raw = function.get("arguments") or "{}"
    try:
        arguments = orjson.loads(raw)
    except orjson.JSONDecodeError:
        arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest(
            f"tool call '{function.get('name')}' has arguments that are not a JSON object", param="messages"
        )
    return arguments


def _tool_result_block(message: JSON) -> JSON:
    return {
        "type": "tool_result",
        "tool_use_id": message.get("tool_call_id"),
        "content": _text_of(message.get("content")),
    }


def tool_to_anthropic(tool: JSON) -> JSON:
    if tool.get("type") != "function":
        raise InvalidRequest(
            f"tool type '{tool.get('type')}' is not supported; allowed: function", param="tools"
        )
    function = tool["function"]
    result: JSON = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        result["description"] = function["description"]
    return result


def tool_choice_to_anthropic(choice: Any, parallel_tool_calls: bool | None) -> JSON | None:
    """OpenAI ``tool_choice`` (auto / required / none / a named function) as Anthropic's object."""
    result: JSON | None
    if choice is None:
        result = {"type": "auto"} if parallel_tool_calls is False else None
    elif isinstance(choice, str):
        if choice not in _TOOL_CHOICE:
            raise InvalidRequest(
                f"tool_choice '{choice}' is not supported; allowed: auto, required, none", param="tool_choice"
            )
        result = {"type": _TOOL_CHOICE[choice]}
    else:
        result = {"type": "tool", "name": choice["function"]["name"]}
    if parallel_tool_calls is False and result is not None and result["type"] != "none":
        result["disable_parallel_tool_use"] = True
    return result


def _apply_response_format(
    response_format: JSON | None, system: list[str], tools: list[JSON], tool_choice: JSON | None
) -> JSON | None:
    """Express OpenAI's ``response_format`` with Anthropic's features; return the tool_choice to send.

    ``json_schema``: one extra tool whose ``input_schema`` is the schema, forced with tool_choice, and its
    input is returned as the message text. Tool inputs are validated against the schema on every Claude
    model and API version, unlike the newer native structured-output option. When the client also sent
    tools (and did not say ``none``), its own tool_choice stands, so the model may call them instead.
    ``json_object``: Anthropic has no JSON mode; a system instruction is the one method that works on all
    models (prefilling ``{`` is refused by the newest ones).
    """
    kind = (response_format or {}).get("type")
    if kind == "json_object":
        system.append(JSON_OBJECT_INSTRUCTION)
    elif kind == "json_schema":
        spec = (response_format or {}).get("json_schema") or {}
        description = spec.get("description") or f"Give the answer as a '{spec.get('name', 'JSON')}' object."
        schema = spec.get("schema") or {"type": "object"}
        has_client_tools = bool(tools)
        tools.append({"name": JSON_TOOL, "description": description, "input_schema": schema})
        if not has_client_tools or (tool_choice or {}).get("type") == "none":
            return {"type": "tool", "name": JSON_TOOL}
    return tool_choice


def json_tool_of(body: JSON) -> str | None:
    """The tool name that carries a structured answer for this request, if any."""
    return JSON_TOOL if (body.get("response_format") or {}).get("type") == "json_schema" else None

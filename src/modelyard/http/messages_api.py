"""Anthropic's Messages API inbound (``POST /v1/messages``) as pure translations to and from Chat Completions.

This is how the Anthropic SDK and Claude Code are pointed at a gateway (``base_url``). The request is
translated to a chat body before admission, so every provider kind serves it with the routing, policy,
budgets and metering chat gets, and the answer is translated back (docs.anthropic.com/en/api/messages).

Translated: ``system`` (a string or text blocks), ``messages`` with ``text``, ``image`` (base64 or URL),
``tool_use`` and ``tool_result`` blocks, ``tools`` (``input_schema``), ``tool_choice`` (auto, any, tool,
none), ``max_tokens``, ``stop_sequences``, ``temperature``, ``top_p``, ``metadata.user_id``, ``stream``.
``thinking`` blocks sent back are dropped (chat has no slot for them), ``top_k`` too (OpenAI has none).
``cache_control`` markers are dropped on this path: the provider's own prompt caching still applies and is
priced from the usage it reports.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, Tag, with_config
from typing_extensions import TypedDict

from modelyard.errors import InvalidRequest, ModelyardError
from modelyard.http.request_shapes import by_type
from modelyard.providers.base import JSON

_Allow = ConfigDict(extra="allow")


@with_config(_Allow)
class _Block(TypedDict):
    type: str


@with_config(_Allow)
class _TextBlock(TypedDict):
    type: Literal["text"]
    text: str


@with_config(_Allow)
class _ToolUseBlock(TypedDict):
    type: Literal["tool_use"]
    id: str
    name: str
    input: NotRequired[dict[str, Any]]


@with_config(_Allow)
class _ToolResultBlock(TypedDict):
    type: Literal["tool_result"]
    tool_use_id: str
    content: NotRequired[str | list[dict[str, Any]]]
    is_error: NotRequired[bool]


#: The blocks translated to chat are checked in full (a tool_use without its id, a tool_result whose
#: content is a number: each failed the translation with a 500); others are judged in :func:`to_chat`.
_ContentBlock = Annotated[
    Annotated[_TextBlock, Tag("[text]")]
    | Annotated[_ToolUseBlock, Tag("[tool_use]")]
    | Annotated[_ToolResultBlock, Tag("[tool_result]")]
    | Annotated[_Block, Tag("[other]")],
    by_type("text", "tool_use", "tool_result"),
]


@with_config(_Allow)
class _ToolChoice(TypedDict):
    type: Literal["auto", "any", "none", "tool"]


@with_config(_Allow)
class _NamedToolChoice(TypedDict):
    type: Literal["tool"]
    name: str


#: ``{"type": "tool"}`` names its tool (without one, a null function name went upstream).
_ToolChoiceShape = Annotated[
    Annotated[_NamedToolChoice, Tag("[tool]")] | Annotated[_ToolChoice, Tag("[other]")],
    by_type("tool"),
]


@with_config(_Allow)
class _Message(TypedDict):
    role: Literal["user", "assistant"]
    content: str | list[_ContentBlock]


@with_config(_Allow)
class MessagesRequest(TypedDict):
    """The body of ``POST /v1/messages`` as the gateway accepts it (unknown members pass)."""

    model: str
    max_tokens: Annotated[int, Field(ge=1)]
    messages: Annotated[list[_Message], Field(min_length=1)]
    system: NotRequired[str | list[_TextBlock]]
    tools: NotRequired[list[dict[str, Any]]]
    tool_choice: NotRequired[_ToolChoiceShape]
    stop_sequences: NotRequired[list[str]]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=1)]]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)]]
    top_k: NotRequired[int]
    stream: NotRequired[bool]
    metadata: NotRequired[dict[str, Any]]


# -- request --------------------------------------------------------------------------------------------


def to_chat(body: JSON) -> JSON:
    """The Chat Completions body of a (checked) Messages request."""
    messages: list[JSON] = []
    system = body.get("system")
    if system:
        text = system if isinstance(system, str) else "".join(b.get("text", "") for b in system)
        messages.append({"role": "system", "content": text})
    for i, message in enumerate(body["messages"]):
        messages.extend(_chat_messages(message, i))
    chat: JSON = {"model": body["model"], "messages": messages, "max_tokens": body["max_tokens"]}
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stop_sequences"):
        chat["stop"] = body["stop_sequences"]
    user = (body.get("metadata") or {}).get("user_id")
    if isinstance(user, str):
        chat["user"] = user
    if body.get("tools"):
        chat["tools"] = [_chat_tool(tool, i) for i, tool in enumerate(body["tools"])]
    if body.get("tool_choice"):
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    if body.get("stream") is True:
        chat["stream"], chat["stream_options"] = True, {"include_usage": True}
    return chat


def _chat_messages(message: JSON, index: int) -> list[JSON]:
    role, content = message["role"], message["content"]
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts: list[JSON] = []
    calls: list[JSON] = []
    results: list[JSON] = []
    for block in content:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block.get("text", "")})
        elif kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": _image_url(block, index)}})
        elif kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            calls.append(
                {
                    "id": block["id"],
                    "type": "function",
                    "function": {"name": block["name"], "arguments": arguments},
                }
            )
        elif kind == "tool_result" and role == "user":
            results.append(
                {"role": "tool", "tool_call_id": block["tool_use_id"], "content": _result_text(block)}
            )
        elif kind in ("thinking", "redacted_thinking"):
            continue  # a reasoning model's thoughts sent back: chat has nowhere to put them
        else:
            raise InvalidRequest(
                f"messages[{index}].content: block type '{kind}' is not supported here (text, image,"
                " tool_use from the assistant, tool_result from the user)",
                param=f"messages[{index}].content",
            )
    out: list[JSON] = list(results)  # tool results answer the previous turn's calls: they come first
    if role == "assistant":
        text = "".join(p["text"] for p in parts if p["type"] == "text")
        assistant: JSON = {"role": "assistant", "content": text or None}
        if calls:
            assistant["tool_calls"] = calls
        if text or calls:
            out.append(assistant)
    elif parts:
        plain = all(p["type"] == "text" for p in parts)
        out.append({"role": "user", "content": "".join(p["text"] for p in parts) if plain else parts})
    return out


def _image_url(block: JSON, index: int) -> str:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        return f"data:{source.get('media_type')};base64,{source.get('data')}"
    if source.get("type") == "url":
        return str(source.get("url"))
    raise InvalidRequest(f"messages[{index}]: image source must be base64 or url", param=f"messages[{index}]")


def _result_text(block: JSON) -> str:
    content = block.get("content")
    text = (
        content
        if isinstance(content, str)
        else "".join(b.get("text", "") for b in content or () if isinstance(b, dict))
    )
    return f"Error: {text}" if block.get("is_error") else text


def _chat_tool(tool: JSON, index: int) -> JSON:
    if "input_schema" not in tool:
        raise InvalidRequest(
            f"tools[{index}]: server tools ('{tool.get('type')}') run inside Anthropic's service; this gateway"
            " serves client tools (name, description, input_schema) only",
            code="unsupported_tool",
            param=f"tools[{index}]",
        )
    function: JSON = {"name": tool["name"], "parameters": tool["input_schema"]}
    if tool.get("description"):
        function["description"] = tool["description"]
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: JSON) -> Any:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"auto": "auto", "any": "required", "none": "none"}.get(str(kind), "auto")


# -- response -------------------------------------------------------------------------------------------

#: Chat finish reasons → Anthropic stop reasons.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def usage_of(chat_usage: Any) -> JSON:
    """Chat usage → Anthropic's, whose ``input_tokens`` leaves out the tokens read from the cache."""
    usage = chat_usage if isinstance(chat_usage, dict) else {}
    cached = int((usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    return {
        "input_tokens": int(usage.get("prompt_tokens") or 0) - cached,
        "output_tokens": int(usage.get("completion_tokens") or 0),
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def tool_use_block(call: JSON) -> JSON:
    function = call.get("function") or {}
    try:
        arguments = orjson.loads(function.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        arguments = {}
    return {
        "type": "tool_use",
        "id": call.get("id") or new_id("toolu"),
        "name": function.get("name", ""),
        "input": arguments,
    }


def from_chat(chat: JSON, request: JSON) -> JSON:
    """The Anthropic ``message`` of a chat.completion answer."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[JSON] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    content += [tool_use_block(call) for call in message.get("tool_calls") or ()]
    return {
        "id": new_id("msg"),
        "type": "message",
        "role": "assistant",
        "model": chat.get("model") or request.get("model"),
        "content": content,
        "stop_reason": STOP_REASONS.get(str(choice.get("finish_reason")), "end_turn"),
        "stop_sequence": None,
        "usage": usage_of(chat.get("usage")),
    }


#: Our error kinds → Anthropic's error types (docs.anthropic.com/en/api/errors).
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


def error_body(error: ModelyardError) -> JSON:
    """An error in Anthropic's shape, so the SDK shows its message."""
    kind = _ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}

"""OpenAI's Responses API (``POST /v1/responses``) as pure translations to and from Chat Completions.

The gateway's core speaks Chat Completions, and every provider kind serves it; a Responses request is
translated to a chat body before admission (so routing, data-class policy, PII redaction, budgets, the
cache and metering see what they always see), and the chat answer is translated back. Streams are
translated chunk by chunk in :mod:`modelyard.http.responses_stream`.

What translates (platform.openai.com/docs/api-reference/responses/create):

- ``input`` as a string, or a list of items: messages (``role`` + ``content`` string or
  ``input_text`` / ``output_text`` / ``input_image`` parts), ``function_call`` and
  ``function_call_output`` items (a tool round trip), ``reasoning`` items (dropped: chat has no slot);
- ``instructions`` (a system message first), ``tools`` of type ``function``, ``tool_choice``,
  ``text.format`` (``json_schema`` / ``json_object`` → ``response_format``), ``max_output_tokens``,
  ``temperature``, ``top_p``, ``parallel_tool_calls``, ``metadata`` (``metadata.workload`` names the
  workload as on chat), ``user``, ``stream``;
- the answer: ``output`` message and ``function_call`` items, ``status`` (``incomplete`` with
  ``incomplete_details.reason = max_output_tokens`` when the model hit its limit), ``usage``.

What is refused, with a message saying why: ``previous_response_id`` and ``conversation`` (the gateway
stores no responses: send the whole conversation in ``input``), built-in tools (web search, file search,
computer use: OpenAI runs those, not the model), ``background``.
"""

from __future__ import annotations

import secrets
from time import time
from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, Tag, with_config
from typing_extensions import TypedDict

from modelyard.errors import InvalidRequest
from modelyard.http.request_shapes import by_type
from modelyard.providers.base import JSON

_Allow = ConfigDict(extra="allow")


@with_config(_Allow)
class _InputItem(TypedDict):
    type: NotRequired[str]
    role: NotRequired[Literal["user", "assistant", "system", "developer"]]
    content: NotRequired[str | list[dict[str, Any]]]


@with_config(_Allow)
class _Tool(TypedDict):
    type: str


@with_config(_Allow)
class _FunctionTool(TypedDict):
    type: Literal["function"]
    name: str


#: A function tool names its function (without a name, a null one went upstream: a 502 for the client's
#: mistake); built-in tools pass here and are refused with their reason by :func:`to_chat`.
_ToolShape = Annotated[
    Annotated[_FunctionTool, Tag("[function]")] | Annotated[_Tool, Tag("[other]")], by_type("function")
]


@with_config(_Allow)
class _NamedToolChoice(TypedDict):
    """``{"type": "function", "name": ...}``: the one object form chat can express (any other object
    failed the Anthropic and Gemini translations with a 500)."""

    type: Literal["function"]
    name: str


@with_config(_Allow)
class _TextConfig(TypedDict):
    format: NotRequired[dict[str, Any]]


@with_config(_Allow)
class ResponsesRequest(TypedDict):
    """The request body of ``POST /v1/responses`` as the gateway accepts it (unknown members pass)."""

    model: NotRequired[str]
    input: str | Annotated[list[_InputItem], Field(min_length=1)]
    instructions: NotRequired[str | None]
    tools: NotRequired[list[_ToolShape] | None]
    tool_choice: NotRequired[Literal["none", "auto", "required"] | _NamedToolChoice | None]
    text: NotRequired[_TextConfig | None]
    max_output_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    parallel_tool_calls: NotRequired[bool | None]
    stream: NotRequired[bool | None]
    store: NotRequired[bool | None]
    metadata: NotRequired[dict[str, Any] | None]
    user: NotRequired[str]


#: Members a stateless gateway cannot honour, and why (the client's fix is in the message).
_STATEFUL = {
    "previous_response_id": "this gateway stores no responses, so it cannot continue one by id; send the"
    " whole conversation in 'input' (earlier output items included)",
    "conversation": "this gateway stores no conversations; send the whole conversation in 'input'",
    "background": "this gateway runs no background responses; call without 'background'",
}


def refuse_unsupported(body: JSON) -> None:
    """Refuse what cannot be translated, naming the parameter and the fix."""
    for name, why in _STATEFUL.items():
        if body.get(name):
            raise InvalidRequest(f"{name}: {why}", code="unsupported_parameter", param=name)
    for i, tool in enumerate(body.get("tools") or ()):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else type(tool).__name__
            raise InvalidRequest(
                f"tools[{i}]: built-in tool '{kind}' runs inside OpenAI's service, not in a model; this gateway"
                " serves function tools only",
                code="unsupported_tool",
                param=f"tools[{i}].type",
            )


# -- request --------------------------------------------------------------------------------------------


def to_chat(body: JSON) -> JSON:
    """The Chat Completions body of a (checked) Responses request."""
    refuse_unsupported(body)
    messages: list[JSON] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    raw_input = body["input"]
    if isinstance(raw_input, str):
        messages.append({"role": "user", "content": raw_input})
    else:
        for i, item in enumerate(raw_input):
            _add_item(messages, item, i)
    chat: JSON = {"messages": messages}
    for name in ("model", "temperature", "top_p", "parallel_tool_calls", "metadata", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    if body.get("tools"):
        chat["tools"] = [_chat_tool(tool) for tool in body["tools"]]
    if body.get("tool_choice") is not None:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    response_format = _response_format((body.get("text") or {}).get("format"))
    if response_format is not None:
        chat["response_format"] = response_format
    if body.get("stream") is True:
        # Usage is always asked for: the Responses stream ends with it (response.completed).
        chat["stream"], chat["stream_options"] = True, {"include_usage": True}
    return chat


def _add_item(messages: list[JSON], item: JSON, index: int) -> None:
    kind = item.get("type", "message")
    if kind == "message" or (kind is None and "role" in item):
        role = item.get("role")
        if role not in ("user", "assistant", "system", "developer"):
            raise InvalidRequest(f"input[{index}].role: expected user, assistant, system or developer")
        messages.append({"role": role, "content": _content(item.get("content"), index)})
    elif kind == "function_call":
        call = {
            "id": item.get("call_id") or item.get("id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or "{}"},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and "tool_calls" in last:
            last["tool_calls"].append(call)
        elif last is not None and last["role"] == "assistant" and isinstance(last.get("content"), str):
            last["tool_calls"] = [call]  # the text the model said before calling
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        messages.append(
            {
                "role": "tool",
                "tool_call_id": item.get("call_id"),
                "content": output if isinstance(output, str) else _text_of(output),
            }
        )
    elif kind == "reasoning":
        return  # a reasoning model's summary: chat has nowhere to put it, and models do not need it back
    else:
        raise InvalidRequest(
            f"input[{index}].type: '{kind}' is not supported; use message, function_call or function_call_output",
            param=f"input[{index}].type",
        )


def _content(content: Any, index: int) -> str | list[JSON]:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise InvalidRequest(f"input[{index}].content: a string or a list of parts", param=f"input[{index}]")
    parts: list[JSON] = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "input_image" and isinstance(part.get("image_url"), str) and part["image_url"]:
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        else:
            raise InvalidRequest(
                f"input[{index}].content: part type '{kind}' is not supported (input_text, output_text,"
                " input_image with image_url)",
                param=f"input[{index}].content",
            )
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)  # plain text: what every provider takes
    return parts


def _text_of(output: Any) -> str:
    if isinstance(output, list):
        return "".join(p.get("text", "") for p in output if isinstance(p, dict))
    return "" if output is None else str(output)


def _chat_tool(tool: JSON) -> JSON:
    function: JSON = {"name": tool.get("name")}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _response_format(fmt: Any) -> JSON | None:
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_object":
        return {"type": "json_object"}
    if fmt["type"] == "json_schema":
        schema: JSON = {"name": fmt.get("name", "response"), "schema": fmt.get("schema", {})}
        if fmt.get("strict") is not None:
            schema["strict"] = fmt["strict"]
        return {"type": "json_schema", "json_schema": schema}
    raise InvalidRequest(
        f"text.format.type: '{fmt['type']}' is not supported (text, json_object, json_schema)",
        param="text.format.type",
    )


# -- response -------------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def skeleton(request: JSON, response_id: str, model: str, status: str) -> JSON:
    """The members of a Response object that echo the request (the same in every stream event)."""
    fmt = (request.get("text") or {}).get("format") or {"type": "text"}
    return {
        "id": response_id,
        "object": "response",
        "created_at": int(time()),
        "status": status,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "model": model,
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "previous_response_id": None,
        "store": False,  # the gateway keeps no responses (its ledger keeps metadata, content if configured)
        "temperature": request.get("temperature"),
        "text": {"format": fmt},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "metadata": request.get("metadata") or {},
        "usage": None,
    }


def message_item(item_id: str, text: str, status: str = "completed") -> JSON:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


def function_call_item(
    item_id: str, call_id: str, name: str, arguments: str, status: str = "completed"
) -> JSON:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def usage_of(chat_usage: Any) -> JSON | None:
    """Chat's ``usage`` → the Responses ``usage`` object (same counts, other names)."""
    if not isinstance(chat_usage, dict):
        return None
    prompt = int(chat_usage.get("prompt_tokens") or 0)
    completion = int(chat_usage.get("completion_tokens") or 0)
    cached = int((chat_usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0)
    reasoning = int((chat_usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0)
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + completion,
    }


def finish_status(finish_reason: str | None) -> tuple[str, JSON | None]:
    """The Response's ``status`` and ``incomplete_details`` for a chat finish reason."""
    if finish_reason == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    if finish_reason == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    return "completed", None


def from_chat(chat: JSON, request: JSON) -> JSON:
    """The Response object of a chat.completion answer."""
    choice = (chat.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    output: list[JSON] = []
    if message.get("content"):
        output.append(message_item(new_id("msg"), message["content"]))
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        output.append(
            function_call_item(
                new_id("fc"),
                call.get("id") or new_id("call"),
                function.get("name", ""),
                function.get("arguments", ""),
            )
        )
    status, incomplete = finish_status(choice.get("finish_reason"))
    response = skeleton(request, new_id("resp"), str(chat.get("model") or request.get("model") or ""), status)
    response["incomplete_details"] = incomplete
    response["output"] = output
    response["usage"] = usage_of(chat.get("usage"))
    return response

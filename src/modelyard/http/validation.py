"""Request bodies checked against OpenAI's published request shapes before anything goes upstream.

Validation only checks: the client's body is forwarded as it came (unknown, newer parameters included),
so a field OpenAI adds tomorrow still reaches providers that understand it. Errors name the parameter the
way OpenAI does (``messages[0].role``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

from pydantic import ConfigDict, Field, Tag, TypeAdapter, ValidationError, with_config
from typing_extensions import TypedDict

from modelyard.errors import InvalidRequest
from modelyard.http.completions_api import CompletionRequest
from modelyard.http.messages_api import MessagesRequest
from modelyard.http.plain_chat import NotPlain, decode_plain
from modelyard.http.request_shapes import by_type
from modelyard.http.rerank_api import RerankRequest
from modelyard.http.responses_api import ResponsesRequest

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]
_Allow = ConfigDict(extra="allow")


@with_config(_Allow)
class _FunctionCall(TypedDict):
    name: str
    arguments: str


@with_config(_Allow)
class _ToolCall(TypedDict):
    id: str
    type: NotRequired[str]
    function: _FunctionCall


@with_config(_Allow)
class _ContentPart(TypedDict):
    type: str


@with_config(_Allow)
class _TextPart(TypedDict):
    type: Literal["text"]
    text: str


@with_config(_Allow)
class _ImageUrl(TypedDict):
    url: str
    detail: NotRequired[str]


@with_config(_Allow)
class _ImagePart(TypedDict):
    type: Literal["image_url"]
    image_url: _ImageUrl


#: The parts the adapters translate are checked in full (a text part's text, an image part's URL: one
#: without them failed the Anthropic and Gemini translations with a 500); any other type passes through
#: for the upstream to judge.
_Part = Annotated[
    Annotated[_TextPart, Tag("[text]")]
    | Annotated[_ImagePart, Tag("[image_url]")]
    | Annotated[_ContentPart, Tag("[other]")],
    by_type("text", "image_url"),
]


@with_config(_Allow)
class _Message(TypedDict):
    role: Role
    content: NotRequired[str | list[_Part] | None]
    name: NotRequired[str]
    tool_calls: NotRequired[list[_ToolCall]]
    tool_call_id: NotRequired[str]


@with_config(_Allow)
class _Function(TypedDict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.:-]{1,128}$")]
    description: NotRequired[str]
    parameters: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]


@with_config(_Allow)
class _Tool(TypedDict):
    type: Literal["function"]
    function: _Function


@with_config(_Allow)
class _JsonSchema(TypedDict):
    name: str
    schema: NotRequired[dict[str, Any]]
    strict: NotRequired[bool | None]
    description: NotRequired[str]


@with_config(_Allow)
class _PlainFormat(TypedDict):
    # json_schema is picked out before this member is tried: listed so a wrong type names all three.
    type: Literal["text", "json_object", "json_schema"]


@with_config(_Allow)
class _JsonSchemaFormat(TypedDict):
    type: Literal["json_schema"]
    json_schema: _JsonSchema


#: ``json_schema`` needs its schema object (without one the Gemini translation failed with a 500).
_ResponseFormat = Annotated[
    Annotated[_PlainFormat, Tag("[other]")] | Annotated[_JsonSchemaFormat, Tag("[json_schema]")],
    by_type("json_schema"),
]


@with_config(_Allow)
class _NamedFunction(TypedDict):
    name: str


@with_config(_Allow)
class _NamedToolChoice(TypedDict):
    """``{"type": "function", "function": {"name": ...}}``: the one object form the adapters translate
    (tools are functions only); any other object failed the Anthropic and Gemini translations."""

    type: Literal["function"]
    function: _NamedFunction


@with_config(_Allow)
class _StreamOptions(TypedDict):
    include_usage: NotRequired[bool]


@with_config(_Allow)
class ChatRequest(TypedDict):
    model: NotRequired[str]
    messages: Annotated[list[_Message], Field(min_length=1)]
    stream: NotRequired[bool | None]
    stream_options: NotRequired[_StreamOptions | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    n: NotRequired[Literal[1] | None]
    max_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    max_completion_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    stop: NotRequired[str | list[str] | None]
    tools: NotRequired[list[_Tool] | None]
    tool_choice: NotRequired[Literal["none", "auto", "required"] | _NamedToolChoice | None]
    parallel_tool_calls: NotRequired[bool | None]
    response_format: NotRequired[_ResponseFormat | None]
    seed: NotRequired[int | None]
    user: NotRequired[str]
    metadata: NotRequired[dict[str, Any] | None]


@with_config(_Allow)
class EmbeddingRequest(TypedDict):
    model: NotRequired[str]
    input: str | Annotated[list[str], Field(min_length=1)] | list[int] | list[list[int]]
    encoding_format: NotRequired[Literal["float", "base64"]]
    dimensions: NotRequired[Annotated[int, Field(ge=1)]]
    user: NotRequired[str]
    metadata: NotRequired[dict[str, Any] | None]


_CHAT = TypeAdapter(ChatRequest)
_EMBEDDING = TypeAdapter(EmbeddingRequest)
_RESPONSES = TypeAdapter(ResponsesRequest)
_COMPLETION = TypeAdapter(CompletionRequest)
_MESSAGES = TypeAdapter(MessagesRequest)
_RERANK = TypeAdapter(RerankRequest)


#: Parts of a pydantic error location that name a union member's type, not a field.
_TYPE_TAGS = frozenset({"str", "bool", "int", "float", "none", "dict", "list", "typed-dict"})


def _param(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (
            part not in _TYPE_TAGS
            and "[" not in part
            and not part.startswith(("function-", "constrained-"))
            and not (part.startswith("_") and part[1:2].isupper())  # a union member: our TypedDict's name
        ):
            out += f".{part}" if out else part
    return out


def _check(adapter: TypeAdapter[Any], body: Any) -> None:
    try:
        # The core validator itself: TypeAdapter.validate_python is a Python wrapper that only checks and
        # passes on options we do not use (~1.5k instructions a request, valgrind).
        adapter.validator.validate_python(body, strict=True)
    except ValidationError as exc:
        # The deepest error: a union (``str | list[part]``) reports one error per member, and the one
        # that went furthest names the field at fault (``messages[0].content[0].image_url.url``).
        error = max(exc.errors(include_url=False), key=lambda e: len(e["loc"]))
        param = _param(error["loc"])
        message = error["msg"]
        if error["type"] == "missing":
            message = "Missing required parameter"
        raise InvalidRequest(f"{param}: {message}" if param else message, param=param or None) from None


def check_depth(raw: bytes, body: Any, limit: int) -> None:
    """Refuse a body nested deeper than ``limit`` levels (objects and arrays).

    orjson parses 1024 levels but encodes only 254, so a deeper field forwarded as it came (tools, a JSON
    schema, an unknown parameter) would fail when the body is sent upstream or logged: a 500 instead of
    the client's 400. Every level opens with a ``{`` or ``[`` and closes with a ``}`` or ``]``, so a body
    shorter than twice the limit is not looked at, and one with fewer opening bytes than the limit (most
    bodies: two C counts, ~0.6 ns a byte) is not walked: walking every element of a long token array
    would cost a hundred times more.
    """
    if len(raw) <= 2 * limit or raw.count(b"{") + raw.count(b"[") <= limit:
        return
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= limit:
                    raise InvalidRequest(
                        f"the JSON body is nested more than {limit} levels deep; the limit is {limit}",
                        code="json_too_deep",
                    )
                stack.append((child, depth + 1))


#: The chat shape's core validator, called directly on the request path (see :func:`_check`).
_CHAT_CORE = _CHAT.validator


def check_chat_request(body: Any, raw: bytes | None = None) -> None:
    """``raw``, the bytes ``body`` was parsed from: a plain body is accepted from them without pydantic
    (:mod:`modelyard.http.plain_chat`); any other is checked in full here."""
    if isinstance(body, dict) and body.get("n") not in (None, 1):
        raise InvalidRequest("n: only n=1 is supported", code="unsupported_value", param="n")
    if raw is not None:
        try:
            decode_plain(raw)
            return
        except NotPlain:
            pass  # not plain: the full check decides, and words the error
    try:
        _CHAT_CORE.validate_python(body, strict=True)
    except ValidationError:
        _check(_CHAT, body)  # raises, naming the parameter


def check_embedding_request(body: Any, raw: bytes | None = None) -> None:
    _check(_EMBEDDING, body)


def check_responses_request(body: Any) -> None:
    _check(_RESPONSES, body)


def check_completion_request(body: Any) -> None:
    _check(_COMPLETION, body)


def check_messages_request(body: Any) -> None:
    _check(_MESSAGES, body)


def check_rerank_request(body: Any) -> None:
    _check(_RERANK, body)

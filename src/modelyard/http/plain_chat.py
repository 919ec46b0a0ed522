"""The plain chat body, recognised in one C pass: most requests are accepted here without pydantic.

:mod:`modelyard.http.validation` checks a chat body against OpenAI's shape with pydantic, which costs ~19k
instructions for a two-message body (valgrind): most of a request's validation. Most bodies are *plain*:
string contents, no tools, no response format. msgspec decodes the raw bytes against the narrower shape
below in ~6k, building nothing but a few slotted objects, and so rules on a plain body cheaply.
(``UnsetType`` marks a field that is not plain whenever it is there at all.)

The contract is one-sided: a body this shape accepts is one the full check accepts (tested with generated
bodies, ``tests/test_plain_chat.py``). Anything else — a list content, tools, a response format, a value
out of range, anything msgspec cannot decode — is *not plain*, and the full check decides it and words its
error. So every field the full shape checks is named here, most of the complex ones as ``None`` only: an
unnamed field would be ignored here and pass unchecked.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

Role = Literal["system", "developer", "user", "assistant", "tool", "function"]


# gc=False: these objects hold only strings, numbers and None (``metadata`` aside, see Chat), never a
# cycle, and are dropped at once; untracked, they cost the cyclic collector nothing (~5.6k against ~8.8k
# instructions a body with tracking).
class _Message(Struct, gc=False):
    role: Role
    content: str | None = None
    name: str = ""
    tool_calls: UnsetType = UNSET  # present at all (the full shape refuses null): not plain
    tool_call_id: str = ""


class _StreamOptions(Struct, gc=False):
    include_usage: bool = False


class _Chat(Struct, gc=False):
    messages: Annotated[list[_Message], Meta(min_length=1)]
    model: str = ""
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    n: Literal[1] | None = None
    max_tokens: Annotated[int, Meta(ge=1)] | None = None
    max_completion_tokens: Annotated[int, Meta(ge=1)] | None = None
    stop: str | list[str] | None = None
    tools: None = None  # tools: not plain
    tool_choice: Literal["none", "auto", "required"] | None = None  # a named tool: not plain
    parallel_tool_calls: bool | None = None
    response_format: None = None  # any format: not plain
    seed: int | None = None
    user: str = ""
    # A dict may hold lists and dicts, and so cycles in principle: decoded into a plain dict, tracked as
    # usual; the Struct itself still need not be.
    metadata: dict[str, Any] | None = None


#: The field names checked here, for the test that holds them to the full shape's.
FIELDS = {"chat": _Chat.__struct_fields__, "message": _Message.__struct_fields__}

#: ``decode_plain(raw)`` returns when ``raw`` is a plain chat body that the full check accepts, and raises
#: :data:`NotPlain` otherwise (the validator calls it directly: it runs on every chat request).
decode_plain = msgspec.json.Decoder(_Chat).decode
NotPlain = msgspec.MsgspecError


def is_plain_chat(raw: bytes) -> bool:
    """Whether ``raw`` is a plain chat body that the full check would accept (see the module docstring)."""
    try:
        decode_plain(raw)
    except NotPlain:
        return False
    return True

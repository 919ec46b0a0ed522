"""The bytes of OpenAI-format server-sent events, read without parsing them: what a run of events holds
(text, a first token, a chunk's model, the markers of the few events metering parses) and whether it is
plain ``data:`` lines. Each check is a pass over the bytes, and the passes are what a relayed stream costs,
so they are few and fast (see ``OpenAIAdapter._relay_block``). And the tool calls a parsed chunk begins.
"""

from __future__ import annotations

import re
from typing import Any

from modelyard.providers.base import JSON, StreamMeter

#: The string values of text and tool-call arguments in raw chunk JSON, compact or with Python's default
#: ``": "`` separator. Escapes count as two characters, which is all a cut stream's estimate needs. One
#: pattern per key: a literal prefix lets the regex engine skip ahead, several times faster than an
#: alternation over a 3 KB run of events.
_CONTENT_VALUES = re.compile(rb'content": ?"([^"\\]*(?:\\.[^"\\]*)*)"')
_ARGUMENT_VALUES = re.compile(rb'arguments": ?"([^"\\]*(?:\\.[^"\\]*)*)"')
#: Markers of the events metering must parse in full (compact and spaced JSON); JSON escapes every quote
#: inside a string, so these cannot occur inside generated text.
FULL_PARSE = (b'"finish_reason":"', b'"finish_reason": "', b'"usage":{', b'"usage": {', b'{"error"')
#: The same, for a run of events: a finish reason and usage (last occurrence), in the JSON form the stream's
#: first event showed — compact, or with a space after each colon (Python servers' ``json.dumps``).
COMPACT = (b'"finish_reason":"', b'"usage":{')
SPACED = (b'"finish_reason": "', b'"usage": {')
ERROR_START = b'{"error"'
#: A line of a run that is neither a ``data:`` field nor an event's end, or a ``[DONE]`` before the end.
NOT_PLAIN = re.compile(rb"\n(?!\n|data: (?!\[DONE\])|\Z)")
#: How a chunk event begins when its server writes ``id`` first (OpenAI, Azure, vLLM, Ollama, TGI): an
#: error is an object of its own (``{"error": ...}``), ``[DONE]`` is no object.
_CHUNK = b'data: {"id"'
_NEXT_CHUNK = b"\n\n" + _CHUNK
#: Non-empty generated text or tool arguments (the first token).
_SOME_CONTENT = re.compile(rb'content": ?"[^"]')
_SOME_ARGUMENTS = re.compile(rb'arguments": ?"[^"]')
#: The model an event names (model ids hold no characters JSON escapes).
MODEL = re.compile(rb'"model": ?"([^"\\]+)"')
DONE_EVENT = b"data: [DONE]\n\n"
#: Marks an event that carries tool-call fragments (generated text has its quotes escaped). On the hot
#: path it is looked for with ``find``, not ``in``: CPython 3.11's ``bytes.__contains__`` first tries its
#: operand as an integer and formats the TypeError it then discards (1-3k instructions a test, measured).
TOOL_CALLS = b'"tool_calls"'


def text_bytes(raw: bytes) -> int:
    """Bytes of generated text and tool arguments in raw chunk JSON (one or many events)."""
    count = sum(map(len, _CONTENT_VALUES.findall(raw)))
    if b'"arguments"' in raw:
        count += sum(map(len, _ARGUMENT_VALUES.findall(raw)))
    return count


def has_text(raw: bytes) -> bool:
    """Whether raw chunk JSON holds any generated text or tool arguments (stops at the first)."""
    return _SOME_CONTENT.search(raw) is not None or _SOME_ARGUMENTS.search(raw) is not None


def only_chunks(block: bytes) -> bool:
    """Whether a run of events (ending with its blank line) is plain ``data:`` lines, each event a chunk
    beginning ``{"id"``: then no event is an error or ``[DONE]``, and neither needs its own search. One
    fast pass (a replace, then ``memchr``) instead of the regular expression's and the error search's two
    slow ones (~17k instructions against ~31k on a 3 KB run); a run this does not vouch for (another key
    first, comments, other fields, multi-line data) takes the general test."""
    if not block.startswith(_CHUNK):
        return False
    rest = block.replace(_NEXT_CHUNK, b"")  # what is left of the framing: the final blank line alone
    return rest.find(b"\n") == len(rest) - 2


def data_of(event: bytes) -> bytes | None:
    """The data of one SSE event as OpenAI-style servers send it (``data: {...}``); other fields (an
    ``event:`` name, ``id:``) are ignored and multi-line data is joined, as the SSE spec says."""
    if event.startswith(b"data: ") and event.find(b"\n") < 0:  # find: see TOOL_CALLS
        return event[6:]
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[5:].removeprefix(b" ") for line in lines)


def track_tool_calls(chunk: JSON, meter: StreamMeter) -> None:
    """Count the tool calls a stream began from one chunk's deltas. A call's fragments share its
    ``index``; the count is the highest index seen plus one, per choice, so a server that repeats the
    call's id on every fragment is not counted twice."""
    seen: dict[Any, int] = meter.extra.setdefault("tool_indexes", {})
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, dict) and isinstance(call.get("index"), int):
                key = choice.get("index", 0)
                seen[key] = max(seen.get(key, 0), call["index"] + 1)
    meter.tool_calls = sum(seen.values())

"""One streamed chat completion, timed: time to first token, gaps between chunks, end, and usage.

This is the load generator's hot path, so it stays lean. The request goes through the benchmark's own
HTTP/1.1 client (:mod:`modelyard.transport.http1`), which hands each piece of the stream to
:class:`_StreamReader` from the transport's callback with its arrival time (``perf_counter_ns``): no task
switch per chunk, and no scheduling delay in the timestamps. The reader splits events on bytes and
recognises a plain content delta without parsing it; only the other chunks (role, finish, usage, errors)
go through orjson. Token counts come from the ``usage`` chunk the server sends when asked with
``stream_options.include_usage``, never from counting chunks.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import Any

import orjson

from modelyard.transport.http1 import ConnectError, Pool, ProtocolError, request_head

#: A compact content delta: ``"content":"`` then text (``"content":""`` is an empty one, the role chunk's).
_CONTENT = b'"content":"'
#: Words that send a piece of the stream to the general path: spaced JSON, answer text that is not plain
#: content, errors. Answer text can only match the first (quotes in JSON strings are escaped): a false
#: alarm costs time, never correctness.
_GENERAL = (b'": ', b'"reasoning_content"', b'"tool_calls"', b'"error"')


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible server: ``base_url`` ends where ``/chat/completions`` starts (often ``/v1``)."""

    base_url: str
    model: str
    api_key: str | None = None
    #: Send vLLM's ``ignore_eos`` so every answer runs to ``max_tokens``; off for servers that reject it.
    ignore_eos: bool = True

    #: Built once: the hot path sends thousands of requests a second with them.
    chat_head: bytes = field(init=False)
    models_head: bytes = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        base = self.base_url.rstrip("/")
        object.__setattr__(self, "chat_head", request_head("POST", base + "/chat/completions", headers))
        object.__setattr__(self, "models_head", request_head("GET", base + "/models", headers))

    def body(self, prompt: str, max_tokens: int) -> bytes:
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
            "stream": True,
            "stream_options": {"include_usage": True},
            "temperature": 0,
        }
        if self.ignore_eos:
            payload["ignore_eos"] = True
        return orjson.dumps(payload)


@dataclass(slots=True)
class RequestResult:
    """One request's timings (``perf_counter_ns`` nanoseconds) and the server's token counts."""

    start: int
    end: int = 0
    first_token: int | None = None
    #: Nanoseconds between successive content chunks (an int64 array: 8 bytes a gap, long levels add up).
    gaps: array[int] = field(default_factory=lambda: array("q"))
    input_tokens: int = 0
    output_tokens: int = 0
    #: ``None`` on success; else a short kind: ``http_429``, ``no_usage``, ``stream_cut``, ``connect``…
    error: str | None = None
    #: The server's error message, for the first failure shown to the user.
    detail: str = ""
    usage_seen: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        """Seconds from sending to the first content chunk."""
        return None if self.first_token is None else (self.first_token - self.start) / 1e9

    @property
    def e2e(self) -> float:
        """Seconds from sending to the end of the stream."""
        return (self.end - self.start) / 1e9


async def stream_once(pool: Pool, endpoint: Endpoint, body: bytes) -> RequestResult:
    """Send one streamed request and time it; failures are recorded in the result, never raised."""
    result = RequestResult(start=perf_counter_ns())
    reader = _StreamReader(result)
    try:
        response = await pool.request(endpoint.chat_head, body, reader)
        result.end = response.end_ns
        if response.status != 200:
            result.error = f"http_{response.status}"
            result.detail = response.body[:300].decode("utf-8", "replace")
        elif not response.streamed:
            result.error, result.detail = "bad_stream", f"answered {response.content_type}, not a stream"
        else:
            reader.finish(response.end_ns)
    except ConnectError as exc:
        result.error, result.detail = "connect", str(exc)
    except OSError as exc:  # StreamCut, TimeoutError, a TLS failure mid-stream
        result.error, result.detail = "stream_cut", f"{type(exc).__name__}: {exc}"
    except ValueError as exc:  # not HTTP, a chunk that is not JSON, or not a chat.completion.chunk
        kind = "not HTTP/1.x" if isinstance(exc, ProtocolError) else "not a chat.completion.chunk"
        result.error, result.detail = "bad_stream", f"{kind}: {exc}"[:300]
    if not result.end:
        result.end = perf_counter_ns()
    if result.error is None and not result.usage_seen:
        result.error = "no_usage"
    return result


class _StreamReader:
    """Splits a server-sent event stream into events and records them into a :class:`RequestResult`.

    Events end at a blank line; a piece of the stream is handled up to its last complete event. Servers
    in practice send each event as one ``data:`` line of compact JSON, often several in one piece: those
    take the bulk path, which counts content deltas with a few byte scans and parses only the usage chunk.
    Anything else (several lines to an event, comments, ``event:`` fields, spaced JSON, reasoning or tool
    call deltas, errors) takes the general path: SSE rules, every event parsed with orjson.
    """

    __slots__ = ("done", "last", "result", "tail")

    def __init__(self, result: RequestResult) -> None:
        self.result = result
        self.tail = b""
        self.done = False
        self.last = 0

    def __call__(self, piece: bytes, now: int) -> None:
        buffer = self.tail + piece if self.tail else piece
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        end = buffer.rfind(b"\n\n")
        if end < 0:
            self.tail = buffer
            return
        self.tail = buffer[end + 2 :]
        if not self._bulk(buffer, end, now):
            for event in buffer[:end].split(b"\n\n"):
                self._event(event, now)

    def finish(self, end: int) -> None:
        """The stream ended at ``end``: a last event without its blank line still counts; was it whole?"""
        if self.tail.strip():
            self._event(self.tail, end)
            self.tail = b""
        if not self.done and not self.result.usage_seen and self.result.error is None:
            self.result.error, self.result.detail = "stream_cut", "the stream ended before [DONE]"

    def _bulk(self, buffer: bytes, end: int, now: int) -> bool:
        """Record ``buffer[:end]`` if each event in it is one ``data:`` line of compact JSON, else say no."""
        events = buffer.count(b"\n\n", 0, end) + 1
        if (
            not buffer.startswith(b"data: ")
            or buffer.count(b"\n\ndata: ", 0, end) != events - 1
            or buffer.count(b"\n", 0, end) != 2 * (events - 1)
            or any(buffer.find(word, 0, end) >= 0 for word in _GENERAL)
        ):
            return False
        usage = buffer.find(b'"usage":{', 0, end)
        if usage >= 0:
            if buffer.find(b'"usage":{', usage + 1, end) >= 0:
                return False  # usage in every chunk (vLLM's continuous usage stats): take each in turn
            first = buffer.rfind(b"data: ", 0, usage) + 6
            last = buffer.find(b"\n\n", usage, end)
            _apply(orjson.loads(buffer[first : last if last >= 0 else end]), self.result)
        if buffer.endswith(b"data: [DONE]", 0, end):
            self.done = True
        texts = buffer.count(_CONTENT, 0, end) - buffer.count(_CONTENT + b'"', 0, end)
        if texts:
            self._tokens(texts, now)
        return True

    def _event(self, event: bytes, now: int) -> None:
        """One event by the SSE rules: its ``data`` lines joined by newlines; other fields ignored."""
        data = [value[1:] if value[:1] == b" " else value for name, _, value in
                (line.partition(b":") for line in event.split(b"\n")) if name == b"data"]  # fmt: skip
        if not data:
            return
        payload = b"\n".join(data)
        if payload == b"[DONE]":
            self.done = True
        elif _apply(orjson.loads(payload), self.result):
            self._tokens(1, now)

    def _tokens(self, count: int, now: int) -> None:
        """``count`` content chunks arrived at ``now``: the first ends a gap, the others follow at once."""
        result = self.result
        if result.first_token is None:
            result.first_token = now
        else:
            result.gaps.append(now - self.last)
        if count > 1:
            result.gaps.frombytes(bytes(8 * (count - 1)))  # zero gaps: they came in the same read
        self.last = now


def _apply(chunk: Any, result: RequestResult) -> bool:
    """Record usage or an in-stream error from one parsed chunk; ``True`` if it carried answer text."""
    if not isinstance(chunk, dict):
        raise ValueError(str(chunk)[:100])
    if "error" in chunk:
        result.error, result.detail = "stream_error", str(chunk["error"])[:300]
        return False
    usage = chunk.get("usage")
    if usage:
        result.usage_seen = True
        result.input_tokens = int(usage.get("prompt_tokens") or 0)
        result.output_tokens = int(usage.get("completion_tokens") or 0)
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("reasoning_content") or delta.get("tool_calls"):
            return True
    return False

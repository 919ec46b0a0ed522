"""One streamed chat completion, timed: time to first token, gaps between chunks, end, and usage.

This is the load generator's hot path, so it stays lean: the body is serialised once, chunks are parsed
with orjson, and timestamps come from ``time.perf_counter``. Token counts come from the ``usage`` chunk
the server sends when asked with ``stream_options.include_usage``, never from counting chunks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

from modelyard.providers.sse import SSEDecoder


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An OpenAI-compatible server: ``base_url`` ends where ``/chat/completions`` starts (often ``/v1``)."""

    base_url: str
    model: str
    api_key: str | None = None
    #: Send vLLM's ``ignore_eos`` so every answer runs to ``max_tokens``; off for servers that reject it.
    ignore_eos: bool = True

    #: Computed once: the hot path sends thousands of requests a second with them.
    chat_url: str = field(init=False)
    headers: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        object.__setattr__(self, "chat_url", self.base_url.rstrip("/") + "/chat/completions")
        object.__setattr__(self, "headers", headers)

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
    """One request's timings (``perf_counter`` seconds) and the server's token counts."""

    start: float
    end: float = 0.0
    first_token: float | None = None
    #: Seconds between successive content chunks.
    gaps: list[float] = field(default_factory=list)
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
        return None if self.first_token is None else self.first_token - self.start

    @property
    def e2e(self) -> float:
        return self.end - self.start


async def stream_once(session: aiohttp.ClientSession, endpoint: Endpoint, body: bytes) -> RequestResult:
    """Send one streamed request and time it; failures are recorded in the result, never raised."""
    result = RequestResult(start=time.perf_counter())
    try:
        async with session.post(endpoint.chat_url, data=body, headers=endpoint.headers) as response:
            if response.status != 200:
                result.error = f"http_{response.status}"
                result.detail = (await response.text())[:300]
            elif response.content_type != "text/event-stream":
                result.error, result.detail = "bad_stream", f"answered {response.content_type}, not a stream"
            else:
                await _read_stream(response, result)
    except aiohttp.ClientConnectorError as exc:
        result.error, result.detail = "connect", str(exc)
    except (aiohttp.ClientError, TimeoutError) as exc:
        result.error, result.detail = "stream_cut", f"{type(exc).__name__}: {exc}"
    except ValueError as exc:  # a chunk that is not JSON, or not a chat.completion.chunk
        result.error, result.detail = "bad_stream", str(exc)[:300]
    result.end = time.perf_counter()
    if result.error is None and not result.usage_seen:
        result.error = "no_usage"
    return result


async def _read_stream(response: aiohttp.ClientResponse, result: RequestResult) -> None:
    decoder = SSEDecoder()
    last = 0.0
    done = False
    async for chunk in response.content.iter_any():
        now = time.perf_counter()
        for event in decoder.feed(chunk):
            if event.data == "[DONE]":
                done = True
                continue
            if _apply(orjson.loads(event.data), result):
                if result.first_token is None:
                    result.first_token = now
                else:
                    result.gaps.append(now - last)
                last = now
    if not done and not result.usage_seen:
        result.error, result.detail = "stream_cut", "the stream ended before [DONE]"


def _apply(chunk: Any, result: RequestResult) -> bool:
    """Record usage or an in-stream error from one chunk; ``True`` if it carried answer text."""
    if not isinstance(chunk, dict):
        raise ValueError("not a chat.completion.chunk")
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

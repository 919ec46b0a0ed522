"""The Anthropic Messages API family: OpenAI chat requests in, ``POST /v1/messages`` out, and back.

Written against Anthropic's published references: "Messages" (response fields), "Streaming Messages" (the
SSE event sequence), "Errors" (error bodies and statuses) and "Prompt caching" (usage fields). Requests are
translated in :mod:`modelyard.providers.anthropic_request`.

The translation is pure functions: :func:`from_anthropic_response`, :func:`usage_from_anthropic` and the
:class:`StreamTranslator` state machine, fed one SSE event at a time. :class:`AnthropicAdapter` only adds
the HTTP call.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

import orjson

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError, UpstreamStreamCut, upstream_error_for_status
from modelyard.providers.anthropic_request import DEFAULT_API_VERSION, json_tool_of, to_anthropic_request
from modelyard.providers.base import (
    JSON,
    Capabilities,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
    Usage,
    estimate_tokens,
)
from modelyard.providers.http import UpstreamClient, UpstreamStream
from modelyard.providers.sse import SSEEvent, iter_sse

_FINISH = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",  # a server tool paused the turn; what was said so far is a complete answer
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
#: In-stream ``error`` events carry only the error type; this is the HTTP status each type has elsewhere.
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


# --- response: Anthropic message → OpenAI chat.completion -----------------------------------------------


def usage_from_anthropic(raw: JSON) -> Usage:
    """Normalise Anthropic usage to :class:`Usage`.

    Anthropic's ``input_tokens`` counts only the tokens after the last cache breakpoint: cache reads
    (``cache_read_input_tokens``) and cache writes (``cache_creation_input_tokens``) are reported *beside*
    it, so the prompt's total is the sum of the three ("Prompt caching", tracking cache performance).
    ``cache_creation.ephemeral_1h_input_tokens`` is the 1-hour part of the writes, billed at a higher
    rate. ``output_tokens`` already includes extended-thinking tokens, which are not reported apart.
    """
    read = _count(raw, "cache_read_input_tokens")
    write = _count(raw, "cache_creation_input_tokens")
    return Usage(
        input_tokens=_count(raw, "input_tokens") + read + write,
        output_tokens=_count(raw, "output_tokens"),
        cached_input_tokens=read,
        cache_write_tokens=write,
        cache_write_1h_tokens=_count(raw.get("cache_creation") or {}, "ephemeral_1h_input_tokens"),
    )


def _count(raw: JSON, name: str) -> int:
    value = raw.get(name)
    return int(value) if isinstance(value, int) else 0


def finish_reason_of(stop_reason: str | None, *, has_tool_calls: bool) -> str:
    finish = _FINISH.get(stop_reason or "", "stop")
    # A forced json_schema tool ends with stop_reason tool_use, but the client asked for an answer.
    return "stop" if finish == "tool_calls" and not has_tool_calls else finish


def _json_text(value: Any) -> str:
    # json, not orjson, for its ", " and ": " separators: the spacing the model uses when it streams JSON.
    return json.dumps(value, ensure_ascii=False)


def from_anthropic_response(message: JSON, *, json_tool: str | None = None) -> tuple[JSON, Usage, str]:
    """Translate a Messages API response into ``(chat.completion body, usage, finish_reason)``."""
    texts: list[str] = []
    tool_calls: list[JSON] = []
    for block in message.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text", ""))
        elif kind == "tool_use" and block.get("name") == json_tool:
            texts.append(_json_text(block.get("input")))
        elif kind == "tool_use":
            function = {"name": block["name"], "arguments": _json_text(block.get("input") or {})}
            tool_calls.append({"id": block["id"], "type": "function", "function": function})
        # thinking, redacted_thinking and server-tool blocks have no place in an OpenAI message.
    finish = finish_reason_of(message.get("stop_reason"), has_tool_calls=bool(tool_calls))
    usage = usage_from_anthropic(message.get("usage") or {})
    reply: JSON = {"role": "assistant", "content": "".join(texts) if texts or not tool_calls else None}
    if tool_calls:
        reply["tool_calls"] = tool_calls
    body = {
        "id": message.get("id"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{"index": 0, "message": reply, "finish_reason": finish, "logprobs": None}],
        "usage": usage.to_openai(),
    }
    return body, usage, finish


def _unchanged(text: str) -> str:
    return text


def error_from_event(provider: str, data: JSON, scrub: Callable[[str], str] = _unchanged) -> UpstreamError:
    """The error an in-stream ``error`` event stands for, mapped as its HTTP status would be."""
    error = data.get("error") or {}
    kind = error.get("type") or "api_error"
    message = scrub(str(error.get("message") or kind))
    return upstream_error_for_status(provider, _ERROR_STATUS.get(kind, 500), message)


# --- streaming: Anthropic SSE events → OpenAI chat.completion.chunk -------------------------------------


class StreamTranslator:
    """Turns Anthropic stream events into OpenAI chunks, one event at a time, and tracks what was seen.

    ``usage`` holds the input side from ``message_start`` as soon as it arrives; ``message_delta``
    then brings the cumulative ``output_tokens`` (and may repeat input-side fields, which replace rather
    than add). ``done`` turns true only on ``message_stop``.
    """

    def __init__(
        self, provider: str, *, json_tool: str | None = None, scrub: Callable[[str], str] = _unchanged
    ) -> None:
        self.provider = provider
        self.json_tool = json_tool
        self.scrub = scrub
        self.id = ""
        self.model: str | None = None
        self.created = int(time.time())
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.done = False
        #: Characters generated so far: text, tool arguments and thinking (billed as output tokens).
        self.output_chars = 0
        self._raw_usage: JSON = {}
        self._blocks: dict[int, tuple[str, int]] = {}  # Anthropic block index → (kind, OpenAI tool index)
        self.tool_calls = 0

    def feed(self, event: str, data: JSON) -> list[JSON]:
        """Consume one event (its SSE name and parsed data); return the OpenAI chunks it produces."""
        match data.get("type") or event:
            case "message_start":
                return self._message_start(data.get("message") or {})
            case "content_block_start":
                return self._block_start(data["index"], data.get("content_block") or {})
            case "content_block_delta":
                return self._block_delta(data["index"], data.get("delta") or {})
            case "message_delta":
                return self._message_delta(data)
            case "message_stop":
                self.done = True
                return [self._usage_chunk()]
            case "error":
                raise error_from_event(self.provider, data, self.scrub)
            case _:  # ping, content_block_stop, and event types Anthropic may add (its versioning policy)
                return []

    def partial_usage(self) -> Usage | None:
        """Usage for a stream that ended early: input as reported, output at least what we counted."""
        if self.usage is None:
            return None
        output = max(self.usage.output_tokens, estimate_tokens(self.output_chars))
        return Usage(
            input_tokens=self.usage.input_tokens,
            output_tokens=output,
            cached_input_tokens=self.usage.cached_input_tokens,
            cache_write_tokens=self.usage.cache_write_tokens,
            cache_write_1h_tokens=self.usage.cache_write_1h_tokens,
            estimated=True,
        )

    def _message_start(self, message: JSON) -> list[JSON]:
        self.id = message.get("id") or ""
        self.model = message.get("model")
        self._merge_usage(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _merge_usage(self, raw: JSON) -> None:
        self._raw_usage.update((name, value) for name, value in raw.items() if value is not None)
        self.usage = usage_from_anthropic(self._raw_usage)

    def _block_start(self, index: int, block: JSON) -> list[JSON]:
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = ("text", -1)
            return [self._content(block["text"])] if block.get("text") else []
        if kind == "tool_use" and block.get("name") == self.json_tool:
            self._blocks[index] = ("json", -1)
            return []
        if kind == "tool_use":
            tool_index, self.tool_calls = self.tool_calls, self.tool_calls + 1
            self._blocks[index] = ("tool", tool_index)
            function = {"name": block["name"], "arguments": ""}
            call = {"index": tool_index, "id": block["id"], "type": "function", "function": function}
            return [self._chunk({"tool_calls": [call]})]
        self._blocks[index] = ("other", -1)  # thinking, redacted_thinking, server tools
        return []

    def _block_delta(self, index: int, delta: JSON) -> list[JSON]:
        kind, tool_index = self._blocks.get(index, ("other", -1))
        match delta.get("type"):
            case "text_delta" if delta.get("text"):
                return [self._content(delta["text"])]
            case "input_json_delta" if delta.get("partial_json") and kind == "json":
                return [self._content(delta["partial_json"])]
            case "input_json_delta" if delta.get("partial_json") and kind == "tool":
                self.output_chars += len(delta["partial_json"])
                call = {"index": tool_index, "function": {"arguments": delta["partial_json"]}}
                return [self._chunk({"tool_calls": [call]})]
            case "thinking_delta":
                # Not shown to the client, but billed as output: counted so a cut stream's estimate is fair.
                self.output_chars += len(delta.get("thinking") or "")
        return []  # signature_delta, citations_delta, empty fragments

    def _message_delta(self, data: JSON) -> list[JSON]:
        self._merge_usage(data.get("usage") or {})
        stop_reason = (data.get("delta") or {}).get("stop_reason")
        self.finish_reason = finish_reason_of(stop_reason, has_tool_calls=self.tool_calls > 0)
        return [self._chunk({}, self.finish_reason)]

    def _content(self, text: str) -> JSON:
        self.output_chars += len(text)
        return self._chunk({"content": text})

    def _chunk(self, delta: JSON, finish_reason: str | None = None) -> JSON:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**self._envelope(), "choices": [choice]}

    def _usage_chunk(self) -> JSON:
        return {**self._envelope(), "choices": [], "usage": (self.usage or Usage()).to_openai()}

    def _envelope(self) -> JSON:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }


# --- the adapter --------------------------------------------------------------------------------------------


class AnthropicAdapter:
    """A provider that speaks the Anthropic Messages API (Anthropic itself, or a compatible endpoint)."""

    capabilities = Capabilities(chat=True, streaming=True, tools=True, json_schema=True, embeddings=False)

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self._client = UpstreamClient(name, config, api_key)
        base = (config.base_url or "").rstrip("/")
        self._v1 = base if base.endswith("/v1") else f"{base}/v1"
        self._url = f"{self._v1}/messages"
        self._headers = {
            "anthropic-version": config.api_version or DEFAULT_API_VERSION,
            "content-type": "application/json",
        }
        if api_key:
            self._headers["x-api-key"] = api_key

    async def complete(self, call: ChatCall) -> ChatResult:
        """One Messages API call, translated to a ``chat.completion``."""
        request = to_anthropic_request(call.body, call.upstream_model)
        _, message = await self._client.post_json(self._url, orjson.dumps(request), self._headers)
        if not isinstance(message, dict) or message.get("type") != "message":
            raise UpstreamError(f"{self.name} sent a body that is not a message", provider=self.name)
        body, usage, finish = from_anthropic_response(message, json_tool=json_tool_of(call.body))
        return ChatResult(body=body, usage=usage, finish_reason=finish)

    async def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON]:
        """Stream a Messages API call as OpenAI chunks; raise UpstreamStreamCut if it ends early."""
        request = to_anthropic_request(call.body, call.upstream_model, stream=True)
        translator = StreamTranslator(self.name, json_tool=json_tool_of(call.body), scrub=self._client.scrub)
        try:
            # A transport failure after the answer began arrives from the client as UpstreamStreamCut.
            async with aclosing(self._client.stream(self._url, orjson.dumps(request), self._headers)) as body:
                async for event in iter_sse(body):
                    chunks = translator.feed(event.event, self._event_data(event))
                    _update_meter(meter, translator)
                    for chunk in chunks:
                        meter.chunks += 1
                        yield chunk
            if not translator.done:
                raise UpstreamStreamCut(f"{self.name} stream ended before message_stop", provider=self.name)
        except UpstreamError:
            meter.usage = translator.partial_usage() if not translator.done else translator.usage
            raise

    def _event_data(self, event: SSEEvent) -> JSON:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            data = None
        if not isinstance(data, dict):
            raise UpstreamStreamCut(f"{self.name} sent a malformed '{event.event}' event", provider=self.name)
        return data

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        """Anthropic has no embeddings endpoint."""
        raise UpstreamError(
            f"{self.name} (Anthropic Messages API) has no embeddings; route embedding models elsewhere",
            provider=self.name,
            code="unsupported",
            status=400,
        )

    # -- the Messages API forwarded as it is (the gateway's /v1/messages to Anthropic targets) -----------

    async def post_raw(self, path: str, body: JSON) -> tuple[bytes, Any]:
        """POST ``body`` to ``path`` under ``/v1``; ``(raw, parsed)`` of the 2xx answer."""
        return await self._client.post_json(f"{self._v1}{path}", orjson.dumps(body), self._headers)

    async def open_raw_stream(self, path: str, body: JSON) -> UpstreamStream:
        """POST ``body`` to ``path`` under ``/v1`` and return its SSE answer once the head is in."""
        return await self._client.open_stream(f"{self._v1}{path}", orjson.dumps(body), self._headers)

    async def close(self) -> None:
        await self._client.close()


def _update_meter(meter: StreamMeter, translator: StreamTranslator) -> None:
    meter.usage = translator.usage
    meter.finish_reason = translator.finish_reason
    meter.output_chars = translator.output_chars
    meter.upstream_model = translator.model
    meter.tool_calls = translator.tool_calls

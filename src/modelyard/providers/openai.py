"""The OpenAI API family: Chat Completions and Embeddings.

The gateway already speaks this format, so translation is small: swap in the upstream model, always ask for
usage in streams (metering must not depend on the client remembering ``stream_options``), and normalise
usage. OpenAI's usage already follows our convention: ``prompt_tokens`` includes
``prompt_tokens_details.cached_tokens`` and ``completion_tokens`` includes
``completion_tokens_details.reasoning_tokens`` (platform.openai.com/docs/api-reference/chat/object).
Non-streaming bodies pass through as received bytes: re-encoding them would only cost time.

Self-hosted servers that copy this format (vLLM, Ollama, TGI, llama.cpp) reuse this module through
``openai_compatible.py``, which only sets :class:`Profile` flags.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import orjson

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError, UpstreamStreamCut, upstream_error_for_status
from modelyard.providers.base import (
    JSON,
    Capabilities,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
    Usage,
)
from modelyard.providers.http import UpstreamClient, error_message_of


@dataclass(frozen=True, slots=True)
class Profile:
    """How one server differs from OpenAI's own API. Each flag exists because a real server needs it."""

    #: Send ``stream_options: {include_usage: true}``; servers that reject unknown fields get False.
    stream_usage_option: bool = True
    #: The server ends streams with ``data: [DONE]``; if not, a clean end of the body counts as complete.
    sends_done: bool = True
    #: How ``response_format: json_schema`` is expressed: OpenAI's shape, or TGI's ``{"type": "json"}``.
    json_schema_style: str = "openai"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(embeddings=True))


OPENAI_PROFILE = Profile()


def to_request(body: JSON, upstream_model: str, profile: Profile, *, stream: bool) -> JSON:
    """The upstream request: the client's body with the upstream model and our streaming options."""
    request = dict(body)
    request["model"] = upstream_model
    request.pop("metadata", None)  # gateway routing data; OpenAI accepts metadata only with store=true
    if stream:
        request["stream"] = True
        if profile.stream_usage_option:
            request["stream_options"] = {"include_usage": True}
        else:
            request.pop("stream_options", None)
    else:
        request.pop("stream", None)
        request.pop("stream_options", None)
    response_format = request.get("response_format")
    if profile.json_schema_style == "tgi" and isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            schema = response_format.get("json_schema", {}).get("schema", {})
            request["response_format"] = {"type": "json", "value": schema}
        elif response_format.get("type") == "json_object":
            request["response_format"] = {"type": "json", "value": {"type": "object"}}
    return request


def usage_from(raw: Any) -> Usage | None:
    """OpenAI's ``usage`` object → :class:`Usage` (already our convention)."""
    if not isinstance(raw, dict):
        return None
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=int(prompt_details.get("cached_tokens") or 0),
        reasoning_tokens=int(completion_details.get("reasoning_tokens") or 0),
    )


def finish_reason_of(body: JSON) -> str | None:
    choices = body.get("choices") or ()
    return str(choices[0].get("finish_reason")) if choices and choices[0].get("finish_reason") else None


def chunk_output_chars(chunk: JSON) -> int:
    """Characters of text and tool arguments in a chunk, for estimating a cut stream's output."""
    total = 0
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        content = delta.get("content")
        if isinstance(content, str):
            total += len(content)
        for call in delta.get("tool_calls") or ():
            arguments = (call.get("function") or {}).get("arguments")
            if isinstance(arguments, str):
                total += len(arguments)
    return total


def _text_bytes(payload: bytes, key: bytes) -> int:
    """Bytes of the string value after ``key`` (up to the next quote; escapes make it approximate, which
    is all a cut stream's estimate needs)."""
    start = payload.find(key)
    if start < 0:
        return 0
    start += len(key)
    end = payload.find(b'"', start)
    return end - start if end > start else 0


def _data_of(event: bytes) -> bytes | None:
    """The data of one SSE event as OpenAI-style servers send it (``data: {...}``); other fields (an
    ``event:`` name, ``id:``) are ignored and multi-line data is joined, as the SSE spec says."""
    if event.startswith(b"data: ") and b"\n" not in event:
        return event[6:]
    lines = [line for line in event.split(b"\n") if line.startswith(b"data:")]
    if not lines:
        return None
    return b"\n".join(line[5:].removeprefix(b" ") for line in lines)


def track_chunk(chunk: JSON, meter: StreamMeter) -> None:
    """Update ``meter`` from one OpenAI-format chunk."""
    meter.chunks += 1
    meter.output_chars += chunk_output_chars(chunk)
    usage = chunk.get("usage")
    if usage:
        meter.usage = usage_from(usage)
    finish = finish_reason_of(chunk)
    if finish:
        meter.finish_reason = finish
    if meter.upstream_model is None and isinstance(chunk.get("model"), str):
        meter.upstream_model = chunk["model"]


class OpenAIAdapter:
    """OpenAI's API, or any server speaking it (with a :class:`Profile` for its differences)."""

    profile: Profile = OPENAI_PROFILE

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self.capabilities = self.profile.capabilities
        self._base = (config.base_url or "").rstrip("/")
        self._client = UpstreamClient(name, config, api_key)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    async def complete(self, call: ChatCall) -> ChatResult:
        request = to_request(call.body, call.upstream_model, self.profile, stream=False)
        raw, body = await self._client.post_json(
            f"{self._base}/chat/completions", orjson.dumps(request), self._headers
        )
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamError(f"{self.name} answered without choices", provider=self.name)
        return ChatResult(
            body=body, usage=usage_from(body.get("usage")), finish_reason=finish_reason_of(body), raw=raw
        )

    async def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON | bytes]:
        """Pass the upstream's SSE bytes through, one block per network read: the format is already
        the client's, so each event is parsed only to meter it, never re-encoded. The usage-only event
        we asked for is dropped when the client did not ask for it; ``[DONE]`` is the gateway's to send."""
        request = to_request(call.body, call.upstream_model, self.profile, stream=True)
        url = f"{self._base}/chat/completions"
        done = False
        keep_usage = call.client_wants_stream_usage
        # aclosing: a client that goes away closes the upstream stream now, not when the GC gets to it.
        async with aclosing(self._client.stream(url, orjson.dumps(request), self._headers)) as reads:
            pending = b""
            async for data in reads:
                if b"\r" in data:
                    data = data.replace(b"\r\n", b"\n")
                pending += data
                block = bytearray()
                while (end := pending.find(b"\n\n")) >= 0:
                    event, pending = pending[:end], pending[end + 2 :]
                    payload = _data_of(event)
                    if payload is None:
                        continue  # a comment (keep-alive) or an empty event
                    if payload == b"[DONE]":
                        done = True
                        continue
                    if not self._meter_event(payload, meter, keep_usage):
                        continue
                    block += b"data: " + payload + b"\n\n"
                if block:
                    yield bytes(block)
        if not done and (self.profile.sends_done or meter.finish_reason is None):
            raise UpstreamStreamCut(
                f"{self.name} ended the stream before it was complete", provider=self.name
            )

    def _meter_event(self, payload: bytes, meter: StreamMeter, keep_usage: bool) -> bool:
        """Meter one event; False when it is the usage-only event the client did not ask for.

        Most events carry one token of text: they are metered from their bytes (their text length, for
        estimating a cut stream) without a JSON parse. The events that matter for exact metering — the
        first (model), any with usage or a finish reason, an error — are parsed in full."""
        if (
            meter.chunks
            and b'"usage":{' not in payload
            and b'"finish_reason":"' not in payload
            and not payload.startswith(b'{"error"')
        ):
            meter.chunks += 1
            meter.output_chars += _text_bytes(payload, b'"content":"') + _text_bytes(
                payload, b'"arguments":"'
            )
            return True
        chunk = self._parse_event(payload)
        track_chunk(chunk, meter)
        return keep_usage or bool(chunk.get("choices")) or not chunk.get("usage")

    def _parse_event(self, data: bytes | str) -> JSON:
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise UpstreamStreamCut(
                f"{self.name} sent a malformed stream event", provider=self.name
            ) from None
        if not isinstance(chunk, dict):
            raise UpstreamStreamCut(f"{self.name} sent a malformed stream event", provider=self.name)
        if "error" in chunk:
            # OpenAI-style servers report failures after the headers as an error object in the stream.
            message = self._client.scrub(error_message_of(chunk) or "error in stream")
            status = chunk["error"].get("code") if isinstance(chunk["error"], dict) else None
            raise upstream_error_for_status(self.name, status if isinstance(status, int) else 500, message)
        return chunk

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        if not self.capabilities.embeddings:
            raise UpstreamError(
                f"{self.name} does not serve embeddings", provider=self.name, code="unsupported", status=400
            )
        request = dict(call.body)
        request["model"] = call.upstream_model
        request.pop("metadata", None)
        raw, body = await self._client.post_json(
            f"{self._base}/embeddings", orjson.dumps(request), self._headers
        )
        if not isinstance(body, dict) or "data" not in body:
            raise UpstreamError(f"{self.name} answered without embeddings", provider=self.name)
        return EmbeddingResult(body=body, usage=usage_from(body.get("usage")), raw=raw)

    async def close(self) -> None:
        await self._client.close()

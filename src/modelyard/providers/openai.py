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
from modelyard.providers.http import (
    TRANSPORT_ERRORS,
    UpstreamClient,
    UpstreamStream,
    error_message_of,
    stream_failure,
)
from modelyard.providers.openai_events import (
    COMPACT,
    DONE_EVENT,
    ERROR_START,
    FULL_PARSE,
    MODEL,
    NOT_PLAIN,
    SPACED,
    TOOL_CALLS,
    data_of,
    has_text,
    only_chunks,
    text_bytes,
    track_tool_calls,
)
from modelyard.transport.http1 import Exchange


@dataclass(frozen=True, slots=True)
class Profile:
    """How one server differs from OpenAI's own API. Each flag exists because a real server needs it."""

    #: Send ``stream_options: {include_usage: true}``; servers that reject unknown fields get False.
    stream_usage_option: bool = True
    #: The server ends streams with ``data: [DONE]``; if not, a clean end of the body counts as complete.
    sends_done: bool = True
    #: How ``response_format: json_schema`` is expressed: OpenAI's shape, or TGI's ``{"type": "json"}``.
    json_schema_style: str = "openai"
    #: The output bound's field. OpenAI: ``max_completion_tokens`` (``max_tokens`` is deprecated and its
    #: reasoning models refuse it). Self-hosted servers: ``max_tokens``, the one they all honour (Ollama
    #: accepts ``max_completion_tokens`` and ignores it, ollama/ollama#7125), so ours is renamed to it.
    output_limit_field: str = "max_completion_tokens"
    capabilities: Capabilities = field(default_factory=lambda: Capabilities(embeddings=True))


OPENAI_PROFILE = Profile()


def to_request(body: JSON, upstream_model: str, profile: Profile, *, stream: bool) -> JSON:
    """The upstream request: the client's body with the upstream model and our streaming options."""
    request = dict(body)
    request["model"] = upstream_model
    request.pop("metadata", None)  # gateway routing data; OpenAI accepts metadata only with store=true
    if profile.output_limit_field == "max_tokens" and "max_completion_tokens" in request:
        bound = request.pop("max_completion_tokens")
        request.setdefault("max_tokens", bound)
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
    # Positional (input, output, cached input, cache writes, reasoning): keywords cost ~2k instructions
    # more per call on the request path (valgrind); tests/test_provider_openai*.py hold the fields.
    return Usage(
        int(raw.get("prompt_tokens") or 0),
        int(raw.get("completion_tokens") or 0),
        int(prompt_details.get("cached_tokens") or 0),
        0,
        int(completion_details.get("reasoning_tokens") or 0),
    )


def finish_reason_of(body: JSON) -> str | None:
    choices = body.get("choices") or ()
    return str(choices[0].get("finish_reason")) if choices and choices[0].get("finish_reason") else None


def track_chunk(chunk: JSON, meter: StreamMeter) -> None:
    """Update ``meter`` from one parsed OpenAI-format chunk (chunks and text are counted from the bytes)."""
    usage = chunk.get("usage")
    if usage:
        meter.usage = usage_from(usage)
    choices = chunk.get("choices")
    if choices:  # as finish_reason_of, without a call: this runs for every parsed event
        finish = choices[0].get("finish_reason")
        if finish:
            meter.finish_reason = str(finish)
    if meter.upstream_model is None and isinstance(chunk.get("model"), str):
        meter.upstream_model = chunk["model"]


class OpenAIAdapter:
    """OpenAI's API, or any server speaking it (with a :class:`Profile` for its differences)."""

    profile: Profile = OPENAI_PROFILE

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self.capabilities = self.profile.capabilities
        self._base = (config.base_url or "").rstrip("/")
        self._chat_url = f"{self._base}/chat/completions"
        self._client = UpstreamClient(name, config, api_key)
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"

    async def complete(self, call: ChatCall) -> ChatResult:
        request = to_request(call.body, call.upstream_model, self.profile, stream=False)
        raw, body = await self._client.post_json(self._chat_url, orjson.dumps(request), self._headers)
        if not isinstance(body, dict) or "choices" not in body:
            raise UpstreamError(f"{self.name} answered without choices", provider=self.name)
        return ChatResult(body, usage_from(body.get("usage")), finish_reason_of(body), raw)

    def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON | bytes]:
        """Pass the upstream's SSE bytes through, one block per network read: the format is already
        the client's, so each event is parsed only to meter it, never re-encoded. The usage-only event
        we asked for is dropped when the client did not ask for it; ``[DONE]`` is the gateway's to send."""
        return EventRelay(self, call, meter)

    def _relay_block(self, block: bytes, meter: StreamMeter, keep_usage: bool) -> tuple[bytes, bool]:
        """Meter a run of complete events; return what the client gets of it, and whether ``[DONE]`` came.

        Usually the run is passed on as read, minus a final ``[DONE]`` (the gateway sends its own after
        recording). Each check is a pass over the bytes, and the passes are what costs here, so there are
        few: one for the run's shape (which also rules out an error event when every event is a chunk,
        see :func:`only_chunks`), one or two for the first token (until it came), two or three marker
        searches. Only the events exact metering needs are parsed: the stream's first (model), the run's
        last with a finish reason and last with usage (usage is cumulative; n is 1), an error. Text is
        not counted unless an estimate needs it (:meth:`StreamMeter.defer`). Events are re-framed only when
        one is dropped (the usage event the client did not ask for) or the run is not plain ``data:``
        lines."""
        done = block.endswith(DONE_EVENT)
        if done:
            block = block[: -len(DONE_EVENT)]
        # Plain: every event ``data:`` lines only (multi-line data passes as is: SSE joins it the same way
        # on both sides), no [DONE] before the end.
        chunks = only_chunks(block)
        if not chunks and (
            not block.startswith(b"data: ") or block.startswith(DONE_EVENT) or NOT_PLAIN.search(block)
        ):
            return self._relay_events(block, meter, keep_usage, done) if block else (block, done)
        meter.chunks += 1
        if meter.started or has_text(block):
            meter.defer(block, text_bytes)
        finish_marker, usage_marker = meter.extra.get("markers") or self._first_run(block, meter)
        if block.find(TOOL_CALLS) >= 0:  # rare: only answers that call tools parse their fragments' events
            for event in block[:-2].split(b"\n\n"):
                if TOOL_CALLS in event:
                    track_tool_calls(self._parse_event(data_of(event) or b"{}"), meter)
        at = block.rfind(finish_marker)
        if at >= 0:  # its value is a plain word (stop, length, tool_calls...): read in place
            at += len(finish_marker)
            meter.finish_reason = block[at : block.find(b'"', at)].decode()
        at = block.rfind(usage_marker)
        if not chunks:
            return self._parse_marked(block, at, meter, keep_usage), done
        if at >= 0:  # the run's last usage event, one ``data:`` line like every event of the run
            before = block.rfind(b"\n\n", 0, at)
            start = before + 2 if before >= 0 else 0
            end = block.find(b"\n\n", start)
            chunk = self._parse_event(block[start + 6 : end])
            track_chunk(chunk, meter)
            if not keep_usage and not chunk.get("choices") and chunk.get("usage"):
                # The usage-only event we asked for; the client did not.
                block = block[:start] + block[end + 2 :]
        return block, done

    def _parse_marked(self, block: bytes, usage_at: int, meter: StreamMeter, keep_usage: bool) -> bytes:
        """:meth:`_relay_block`'s parses for a run that is not only chunks: the last event with usage (at
        ``usage_at``, or -1) and the first error event, in their order."""
        starts = []
        for at in (usage_at, block.find(ERROR_START)):
            if at >= 0:
                before = block.rfind(b"\n\n", 0, at)
                starts.append(before + 2 if before >= 0 else 0)
        dropped: list[tuple[int, int]] = []
        for start in sorted(set(starts)):
            end = block.find(b"\n\n", start)
            chunk = self._parse_event(data_of(block[start:end]) or b"")
            track_chunk(chunk, meter)
            if not keep_usage and not chunk.get("choices") and chunk.get("usage"):
                dropped.append((start, end + 2))  # the usage-only event we asked for; the client did not
        for start, end in reversed(dropped):
            block = block[:start] + block[end:]
        return block

    @staticmethod
    def _first_run(block: bytes, meter: StreamMeter) -> tuple[bytes, bytes]:
        """The stream's first run: its first event names the model and shows the JSON form."""
        colon = block.find(b'":')
        markers = meter.extra["markers"] = SPACED if block[colon + 2 : colon + 3] == b" " else COMPACT
        model = MODEL.search(block, 0, block.find(b"\n\n"))
        if model is not None and meter.upstream_model is None:
            meter.upstream_model = model[1].decode()
        return markers

    def _relay_events(
        self, block: bytes, meter: StreamMeter, keep_usage: bool, done: bool
    ) -> tuple[bytes, bool]:
        """The general case, event by event: comments dropped, ``event:``/``id:`` fields and multi-line
        data normalised to one ``data:`` line each."""
        kept: list[bytes] = []
        for event in block[:-2].split(b"\n\n") if block else ():
            payload = data_of(event)
            if payload is None:
                continue  # a comment (keep-alive) or an empty event
            if payload == b"[DONE]":
                done = True
                continue
            first = meter.chunks == 0
            meter.chunks += 1
            chars = text_bytes(payload)
            if chars:
                meter.output_chars += chars
                meter.started = True
            if first or TOOL_CALLS in payload or any(marker in payload for marker in FULL_PARSE):
                chunk = self._parse_event(payload)
                track_chunk(chunk, meter)
                track_tool_calls(chunk, meter)
                if not keep_usage and not chunk.get("choices") and chunk.get("usage"):
                    continue
            kept.append(b"data: " + payload + b"\n\n")
        return b"".join(kept), done

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

    # -- OpenAI endpoints forwarded as they are (legacy completions; Responses to OpenAI itself) -----------

    async def post_raw(self, path: str, body: JSON) -> tuple[bytes, Any]:
        """POST ``body`` to ``path`` under the base URL; ``(raw, parsed)`` of the 2xx answer."""
        return await self._client.post_json(f"{self._base}{path}", orjson.dumps(body), self._headers)

    async def open_raw_stream(self, path: str, body: JSON) -> UpstreamStream:
        """POST ``body`` to ``path`` and return its SSE answer once the head is in (failures raised)."""
        return await self._client.open_stream(f"{self._base}{path}", orjson.dumps(body), self._headers)

    async def close(self) -> None:
        await self._client.close()


class EventRelay:
    """An OpenAI-format stream as runs of complete events (see ``OpenAIAdapter._relay_block``).

    An async iterator object rather than an async generator: the event loop's hooks for every async
    generator cost more than this whole relay on a short stream. It reads the transport's exchange itself
    (no wrapper object, one call a read fewer) and maps its failures as :class:`UpstreamStream` would.
    ``aclose`` (a client that went away) closes the upstream connection at once, not when the garbage
    collector gets to it."""

    __slots__ = ("_adapter", "_call", "_done", "_ended", "_exchange", "_meter", "_pending")

    def __init__(self, adapter: OpenAIAdapter, call: ChatCall, meter: StreamMeter) -> None:
        self._adapter, self._call, self._meter = adapter, call, meter
        self._exchange: Exchange | None = None
        self._pending = b""
        self._done = self._ended = False

    def __aiter__(self) -> EventRelay:
        return self

    @property
    def ready(self) -> bool:
        """Whether the next step answers without waiting for the network (what the upstream sent is
        already here): the gateway then writes what it holds together with what follows."""
        return self._ended or (self._exchange is not None and self._exchange.ready)

    async def __anext__(self) -> bytes:
        # One coroutine per step (the upstream is opened and read here, and each read's complete events
        # taken here, not in helpers), and a clean end leaves through ``StopAsyncIteration`` without
        # passing the error handler.
        if self._ended:
            raise StopAsyncIteration
        adapter, exchange = self._adapter, self._exchange
        try:
            if exchange is None:
                call = self._call
                request = to_request(call.body, call.upstream_model, adapter.profile, stream=True)
                exchange = self._exchange = await adapter._client.open_exchange(
                    adapter._chat_url, orjson.dumps(request), adapter._headers
                )
            try:
                while (data := await exchange.next_piece()) is not None:
                    if data.find(b"\r") >= 0:  # find: see TOOL_CALLS
                        data = data.replace(b"\r\n", b"\n")
                    if self._pending:
                        data = self._pending + data
                    # The complete events read so far; an incomplete last one waits for the next read.
                    end = data.rfind(b"\n\n") + 2
                    if end < 2:
                        self._pending = data
                        continue
                    self._pending = data[end:]
                    block, done = adapter._relay_block(
                        data[:end], self._meter, self._call.client_wants_stream_usage
                    )
                    if done:
                        self._done = True
                    if block:
                        return block
            except TRANSPORT_ERRORS as exc:  # the answer had begun: the client must learn it is cut
                raise stream_failure(adapter.name, exc) from None
            self._ended = True  # the exchange released its connection itself when the body ended
            if not self._done and (adapter.profile.sends_done or self._meter.finish_reason is None):
                raise UpstreamStreamCut(
                    f"{adapter.name} ended the stream before it was complete", provider=adapter.name
                )
        except BaseException:
            self._close()
            raise
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self._close()

    def _close(self) -> None:
        self._ended = True
        if self._exchange is not None:
            self._exchange.close()

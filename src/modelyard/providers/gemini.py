"""The Google Gemini API adapter (``generateContent``, ``streamGenerateContent``, ``batchEmbedContents``).

This module owns the HTTP calls; the translation is pure and lives beside it:
:mod:`modelyard.providers.gemini_request` (OpenAI request → Gemini) and
:mod:`modelyard.providers.gemini_response` (Gemini answers, stream events, usage, errors → OpenAI).

Wire facts (https://ai.google.dev/api/generate-content): the key goes in the ``x-goog-api-key`` header;
streaming is ``:streamGenerateContent?alt=sse`` where each ``data:`` line is a whole
GenerateContentResponse and the stream simply ends after the chunk that carries ``finishReason``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any
from urllib.parse import quote

import orjson

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError, UpstreamStreamCut, UpstreamUnavailable
from modelyard.providers.base import (
    JSON,
    Capabilities,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
)
from modelyard.providers.gemini_request import (
    embedding_inputs,
    to_gemini_embedding_request,
    to_gemini_request,
)
from modelyard.providers.gemini_response import (
    StreamTranslator,
    error_from_body,
    from_gemini_embeddings,
    from_gemini_response,
)
from modelyard.providers.http import UpstreamClient
from modelyard.providers.sse import iter_sse

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com"


class GeminiClient(UpstreamClient):
    """:class:`UpstreamClient` that also reads Google's structured error details.

    A bad key comes back as 400 with ``ErrorInfo.reason`` API_KEY_INVALID (the status alone would blame
    the client's request), and rate limits carry ``RetryInfo.retryDelay`` rather than only a header.
    """

    def _failure(self, status: int, raw: bytes, headers: Any) -> UpstreamError:
        generic = super()._failure(status, raw, headers)
        try:
            body = orjson.loads(self.scrub(raw.decode("utf-8", "replace")))
        except orjson.JSONDecodeError:
            return generic
        mapped = error_from_body(body, status, self.provider)
        if mapped is None:
            return generic
        if generic.retry_after is not None:  # an explicit Retry-After header wins over the body's hint
            mapped.retry_after = generic.retry_after
        return mapped


class GeminiAdapter:
    """One configured Gemini provider: chat (plain and streamed), tools, JSON output and embeddings."""

    capabilities = Capabilities(chat=True, streaming=True, tools=True, json_schema=True, embeddings=True)

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self.config = config
        self._base_url = (config.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._headers = {"content-type": "application/json"}
        if api_key:
            self._headers["x-goog-api-key"] = api_key
        self._client = GeminiClient(name, config, api_key)

    def _url(self, model: str, method: str) -> str:
        return f"{self._base_url}/v1beta/models/{quote(model, safe='')}:{method}"

    async def complete(self, call: ChatCall) -> ChatResult:
        """Run ``generateContent`` and translate the answer to an OpenAI chat.completion."""
        body = orjson.dumps(to_gemini_request(call.body))
        _, response = await self._client.post_json(
            self._url(call.upstream_model, "generateContent"), body, self._headers
        )
        self._raise_if_error(response)
        result, usage, finish = from_gemini_response(
            response, model=call.upstream_model, created=int(time.time()), response_id=_new_id()
        )
        return ChatResult(body=result, usage=usage, finish_reason=finish)

    async def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON]:
        """Yield OpenAI chunks from ``streamGenerateContent?alt=sse``, keeping ``meter`` current."""
        translator = StreamTranslator(
            model=call.upstream_model, created=int(time.time()), response_id=_new_id(), provider=self.name
        )
        meter.upstream_model = call.upstream_model
        body = orjson.dumps(to_gemini_request(call.body))
        url = self._url(call.upstream_model, "streamGenerateContent") + "?alt=sse"
        async with aclosing(self._client.stream(url, body, self._headers)) as chunks:
            async for event in self._events(chunks):
                for chunk in translator.feed(event):
                    _update(meter, translator)
                    meter.chunks += 1
                    yield chunk
                _update(meter, translator)  # an event may bring usage but no chunk
        if not translator.finished:
            raise UpstreamStreamCut(
                f"{self.name} stream ended before its final chunk", provider=self.name, upstream_status=200
            )
        meter.chunks += 1
        yield translator.finish()

    async def _events(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[JSON]:
        """Decoded ``data:`` payloads. A payload truncated by a dropped connection is a cut; transport
        failures mid-stream are already mapped by :class:`UpstreamClient` (cut, or timeout for a stall)."""
        async for event in iter_sse(chunks):
            if not event.data.strip():
                continue
            try:
                # Scrubbed like error bodies: an in-stream error must not carry the key to a client.
                payload = orjson.loads(self._client.scrub(event.data))
            except orjson.JSONDecodeError:
                payload = None
            if not isinstance(payload, dict):
                raise UpstreamStreamCut(
                    f"{self.name} stream ended inside an event", provider=self.name, upstream_status=200
                )
            yield payload

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        """``batchEmbedContents`` for every input at once; usage is estimated (Gemini reports none)."""
        texts = embedding_inputs(call.body)
        body = orjson.dumps(to_gemini_embedding_request(call.body, call.upstream_model))
        _, response = await self._client.post_json(
            self._url(call.upstream_model, "batchEmbedContents"), body, self._headers
        )
        self._raise_if_error(response)
        result, usage = from_gemini_embeddings(response, call.body, texts, call.upstream_model)
        return EmbeddingResult(body=result, usage=usage)

    def _raise_if_error(self, response: Any) -> None:
        """A 200 whose body is not an object, or is an error object, is an upstream failure."""
        if not isinstance(response, dict):
            raise UpstreamUnavailable(f"{self.name} sent an unexpected body", provider=self.name)
        error = error_from_body(response, 500, self.name)
        if error is not None:
            raise error

    async def close(self) -> None:
        await self._client.close()


def _update(meter: StreamMeter, translator: StreamTranslator) -> None:
    meter.usage = translator.usage
    meter.finish_reason = translator.finish_reason
    meter.output_chars = translator.output_chars
    meter.upstream_model = translator.model
    meter.tool_calls = translator.tool_calls


def _new_id() -> str:
    """Used when Gemini sends no ``responseId``."""
    return f"chatcmpl-{uuid.uuid4().hex}"

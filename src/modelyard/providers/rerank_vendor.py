"""What the vendors' rerank APIs share: one adapter, given each vendor's pure translation functions.

Cohere (``POST /v2/rerank``), Jina and Voyage (``POST /v1/rerank``) each take a query and a list of
documents and answer with scored indices, but name things differently (Voyage's ``top_k`` and ``data``,
Cohere's ``meta.billed_units``) and bill differently (Cohere per search unit, Jina and Voyage per token).
Each vendor module is a :class:`RerankFormat` — two pure functions and a path — and a three-line adapter
class; this module does the HTTP.

The gateway's rerank endpoint (http/rerank_api.py) hands the adapter the client's Cohere/Jina-style body
through :meth:`RerankAdapter.post_raw`, the same call it makes on OpenAI-compatible servers, and reads
usage from the answer's ``usage.total_tokens``. So every translated answer has the shape clients of
``/v1/rerank`` expect: ``{results: [{index, relevance_score, document?: {text}}], usage?, ...}``.

Error bodies: Cohere sends ``{"message": ...}``, Jina and Voyage FastAPI's ``{"detail": ...}``. The
status code decides the error class (errors.py); the body only lends its message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError
from modelyard.providers.base import (
    JSON,
    Capabilities,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
)
from modelyard.providers.http import UpstreamClient, UpstreamStream, error_message_of

#: The one path the gateway forwards to a rerank API (http/rerank_api.py's endpoint).
RERANK_PATH = "/rerank"


@dataclass(frozen=True, slots=True)
class RerankFormat:
    """One vendor's rerank wire format."""

    #: Under the provider's ``base_url`` (which ends in the API version: ``.../v2``, ``.../v1``).
    path: str
    #: The gateway's rerank body (upstream model in ``model``) → the vendor's request body.
    to_request: Callable[[JSON], JSON]
    #: (vendor's answer, the gateway's body that asked) → the gateway's rerank answer. Raises
    #: ``ValueError`` when the answer lacks what the vendor documents.
    to_answer: Callable[[Any, JSON], JSON]


def document_texts(body: JSON) -> list[str]:
    """Every document's text: the gateway accepts strings or ``{text}`` objects; the vendors take strings."""
    return [d if isinstance(d, str) else str(d.get("text", "")) for d in body["documents"]]


def copy_present(source: JSON, target: JSON, names: Mapping[str, str]) -> JSON:
    """``target`` with ``source[ours]`` set as ``target[theirs]`` for each name that ``source`` has."""
    for ours, theirs in names.items():
        if source.get(ours) is not None:
            target[theirs] = source[ours]
    return target


def scored(result: Any) -> JSON:
    """One result's ``index`` and ``relevance_score``, checked (a malformed answer must not reach a client)."""
    if not isinstance(result, dict):
        raise ValueError("a result is not an object")
    index, score = result.get("index"), result.get("relevance_score")
    if not isinstance(index, int) or not isinstance(score, int | float):
        raise ValueError("a result lacks an integer index or a numeric relevance_score")
    return {"index": index, "relevance_score": float(score)}


def vendor_error_message(body: Any) -> str | None:
    """Cohere's ``message``, FastAPI's ``detail`` (a string, or a list of validation errors), or
    ``error.message``."""
    if isinstance(body, dict):
        for name in ("message", "detail"):
            value = body.get(name)
            if isinstance(value, str):
                return value
            if isinstance(value, list) and value and isinstance(value[0], dict):
                return str(value[0].get("msg", value[0]))
    return error_message_of(body)


class _VendorClient(UpstreamClient):
    """The shared client, reading the vendors' error bodies (which lack OpenAI's ``error.message``)."""

    def error_message(self, body: Any) -> str | None:
        return vendor_error_message(body)


class RerankAdapter:
    """A rerank-only provider: ``post_raw("/rerank", body)`` translated to and from :attr:`wire`."""

    wire: ClassVar[RerankFormat]
    capabilities = Capabilities(chat=False, streaming=False, tools=False, json_schema=False, embeddings=False)

    def __init__(self, name: str, config: ProviderConfig, api_key: str | None) -> None:
        self.name = name
        self._url = (config.base_url or "").rstrip("/") + self.wire.path
        self._client = _VendorClient(name, config, api_key)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"  # all three take a bearer key

    def _unsupported(self, what: str) -> UpstreamError:
        return UpstreamError(
            f"{self.name} is a rerank API: it serves POST /v1/rerank, not {what}",
            provider=self.name,
            code="unsupported",
            status=400,
        )

    async def post_raw(self, path: str, body: JSON) -> tuple[bytes, Any]:
        """Rerank ``body`` (the gateway's rerank request); the translated answer, serialised and parsed."""
        if path != RERANK_PATH:
            raise self._unsupported(path)
        request = orjson.dumps(self.wire.to_request(body))
        _, answer = await self._client.post_json(self._url, request, self._headers)
        try:
            translated = self.wire.to_answer(answer, body)
        except (ValueError, KeyError, TypeError) as exc:
            raise UpstreamError(
                f"{self.name} sent a rerank answer that does not follow its API: {exc}", provider=self.name
            ) from None
        return orjson.dumps(translated), translated

    async def open_raw_stream(self, path: str, body: JSON) -> UpstreamStream:
        raise self._unsupported(f"streamed {path}")

    async def complete(self, call: ChatCall) -> ChatResult:
        raise self._unsupported("chat")

    async def stream(self, call: ChatCall, meter: StreamMeter) -> AsyncIterator[JSON]:
        raise self._unsupported("chat")
        yield {}  # type: ignore[unreachable]  # makes this an async generator, as the contract asks

    async def embed(self, call: EmbeddingCall) -> EmbeddingResult:
        raise self._unsupported("embeddings")

    async def close(self) -> None:
        await self._client.close()

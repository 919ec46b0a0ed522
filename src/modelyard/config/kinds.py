"""The provider kinds, as data: one line per API family — the adapter class that speaks it, where it runs
unless the config says otherwise, and what it needs.

The provider registry (:mod:`modelyard.providers.registry`) builds adapters from this table, and the config
accepts exactly its kinds, so adding a provider kind is its adapter module, one line here, and its fake
(tests/conftest.py FAKES). Kept in ``config/`` because the config validates against it and sits below the
providers; the adapter is named by import path, so nothing here imports a provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator

Hosting = Literal["self_hosted", "external"]


@dataclass(frozen=True, slots=True)
class Kind:
    #: ``module:Class`` of the adapter.
    adapter: str
    #: Where a provider of this kind runs by default: decides what data-class policy lets it see.
    hosting: Hosting
    #: False for an in-process model: no ``base_url``, nothing on the wire.
    wire: bool = True
    #: True when it can only embed (the in-process model).
    embeddings_only: bool = False
    #: True when it serves ``kind: rerank`` models (``POST /v1/rerank``).
    reranks: bool = False
    #: True when it can only rerank (the vendors' rerank APIs: their chat APIs are other kinds or none).
    rerank_only: bool = False


KINDS: dict[str, Kind] = {
    "openai": Kind("modelyard.providers.openai:OpenAIAdapter", "external"),
    "anthropic": Kind("modelyard.providers.anthropic:AnthropicAdapter", "external"),
    "gemini": Kind("modelyard.providers.gemini:GeminiAdapter", "external"),
    "openai_compatible": Kind(
        "modelyard.providers.openai_compatible:OpenAICompatibleAdapter", "self_hosted", reranks=True
    ),
    # The rerank APIs: Cohere's v2/rerank, Jina's and Voyage's v1/rerank (providers/rerank_vendor.py).
    "cohere": Kind(
        "modelyard.providers.cohere:CohereRerankAdapter", "external", reranks=True, rerank_only=True
    ),
    "jina": Kind("modelyard.providers.jina:JinaRerankAdapter", "external", reranks=True, rerank_only=True),
    "voyage": Kind(
        "modelyard.providers.voyage:VoyageRerankAdapter", "external", reranks=True, rerank_only=True
    ),
    "local": Kind(
        "modelyard.providers.local_embeddings:LocalEmbeddingAdapter",
        "self_hosted",
        wire=False,
        embeddings_only=True,
    ),
}


def _known(kind: str) -> str:
    if kind not in KINDS:
        names = [repr(k) for k in KINDS]
        raise ValueError(f"Input should be {', '.join(names[:-1])} or {names[-1]}")
    return kind


#: A provider kind named in the config: one of :data:`KINDS`.
ProviderKind = Annotated[str, AfterValidator(_known)]

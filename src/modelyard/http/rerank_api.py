"""``POST /v1/rerank``: the Cohere/Jina-style rerank request, to self-hosted rerankers or rerank APIs.

The request most clients send (Cohere's v2 and Jina's shape, which vLLM, TEI and Infinity serve):
``{model, query, documents: [str | {text}], top_n?, return_documents?}``; the answer
``{results: [{index, relevance_score, document?}], usage?}``.

Rerank models are ``kind: rerank`` in the config, on ``openai_compatible`` providers (the body and answer
pass as they are) or on the ``cohere``, ``jina`` and ``voyage`` kinds, whose adapters translate both
(providers/rerank_vendor.py) behind the same ``post_raw`` call; the config refuses other kinds. Admission sees the query and documents as embedding-style ``input`` (:func:`admission_body`), so
data-class policy and PII masking apply; what goes upstream is the client's body with the upstream model
and the (masked) texts. Usage is the server's token count when it reports one (vLLM does), else
estimated and flagged; search units (Cohere's billing: ``usage.search_units`` of the translated answer)
are recorded beside them. The cost is the catalog's when it prices the model (per token or per search
unit), else unpriced, never $0.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from modelyard.errors import UpstreamError
from modelyard.gateway.passthrough import Endpoint
from modelyard.gateway.targets import Target
from modelyard.providers.base import JSON, StreamMeter, Usage, estimate_tokens


@with_config(ConfigDict(extra="allow"))
class RerankRequest(TypedDict):
    """The body of ``POST /v1/rerank`` as the gateway accepts it (unknown members pass)."""

    model: NotRequired[str]
    query: str
    documents: Annotated[list[str | dict[str, Any]], Field(min_length=1)]
    top_n: NotRequired[Annotated[int, Field(ge=1)]]
    return_documents: NotRequired[bool]
    metadata: NotRequired[dict[str, Any] | None]


def document_text(document: str | JSON) -> str:
    return document if isinstance(document, str) else str(document.get("text", ""))


def admission_body(body: JSON) -> JSON:
    """What admission sees: the query and every document's text as ``input``."""
    admitted: JSON = {"input": [body["query"], *map(document_text, body["documents"])]}
    for name in ("model", "metadata"):
        if body.get(name) is not None:
            admitted[name] = body[name]
    return admitted


def endpoint(original: JSON, admitted: JSON) -> Endpoint:
    """The client's body with the upstream model and the texts admission let through (masked or not)."""
    query, *texts = admitted["input"]
    documents = [
        text if isinstance(doc, str) else {**doc, "text": text}
        for doc, text in zip(original["documents"], texts, strict=True)
    ]
    chars = sum(map(len, admitted["input"]))

    def body(target: Target) -> JSON:
        upstream = {**original, "model": target.upstream_model, "query": query, "documents": documents}
        upstream.pop("metadata", None)  # gateway routing data
        return upstream

    def answer(raw: Any) -> tuple[Usage | None, str | None]:
        usage = raw.get("usage") if isinstance(raw, dict) else None
        if not isinstance(usage, dict):
            usage = {}
        tokens = usage.get("total_tokens") or usage.get("prompt_tokens")
        units = usage.get("search_units")
        searches = units if isinstance(units, int) and not isinstance(units, bool) else 0
        if isinstance(tokens, int):
            return Usage(input_tokens=tokens, search_units=searches), None
        return Usage(input_tokens=estimate_tokens(chars), estimated=True, search_units=searches), None

    return Endpoint("/rerank", body, answer, _no_stream, _no_cut)


def _no_stream(event: JSON, meter: StreamMeter) -> bool:
    raise AssertionError("rerank answers are not streamed")


def _no_cut(error: UpstreamError) -> bytes:
    raise AssertionError("rerank answers are not streamed")

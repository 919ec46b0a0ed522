"""Provider kind ``jina``: Jina AI's rerank API, ``POST {base_url}/rerank`` with ``base_url`` ending ``/v1``.

Wire format (jina.ai/reranker, "Reranker API"): the request is ``{model, query, documents: [str], top_n?,
return_documents?}``; the answer ``{model, usage: {total_tokens}, results: [{index, relevance_score,
document?: {text}}]}`` — the shape the gateway's own answer follows, so translation only checks it and
drops what the client did not ask for. Jina bills tokens: ``usage.total_tokens`` is metered as input.
"""

from __future__ import annotations

from typing import Any

from modelyard.providers.base import JSON
from modelyard.providers.rerank_vendor import (
    RerankAdapter,
    RerankFormat,
    copy_present,
    document_texts,
    scored,
)

_OPTIONAL = {"top_n": "top_n", "return_documents": "return_documents"}


def rerank_request(body: JSON) -> JSON:
    request: JSON = {"model": body["model"], "query": body["query"], "documents": document_texts(body)}
    return copy_present(body, request, _OPTIONAL)


def rerank_answer(raw: Any, sent: JSON) -> JSON:
    if not isinstance(raw, dict) or not isinstance(raw.get("results"), list):
        raise ValueError("no results list")
    results = []
    for result in raw["results"]:
        entry = scored(result)
        document = result.get("document")
        if sent.get("return_documents") is not False and isinstance(document, dict):
            entry["document"] = {"text": str(document.get("text", ""))}
        results.append(entry)
    answer: JSON = {"model": raw.get("model", sent["model"]), "results": results}
    usage = raw.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
        answer["usage"] = {"total_tokens": usage["total_tokens"]}
    return answer


class JinaRerankAdapter(RerankAdapter):
    wire = RerankFormat("/rerank", rerank_request, rerank_answer)

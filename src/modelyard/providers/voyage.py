"""Provider kind ``voyage``: Voyage AI's rerank API, ``POST {base_url}/rerank`` with ``base_url`` ending ``/v1``.

Wire format (docs.voyageai.com/reference/reranker-api): the request is ``{model, query, documents: [str],
top_k?, return_documents?, truncation?}``; the answer ``{object: "list", data: [{index, relevance_score,
document?: str}], model, usage: {total_tokens}}``. Translated: the gateway's ``top_n`` goes as ``top_k``,
``data`` comes back as ``results`` with each document as ``{text}``. Voyage bills tokens:
``usage.total_tokens`` is metered as input.
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

_OPTIONAL = {"top_n": "top_k", "return_documents": "return_documents", "truncation": "truncation"}


def rerank_request(body: JSON) -> JSON:
    request: JSON = {"model": body["model"], "query": body["query"], "documents": document_texts(body)}
    return copy_present(body, request, _OPTIONAL)


def rerank_answer(raw: Any, sent: JSON) -> JSON:
    if not isinstance(raw, dict) or not isinstance(raw.get("data"), list):
        raise ValueError("no data list")
    results = []
    for result in raw["data"]:
        entry = scored(result)
        if isinstance(result.get("document"), str):
            entry["document"] = {"text": result["document"]}
        results.append(entry)
    answer: JSON = {"model": raw.get("model", sent["model"]), "results": results}
    usage = raw.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
        answer["usage"] = {"total_tokens": usage["total_tokens"]}
    return answer


class VoyageRerankAdapter(RerankAdapter):
    wire = RerankFormat("/rerank", rerank_request, rerank_answer)

"""Provider kind ``cohere``: Cohere's rerank API, ``POST {base_url}/rerank`` with ``base_url`` ending ``/v2``.

Wire format (docs.cohere.com/reference/rerank, v2): the request is ``{model, query, documents: [str],
top_n?, max_tokens_per_doc?, priority?}``; the answer ``{id, results: [{index, relevance_score}], meta:
{api_version, billed_units: {search_units}}}``, most relevant first. v2 never returns the documents, so
``return_documents: true`` is served here from the texts that were sent.

Cohere bills search units (one query with up to 100 documents; longer documents count as several), not
tokens: the answer keeps ``meta.billed_units`` for the client, and the ledger's token count is estimated
and flagged. The price catalog is per token, so Cohere models stay unpriced (never $0).
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

#: The gateway's names → Cohere's, for the optional members Cohere takes.
_OPTIONAL = {"top_n": "top_n", "max_tokens_per_doc": "max_tokens_per_doc", "priority": "priority"}


def rerank_request(body: JSON) -> JSON:
    request: JSON = {"model": body["model"], "query": body["query"], "documents": document_texts(body)}
    return copy_present(body, request, _OPTIONAL)


def rerank_answer(raw: Any, sent: JSON) -> JSON:
    if not isinstance(raw, dict) or not isinstance(raw.get("results"), list):
        raise ValueError("no results list")
    results = [scored(r) for r in raw["results"]]
    if sent.get("return_documents"):
        texts = document_texts(sent)
        for result in results:
            result["document"] = {"text": texts[result["index"]]}
    answer: JSON = {"id": raw.get("id"), "model": sent["model"], "results": results}
    if isinstance(raw.get("meta"), dict):
        answer["meta"] = raw["meta"]  # billed_units.search_units: what Cohere's clients read
    return answer


class CohereRerankAdapter(RerankAdapter):
    wire = RerankFormat("/rerank", rerank_request, rerank_answer)

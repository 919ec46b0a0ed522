"""Provider kind ``cohere``: Cohere's rerank API, ``POST {base_url}/rerank`` with ``base_url`` ending ``/v2``.

Wire format (docs.cohere.com/reference/rerank, v2): the request is ``{model, query, documents: [str],
top_n?, max_tokens_per_doc?, priority?}``; the answer ``{id, results: [{index, relevance_score}], meta:
{api_version, billed_units: {search_units}}}``, most relevant first. v2 never returns the documents, so
``return_documents: true`` is served here from the texts that were sent.

Cohere bills search units, not tokens (cohere.com/pricing: "one query with up to 100 documents to be
ranked"; docs.cohere.com "Best Practices for using Rerank": a document longer than the model's context,
less 4 reserved tokens and the query, is split into chunks, and each chunk counts as a document). The
answer keeps ``meta.billed_units`` for the client and adds the gateway's ``usage: {search_units}`` — the
units Cohere reported, or, when it reported none, :func:`search_units` estimated from the texts — which
the ledger records and the catalog prices (``per_1k_search_units``). The ledger's token count is
estimated and flagged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from modelyard.providers.base import JSON, estimate_tokens
from modelyard.providers.rerank_vendor import (
    RerankAdapter,
    RerankFormat,
    copy_present,
    document_texts,
    scored,
)

#: The gateway's names → Cohere's, for the optional members Cohere takes.
_OPTIONAL = {"top_n": "top_n", "max_tokens_per_doc": "max_tokens_per_doc", "priority": "priority"}


#: Documents one search unit covers.
DOCUMENTS_PER_SEARCH_UNIT = 100
#: Tokens of a model's context Cohere reserves for special tokens (its chunking rule).
RESERVED_TOKENS = 4
#: The longest query Cohere reads ("Best Practices for using Rerank": tokens per query, at most 2,048).
MAX_QUERY_TOKENS = 2_048


def context_tokens(model: str) -> int:
    """The context a chunk fills: 32,768 tokens for Rerank 4, 4,096 for the 3.x models."""
    return 32_768 if model.startswith("rerank-v4") else 4_096


def search_units(query_tokens: int, document_tokens: Sequence[int], context: int) -> int:
    """Search units of one rerank call by Cohere's rule: every document takes as many chunks as its
    text needs beside the query within ``context`` (less the reserved tokens); each 100 chunks, or part
    of them, is one unit."""
    room = max(context - RESERVED_TOKENS - min(query_tokens, MAX_QUERY_TOKENS), 1)
    chunks = sum(max(-(-tokens // room), 1) for tokens in document_tokens)
    return max(-(-chunks // DOCUMENTS_PER_SEARCH_UNIT), 1)


def billed_search_units(raw: JSON, sent: JSON) -> int:
    """The search units Cohere reported in ``meta.billed_units``, else the estimate by its rule."""
    meta = raw.get("meta")
    billed = meta.get("billed_units") if isinstance(meta, dict) else None
    reported = billed.get("search_units") if isinstance(billed, dict) else None
    if isinstance(reported, int | float) and not isinstance(reported, bool):
        return int(reported)
    tokens = [estimate_tokens(len(text)) for text in document_texts(sent)]
    return search_units(estimate_tokens(len(sent["query"])), tokens, context_tokens(sent["model"]))


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
    # Where every /v1/rerank answer carries its usage (vLLM, Jina and Voyage put total_tokens there).
    answer["usage"] = {"search_units": billed_search_units(raw, sent)}
    return answer


class CohereRerankAdapter(RerankAdapter):
    wire = RerankFormat("/rerank", rerank_request, rerank_answer)

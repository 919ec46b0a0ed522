"""Fake Cohere (v2), Jina and Voyage rerank servers, each in its vendor's published wire format.

- Cohere ``POST /v2/rerank`` (docs.cohere.com/reference/rerank): answers ``{id, results: [{index,
  relevance_score}], meta: {api_version: {version: "2"}, billed_units: {search_units}}}`` (one unit per 100
  documents, or part of them; the fake sends no chunks); never returns documents; errors ``{"message": ...}`` (docs.cohere.com/reference/errors).
- Jina ``POST /v1/rerank``: ``{model, usage: {total_tokens}, results: [{index, relevance_score, document:
  {text}}]}`` (documents unless ``return_documents: false``); errors ``{"detail": ...}``.
- Voyage ``POST /v1/rerank`` (docs.voyageai.com/reference/reranker-api): ``{object: "list", data: [{index,
  relevance_score, document?: str}], model, usage: {total_tokens}}``, ``top_k`` not ``top_n``; errors
  ``{"detail": ...}``.

Each scores a document by the query words it contains (/10) and counts 3 tokens per text. Each takes only
strings as documents and refuses anything else with a 400, as the vendors do for a malformed body.
Scenarios (:class:`FakeState`): ``text`` answers; ``rate_limited`` is a 429 with ``retry-after: 7``;
``bad_request`` a 400 "bad things"; ``auth_error`` a 401; ``stream_cut`` a 200 whose body lacks results.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from tests.fakes.common import STATE, FakeState

API_KEY = "sk-test-SECRET-0001"  # tests/conftest.py FAKE_KEY, as the other fakes

_ERRORS = {
    "rate_limited": (429, "You are using a Trial key, which is limited to 10 API calls / minute."),
    "bad_request": (400, "bad things"),
    "auth_error": (401, "invalid api token"),
}


def _scores(query: str, texts: list[str]) -> list[dict[str, Any]]:
    words = set(query.lower().split())
    ranked = [
        {"index": i, "relevance_score": len(words & set(t.lower().split())) / 10} for i, t in enumerate(texts)
    ]
    ranked.sort(key=lambda r: -r["relevance_score"])
    return ranked


async def _checked(request: web.Request, error_key: str) -> tuple[Any, web.Response | None]:
    """The request body, or the vendor's error answer (``{error_key: message}``)."""
    state = request.app[STATE]
    body = await state.record(request)

    def error(status: int, message: str) -> web.Response:
        headers = {"retry-after": "7"} if status == 429 else None
        return web.json_response({error_key: message}, status=status, headers=headers)

    if request.headers.get("Authorization") != f"Bearer {API_KEY}":
        return body, error(401, "invalid api token")
    if state.scenario in _ERRORS:
        return body, error(*_ERRORS[state.scenario])
    if state.scenario == "stream_cut":
        return body, web.json_response({"id": "broken"})
    if not all(isinstance(d, str) for d in body.get("documents", [None])):
        return body, error(400, "documents must be a list of strings")
    return body, None


async def cohere_rerank(request: web.Request) -> web.Response:
    body, failure = await _checked(request, "message")
    if failure is not None:
        return failure
    results = _scores(body["query"], body["documents"])[: body.get("top_n") or None]
    units = -(-len(body["documents"]) // 100)
    meta = {"api_version": {"version": "2"}, "billed_units": {"search_units": units}}
    return web.json_response({"id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf", "results": results, "meta": meta})


async def jina_rerank(request: web.Request) -> web.Response:
    body, failure = await _checked(request, "detail")
    if failure is not None:
        return failure
    texts = body["documents"]
    results = _scores(body["query"], texts)[: body.get("top_n") or None]
    if body.get("return_documents", True):
        for result in results:
            result["document"] = {"text": texts[result["index"]]}
    usage = {"total_tokens": 3 * (len(texts) + 1)}
    return web.json_response({"model": body["model"], "usage": usage, "results": results})


async def voyage_rerank(request: web.Request) -> web.Response:
    body, failure = await _checked(request, "detail")
    if failure is not None:
        return failure
    texts = body["documents"]
    data = _scores(body["query"], texts)[: body.get("top_k") or None]
    if body.get("return_documents"):
        for result in data:
            result["document"] = texts[result["index"]]
    usage = {"total_tokens": 3 * (len(texts) + 1)}
    return web.json_response({"object": "list", "data": data, "model": body["model"], "usage": usage})


#: kind → (the handler, the path it serves, the base_url suffix a config names).
VENDORS = {
    "cohere": (cohere_rerank, "/v2/rerank", "/v2"),
    "jina": (jina_rerank, "/v1/rerank", "/v1"),
    "voyage": (voyage_rerank, "/v1/rerank", "/v1"),
}


def create_app(kind: str, state: FakeState) -> web.Application:
    handler, path, _ = VENDORS[kind]
    app = web.Application()
    app[STATE] = state
    app.router.add_post(path, handler)
    return app

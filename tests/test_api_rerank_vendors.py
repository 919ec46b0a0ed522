"""`POST /v1/rerank` served by the vendors' rerank APIs (Cohere v2, Jina, Voyage): each fake speaks its
vendor's wire format (tests/fakes/rerank_vendors.py), over real loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.config import parse_config
from modelyard.errors import ConfigError
from modelyard.providers import cohere, jina, voyage
from modelyard.providers.rerank_vendor import vendor_error_message
from tests.conftest import FAKE_KEY, GatewayUnderTest
from tests.fakes import rerank_vendors
from tests.fakes.common import FakeState, serve_app

VENDORS = ["cohere", "jina", "voyage"]
UPSTREAM = {
    "cohere": "rerank-v4.0-fast",
    "jina": "jina-reranker-v2-base-multilingual",
    "voyage": "rerank-2.5",
}
DOCUMENTS = ["a poem about spring", {"text": "gpu prices fell"}, "prices of gpu rentals rose"]
TEXTS = ["a poem about spring", "gpu prices fell", "prices of gpu rentals rose"]


#: A price file layer for Cohere (the bundled catalog leaves Cohere unpriced, see its notes): a figure for
#: the test, in the per-search-unit shape Cohere bills.
COHERE_PRICES = """
version: test
models:
  - {provider: cohere, model: rerank-v4.0-fast, input: "0", output: "0", per_1k_search_units: "2.00",
     source: test, as_of: 2026-12-03}
"""


def raw_config(bases: dict[str, str], tmp: Path) -> dict[str, Any]:
    prices = tmp / "cohere_prices.yaml"
    prices.write_text(COHERE_PRICES, encoding="utf-8")
    providers = {
        kind: {"kind": kind, "base_url": base, "api_key_env": f"FAKE_{kind.upper()}_KEY"}
        for kind, base in bases.items()
    }
    models = {
        f"{kind}-rerank": {"provider": kind, "upstream_model": UPSTREAM[kind], "kind": "rerank"}
        for kind in bases
    }
    return {
        "providers": providers,
        "models": models,
        "ledger": {"url": f"sqlite:///{tmp / 'ledger.db'}", "flush_interval_ms": 20},
        "catalog": {"price_files": [str(prices)]},
    }


@pytest.fixture
async def vendors_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GatewayUnderTest]:
    from modelyard.app import running_gateway

    bases: dict[str, str] = {}
    states: dict[str, FakeState] = {}
    async with AsyncExitStack() as stack:
        for kind in VENDORS:
            states[kind] = FakeState()
            url = await stack.enter_async_context(serve_app(rerank_vendors.create_app(kind, states[kind])))
            bases[kind] = url + rerank_vendors.VENDORS[kind][2]
            monkeypatch.setenv(f"FAKE_{kind.upper()}_KEY", FAKE_KEY)
        config = parse_config(raw_config(bases, tmp_path))
        async with running_gateway(config, "127.0.0.1", 0) as url:
            yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=orjson.dumps(body)) as r:
        return r.status, orjson.loads(await r.read())


@pytest.mark.parametrize("kind", VENDORS)
async def test_each_rerank_api_gets_its_wire_format_and_the_client_gets_one_answer_shape(
    vendors_gateway: GatewayUnderTest, kind: str
) -> None:
    body = {"model": f"{kind}-rerank", "query": "gpu prices", "documents": DOCUMENTS, "top_n": 2}
    status, answer = await post(f"{vendors_gateway.url}/v1/rerank", {**body, "return_documents": True})
    assert status == 200, answer
    assert [r["index"] for r in answer["results"]] == [1, 2]
    assert [r["document"]["text"] for r in answer["results"]] == TEXTS[1:], (
        "documents as {text}, in rank order"
    )
    assert answer["results"][0]["relevance_score"] == pytest.approx(0.2)

    received = vendors_gateway.states[kind].received[-1]
    assert received.path == rerank_vendors.VENDORS[kind][1]
    assert received.headers["Authorization"] == f"Bearer {FAKE_KEY}"
    sent = received.body
    assert sent["model"] == UPSTREAM[kind] and sent["documents"] == TEXTS, "the vendors take strings"
    if kind == "voyage":
        assert sent["top_k"] == 2 and "top_n" not in sent
    else:
        assert sent["top_n"] == 2
    if kind == "cohere":
        assert "return_documents" not in sent, "v2 has no return_documents: the gateway fills them in"

    (row,) = await vendors_gateway.wait_rows(1)
    assert row["endpoint"] == "rerank" and row["status"] == 200
    if kind == "cohere":
        assert answer["meta"]["billed_units"] == {"search_units": 1}, "Cohere's billing passed to the client"
        assert answer["usage"] == {"search_units": 1}
        assert row["usage_estimated"], "Cohere reports search units, not tokens: estimated and flagged"
        assert row["search_units"] == 1 and row["priced"] == 1
        assert row["cost_pico_usd"] == 2 * 10**9, "$2.00 per 1,000 search units: $0.002 for one"
    else:
        assert answer["usage"] == {"total_tokens": 12}
        assert row["input_tokens"] == 12 and not row["usage_estimated"] and row["search_units"] == 0
    if kind == "voyage":
        assert row["priced"] == 1 and row["cost_pico_usd"] == 12 * 50_000, "rerank-2.5: $0.05 per 1M tokens"
    if kind == "jina":
        assert row["priced"] == 0 and row["cost_pico_usd"] is None, "no catalog price: unpriced, never $0"


ERRORS = [
    # scenario, status the client sees, error code, what the message carries
    ("rate_limited", 429, "rate_limit_exceeded", "Trial key"),
    ("bad_request", 400, "upstream_invalid_request", "bad things"),
    ("auth_error", 502, "upstream_auth_failed", "api_key_env"),
    ("stream_cut", 502, "upstream_error", "does not follow its API"),
]


@pytest.mark.parametrize("kind", VENDORS)
@pytest.mark.parametrize(("scenario", "status", "code", "says"), ERRORS)
async def test_vendor_errors_reach_the_client_openai_shaped(
    vendors_gateway: GatewayUnderTest, kind: str, scenario: Any, status: int, code: str, says: str
) -> None:
    vendors_gateway.states[kind].scenario = scenario
    answered, answer = await post(
        f"{vendors_gateway.url}/v1/rerank", {"model": f"{kind}-rerank", "query": "q", "documents": ["d"]}
    )
    assert answered == status, answer
    assert answer["error"]["code"] == code and says in answer["error"]["message"]
    assert FAKE_KEY not in orjson.dumps(answer).decode()


async def test_a_chat_request_to_a_rerank_api_is_refused_naming_the_kind(
    vendors_gateway: GatewayUnderTest,
) -> None:
    status, answer = await post(
        f"{vendors_gateway.url}/v1/chat/completions",
        {"model": "jina-rerank", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert status == 400 and "rerank" in answer["error"]["message"]
    assert vendors_gateway.states["jina"].received == [], "nothing went upstream"


def test_a_rerank_api_serves_only_rerank_models(tmp_path: Path) -> None:
    raw = raw_config({"cohere": "http://127.0.0.1:9/v2"}, tmp_path)
    raw["models"]["cohere-rerank"].pop("kind")
    with pytest.raises((ConfigError, ValueError), match="serves rerank only; set 'kind: rerank'"):
        parse_config(raw)


def test_the_refusal_of_a_rerank_model_lists_the_rerank_apis(tmp_path: Path) -> None:
    raw = raw_config({"cohere": "http://127.0.0.1:9/v2"}, tmp_path)
    raw["providers"]["cohere"]["kind"] = "gemini"
    with pytest.raises((ConfigError, ValueError), match=r"rerank APIs \(cohere, jina, voyage\)"):
        parse_config(raw)


# -- the pure translations, from tables of cases ---------------------------------------------------------


def test_voyage_names_top_n_top_k_and_keeps_its_own_options_only() -> None:
    body = {
        "model": "rerank-2.5",
        "query": "q",
        "documents": ["a", {"text": "b"}],
        "top_n": 1,
        "truncation": False,
    }
    request = voyage.rerank_request({**body, "metadata": {"team": "x"}})
    assert request == {
        "model": "rerank-2.5",
        "query": "q",
        "documents": ["a", "b"],
        "top_k": 1,
        "truncation": False,
    }


def test_cohere_returns_documents_only_when_asked() -> None:
    raw = {
        "id": "x",
        "results": [{"index": 1, "relevance_score": 0.9}],
        "meta": {"billed_units": {"search_units": 1}},
    }
    sent = {"model": "rerank-v3.5", "query": "q", "documents": ["a", "b"]}
    assert "document" not in cohere.rerank_answer(raw, sent)["results"][0]
    asked = cohere.rerank_answer(raw, {**sent, "return_documents": True})
    assert asked["results"] == [{"index": 1, "relevance_score": 0.9, "document": {"text": "b"}}]


@pytest.mark.parametrize(
    "raw",
    [
        {"results": [{"index": "1", "relevance_score": 0.5}]},
        {"results": [{"index": 0}]},
        {"data": []},
        ["not", "an", "object"],
    ],
)
def test_an_answer_that_breaks_the_format_is_refused(raw: Any) -> None:
    sent = {"model": "m", "query": "q", "documents": ["a"]}
    with pytest.raises(ValueError):
        jina.rerank_answer(raw, sent)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"id": "x", "message": "invalid request: documents must not be empty"},
            "invalid request: documents must not be empty",
        ),
        ({"detail": "Model not found"}, "Model not found"),
        ({"detail": [{"loc": ["body", "query"], "msg": "field required"}]}, "field required"),
        ({"error": {"message": "nope"}}, "nope"),
        ("plain text", None),
    ],
)
def test_vendor_error_bodies_lend_their_message(body: Any, message: str | None) -> None:
    assert vendor_error_message(body) == message


async def test_a_rerank_api_without_its_key_says_which_variable_to_set(
    vendors_gateway: GatewayUnderTest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.app import running_gateway

    monkeypatch.delenv("FAKE_VOYAGE_KEY")
    async with running_gateway(vendors_gateway.config, "127.0.0.1", 0) as url:
        status, answer = await post(
            f"{url}/v1/rerank", {"model": "voyage-rerank", "query": "q", "documents": ["d"]}
        )
    assert status == 503 and "FAKE_VOYAGE_KEY" in answer["error"]["message"], answer
    assert vendors_gateway.states["voyage"].received == []


async def test_restricted_texts_never_reach_an_external_rerank_api(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from modelyard.app import running_gateway

    state = FakeState()
    monkeypatch.setenv("FAKE_JINA_KEY", FAKE_KEY)
    async with serve_app(rerank_vendors.create_app("jina", state)) as base:
        raw = raw_config({"jina": base + "/v1"}, tmp_path)
        raw["workloads"] = {"contracts": {"data_class": "restricted"}}
        async with running_gateway(parse_config(raw), "127.0.0.1", 0) as url:
            body = {
                "model": "jina-rerank",
                "query": "q",
                "documents": ["d"],
                "metadata": {"workload": "contracts"},
            }
            status, answer = await post(f"{url}/v1/rerank", body)
    assert status == 403 and answer["error"]["type"] == "permission_error", answer
    assert state.received == [], (
        "a rerank API is external by default: the default policy keeps restricted data off it"
    )

"""`POST /v1/rerank` forwarded to a self-hosted reranker (the OpenAI fake standing in for vLLM), metered."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.config import parse_config
from modelyard.errors import ConfigError
from tests.conftest import GatewayUnderTest
from tests.fakes.common import FakeState


def raw_config(bases: dict[str, str], tmp: Path, **extra: Any) -> dict[str, Any]:
    return {
        "providers": {
            "gpu": {
                "kind": "openai_compatible",
                "profile": "vllm",
                "base_url": bases["openai_compatible"],
                "api_key_env": "FAKE_OPENAI_COMPATIBLE_KEY",
            },
            "claude": {
                "kind": "anthropic",
                "base_url": bases.get("anthropic", "http://127.0.0.1:9"),
                "api_key_env": "FAKE_ANTHROPIC_KEY",
            },
        },
        "models": {
            "reranker": {"provider": "gpu", "upstream_model": "BAAI/bge-reranker-v2-m3", "kind": "rerank"},
            "llama": {"provider": "gpu", "upstream_model": "meta-llama/Llama-3.1-8B-Instruct"},
        },
        "ledger": {"url": f"sqlite:///{tmp / 'ledger.db'}", "flush_interval_ms": 20},
        **extra,
    }


@pytest.fixture
async def rerank_gateway(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> AsyncIterator[GatewayUnderTest]:
    from modelyard.app import running_gateway

    bases, states = fakes
    config = parse_config(raw_config(bases, tmp_path))
    async with running_gateway(config, "127.0.0.1", 0) as url:
        yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)


async def post(url: str, body: Any) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.post(url, data=orjson.dumps(body)) as r:
        return r.status, orjson.loads(await r.read())


async def test_rerank_is_forwarded_ordered_and_metered(rerank_gateway: GatewayUnderTest) -> None:
    body = {
        "model": "reranker",
        "query": "gpu prices",
        "documents": ["a poem about spring", {"text": "gpu prices fell"}, "prices of gpu rentals rose"],
        "top_n": 2,
    }
    status, answer = await post(f"{rerank_gateway.url}/v1/rerank", body)
    assert status == 200, answer
    assert [r["index"] for r in answer["results"]] == [1, 2] and answer["usage"]["total_tokens"] == 8
    received = rerank_gateway.states["openai_compatible"].received[-1]
    assert received.path == "/v1/rerank" and received.body["model"] == "BAAI/bge-reranker-v2-m3"
    assert received.body["documents"][1] == {"text": "gpu prices fell"}, "documents go as they came"
    (row,) = await rerank_gateway.wait_rows(1)
    assert row["endpoint"] == "rerank" and row["input_tokens"] == 8 and not row["usage_estimated"]
    assert row["priced"] == 0 and row["cost_pico_usd"] is None, "no catalog price: unpriced, never $0"


async def test_rerank_refuses_a_chat_model_naming_the_config_line(rerank_gateway: GatewayUnderTest) -> None:
    status, answer = await post(
        f"{rerank_gateway.url}/v1/rerank", {"model": "llama", "query": "q", "documents": ["d"]}
    )
    assert status == 400 and answer["error"]["code"] == "wrong_model_kind"
    assert "set 'kind: rerank' under models.llama" in answer["error"]["message"]
    status, answer = await post(f"{rerank_gateway.url}/v1/rerank", {"model": "reranker", "query": "q"})
    assert status == 400 and answer["error"]["param"] == "documents"


def test_a_rerank_model_needs_an_openai_compatible_provider(tmp_path: Path) -> None:
    raw = raw_config({"openai_compatible": "http://127.0.0.1:9/v1"}, tmp_path)
    raw["models"]["reranker"]["provider"] = "claude"
    with pytest.raises((ConfigError, ValueError), match="rerank models are served by openai_compatible"):
        parse_config(raw)

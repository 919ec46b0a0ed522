"""The in-process open model (all-MiniLM-L6-v2 on CPU) served through the gateway like any provider."""

from __future__ import annotations

import math
from pathlib import Path

import openai
import pytest

from modelyard.app import running_gateway
from modelyard.config import parse_config
from tests.conftest import GatewayUnderTest

pytestmark = pytest.mark.slow


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


async def test_local_embeddings_are_real_and_metered(tmp_path: Path) -> None:
    config = parse_config(
        {
            "providers": {"local": {"kind": "local"}},
            "models": {
                "minilm": {"provider": "local", "upstream_model": "all-MiniLM-L6-v2", "kind": "embedding"}
            },
            "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20},
        }
    )
    async with running_gateway(config, "127.0.0.1", 0) as url:
        gateway = GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states={})
        sdk = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        texts = ["The cat sits on the mat.", "A cat is sitting on a rug.", "Quarterly revenue rose by 12%."]
        result = await sdk.embeddings.create(model="minilm", input=texts)
        vectors = [d.embedding for d in result.data]
        assert [len(v) for v in vectors] == [384, 384, 384]
        assert all(math.isclose(cosine(v, v), 1.0, rel_tol=1e-4) for v in vectors), "normalised"
        assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3, "semantics, not noise"
        # Exact usage from the model's own tokenizer, counted by hand: [CLS] + word pieces + [SEP] per text
        # ("the cat sits on the mat ." 7+2, "a cat is sitting on a rug ." 8+2, "quarterly revenue rose by 12 % ." 7+2).
        assert result.usage.prompt_tokens == 28
        single = await sdk.embeddings.create(model="minilm", input="hello")
        assert single.usage.prompt_tokens == 3
        await sdk.close()
        rows = await gateway.wait_rows(2)
    assert [r["input_tokens"] for r in rows] == [28, 3]
    assert all(
        r["provider_kind"] == "local" and r["priced"] == 0 and r["cost_pico_usd"] is None for r in rows
    )
    assert all(r["usage_estimated"] == 0 for r in rows)

"""Legacy `POST /v1/completions` through the official openai SDK: forwarded to OpenAI and OpenAI-compatible
servers, streaming and not, metered; refused clearly for other provider kinds."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import GatewayUnderTest, available_kinds

FORWARDING = ["openai", "openai_compatible"]
OTHERS = [kind for kind in available_kinds() if kind not in FORWARDING]


@pytest.mark.parametrize("kind", FORWARDING)
async def test_completions_forwarded_and_metered(gateway: GatewayUnderTest, kind: str) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    state = gateway.states[kind]
    completion = await sdk.completions.create(model=f"{kind}-chat", prompt="Say hello.", max_tokens=20)
    assert completion.choices[0].text == "Hello, world!" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11
    received = state.received[-1]
    assert received.path == "/v1/completions" and received.body["prompt"] == "Say hello."
    assert received.body["model"] != f"{kind}-chat", "the upstream model name went upstream"

    stream = await sdk.completions.create(model=f"{kind}-chat", prompt=["Say hello."], stream=True)
    text, usage = "", None
    async for chunk in stream:
        text += "".join(choice.text for choice in chunk.choices)
        usage = chunk.usage or usage
    assert text == "Hello, world!" and usage is not None and usage.completion_tokens == 4
    assert state.received[-1].body["stream_options"] == {"include_usage": True}, "metering asks for usage"

    state.scenario = "rate_limited"
    with pytest.raises(openai.RateLimitError):
        await sdk.completions.create(model=f"{kind}-chat", prompt="hi")
    await sdk.close()

    rows = await gateway.wait_rows(3)
    assert [r["endpoint"] for r in rows] == ["completions"] * 3
    assert [(r["input_tokens"], r["output_tokens"], r["streamed"]) for r in rows[:2]] == [
        (11, 4, 0),
        (11, 4, 1),
    ]
    assert not rows[1]["usage_estimated"] and rows[2]["status"] == 429
    if kind == "openai":
        assert rows[0]["priced"] == 1 and rows[0]["cost_pico_usd"] > 0


@pytest.mark.parametrize("kind", OTHERS)
async def test_completions_refused_for_other_provider_kinds(gateway: GatewayUnderTest, kind: str) -> None:
    sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.completions.create(model=f"{kind}-chat", prompt="hi")
    assert "no legacy completions endpoint" in str(refused.value)
    assert "use /v1/chat/completions" in str(refused.value)
    await sdk.close()
    assert gateway.states[kind].received == [], "nothing went upstream"
    (row,) = await gateway.wait_rows(1)
    assert row["status"] == 400 and row["error_kind"] == "unsupported_endpoint"

"""The official ``openai`` SDK, pointed at the gateway, works unchanged against every provider."""

from __future__ import annotations

import json

import openai
import pytest

from tests.conftest import GatewayUnderTest, available_kinds
from tests.test_gateway_conformance import TOOLS

KINDS = available_kinds()


def client(gateway: GatewayUnderTest) -> openai.AsyncOpenAI:
    # The client's key is not the upstream's: the gateway holds provider credentials itself.
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)


@pytest.mark.parametrize("kind", KINDS)
async def test_sdk_chat_stream_tools(gateway: GatewayUnderTest, kind: str) -> None:
    sdk = client(gateway)
    state = gateway.states[kind]
    messages = [{"role": "user", "content": "hello"}]

    completion = await sdk.chat.completions.create(model=f"{kind}-chat", messages=messages)  # type: ignore[arg-type]
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.usage is not None and completion.usage.prompt_tokens == 11

    stream = await sdk.chat.completions.create(
        model=f"{kind}-chat",
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage:
            usage = chunk.usage
    assert text == "Hello, world!"
    assert usage is not None and (usage.prompt_tokens, usage.completion_tokens) == (11, 4)

    state.scenario = "tool_call"
    completion = await sdk.chat.completions.create(
        model=f"{kind}-chat",
        messages=messages,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Paris"}  # type: ignore[union-attr]
    assert completion.choices[0].finish_reason == "tool_calls"

    # The tool result goes back in the next turn, in OpenAI's shape, whatever the provider.
    state.scenario = "text"
    follow_up = [
        *messages,
        completion.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    completion = await sdk.chat.completions.create(
        model=f"{kind}-chat",
        messages=follow_up,  # type: ignore[arg-type]
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert completion.choices[0].message.content == "Hello, world!"
    assert "21" in json.dumps(state.received[-1].body), "the tool result reached the provider"

    state.scenario = "json"
    completion = await sdk.chat.completions.create(
        model=f"{kind}-chat",
        messages=messages,  # type: ignore[arg-type]
        response_format={
            "type": "json_schema",
            "json_schema": {
                "name": "a",
                "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}},
            },
        },
    )
    assert json.loads(completion.choices[0].message.content or "") == {"answer": 42}

    state.scenario = "rate_limited"
    with pytest.raises(openai.RateLimitError):
        await sdk.chat.completions.create(model=f"{kind}-chat", messages=messages)  # type: ignore[arg-type]
    with pytest.raises(openai.NotFoundError):
        await sdk.chat.completions.create(model="no-such-model", messages=messages)  # type: ignore[arg-type]
    await sdk.close()


async def test_sdk_embeddings_and_models(gateway: GatewayUnderTest) -> None:
    sdk = client(gateway)
    result = await sdk.embeddings.create(model="openai-embed", input=["one", "two"])
    assert len(result.data) == 2 and len(result.data[0].embedding) == 3
    models = await sdk.models.list()
    assert "openai-chat" in {m.id for m in models.data}
    await sdk.close()

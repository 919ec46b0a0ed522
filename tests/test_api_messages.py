"""`POST /v1/messages` (Anthropic's format inbound) through the official anthropic SDK, against every
provider kind's fake, streaming and not."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from modelyard.http.messages_api import from_chat, to_chat
from tests.conftest import GatewayUnderTest, available_kinds

KINDS = available_kinds()
TOOL = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def client(gateway: GatewayUnderTest) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0)


async def create(sdk: anthropic.AsyncAnthropic, stream: bool, **kwargs: Any) -> tuple[Any, list[str]]:
    """The final message, and the stream's event types (empty when not streaming)."""
    if not stream:
        return await sdk.messages.create(max_tokens=100, **kwargs), []
    kinds = []
    async with sdk.messages.stream(max_tokens=100, **kwargs) as events:
        async for ev in events:
            kinds.append(ev.type)
        final = await events.get_final_message()
    return final, kinds


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", KINDS)
async def test_messages_text_tools_and_stop_reasons(
    gateway: GatewayUnderTest, kind: str, stream: bool
) -> None:
    sdk = client(gateway)
    state = gateway.states[kind]
    model = f"{kind}-chat"
    turns = [
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi."}]},
        {"role": "user", "content": [{"type": "text", "text": "Again, please."}]},
    ]
    message, events = await create(sdk, stream, model=model, messages=turns, system="You are terse.")
    assert [block.type for block in message.content] == ["text"]
    assert message.content[0].text == "Hello, world!" and message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 4)
    sent = str(state.received[-1].body)
    assert "You are terse." in sent and "Again, please." in sent and "Hi." in sent
    if stream:
        assert events[0] == "message_start" and "content_block_delta" in events
        assert events[-2:] in (["message_delta", "message_stop"], ["message_stop", "content_block_stop"]), (
            events
        )

    state.scenario = "tool_call"
    message, _ = await create(sdk, stream, model=model, messages=[turns[0]], tools=[TOOL])
    (use,) = [block for block in message.content if block.type == "tool_use"]
    assert use.name == "get_weather" and use.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"

    state.scenario = "text"
    follow_up = [
        turns[0],
        {"role": "assistant", "content": [use.model_dump()]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "21 C"}]},
    ]
    message, _ = await create(sdk, stream, model=model, messages=follow_up, tools=[TOOL])
    assert message.content[0].text == "Hello, world!"
    assert "21 C" in str(state.received[-1].body), "the tool result reached the provider"

    state.scenario = "length"
    message, _ = await create(sdk, stream, model=model, messages=[turns[0]])
    assert message.stop_reason == "max_tokens"

    state.scenario = "rate_limited"
    with pytest.raises(anthropic.RateLimitError):
        await sdk.messages.create(model=model, max_tokens=10, messages=[turns[0]])
    await sdk.close()

    rows = await gateway.wait_rows(5)
    assert [r["endpoint"] for r in rows] == ["messages"] * 5
    assert rows[0]["input_tokens"] == 11 and rows[0]["streamed"] == int(stream) and rows[4]["status"] == 429


async def test_errors_come_in_anthropics_shape(gateway: GatewayUnderTest) -> None:
    sdk = client(gateway)
    with pytest.raises(anthropic.NotFoundError) as missing:
        await sdk.messages.create(
            model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
        )
    assert missing.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": missing.value.body["error"]["message"]},  # type: ignore[index]
    }
    assert "openai-chat" in str(missing.value), "the 404 names the models that exist"
    with pytest.raises(anthropic.BadRequestError) as invalid:
        await sdk.messages.create(
            model="openai-chat", max_tokens=0, messages=[{"role": "user", "content": "hi"}]
        )
    assert "max_tokens" in str(invalid.value)
    await sdk.close()


def test_translation_of_tool_turns_and_images() -> None:
    request = {
        "model": "m",
        "max_tokens": 50,
        "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this?"},
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Let me look."},
                    {"type": "tool_use", "id": "t1", "name": "lookup", "input": {"q": "png"}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {
                        "type": "tool_result",
                        "tool_use_id": "t1",
                        "content": [{"type": "text", "text": "a chart"}],
                    },
                    {"type": "text", "text": "Thanks."},
                ],
            },
        ],
        "tool_choice": {"type": "any"},
        "stop_sequences": ["END"],
    }
    chat = to_chat(request)
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "user"]
    assert chat["messages"][1]["content"][1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/png;base64,iVBO"},
    }
    assert chat["messages"][2]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"q":"png"}'}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "a chart"}
    assert chat["tool_choice"] == "required" and chat["stop"] == ["END"] and chat["max_tokens"] == 50
    answer = {
        "model": "m",
        "choices": [{"message": {"content": "A bar chart."}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 100,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 60},
        },
    }
    message = from_chat(answer, request)
    assert message["usage"] == {
        "input_tokens": 40,
        "output_tokens": 5,
        "cache_read_input_tokens": 60,
        "cache_creation_input_tokens": 0,
    }, "Anthropic counts cache reads beside input tokens"


async def test_a_stream_cut_mid_answer_ends_with_an_error_event(gateway: GatewayUnderTest) -> None:
    import aiohttp
    import orjson

    gateway.states["gemini"].scenario = "stream_cut"
    body = {
        "model": "gemini-chat",
        "max_tokens": 10,
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/messages", data=orjson.dumps(body)) as r,
    ):
        raw = (await r.read()).decode()
    events = [block.split("\n")[0].removeprefix("event: ") for block in raw.split("\n\n") if block]
    assert events[0] == "message_start" and "content_block_delta" in events
    assert events[-1] == "error" and "message_stop" not in events
    (row,) = await gateway.wait_rows(1)
    assert row["endpoint"] == "messages" and row["error_kind"] == "upstream_stream_cut"


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
async def test_anthropic_targets_get_the_request_as_it_came_and_cache_use_is_priced(
    gateway: GatewayUnderTest, stream: bool
) -> None:
    sdk = client(gateway)
    state = gateway.states["anthropic"]
    state.scenario = "cached"
    system = [{"type": "text", "text": "A long, stable prompt.", "cache_control": {"type": "ephemeral"}}]
    message, _ = await create(
        sdk, stream, model="anthropic-chat", system=system, messages=[{"role": "user", "content": "hi"}]
    )
    await sdk.close()
    received = state.received[-1]
    assert received.path == "/v1/messages" and received.body["system"] == system, (
        "cache_control reached Anthropic"
    )
    assert received.body["model"] == "claude-haiku-4-5", "the upstream model name"
    assert (message.usage.cache_read_input_tokens, message.usage.cache_creation_input_tokens) == (60, 10)
    (row,) = await gateway.wait_rows(1)
    assert (row["input_tokens"], row["cached_input_tokens"], row["cache_write_tokens"]) == (100, 60, 10)
    assert row["endpoint"] == "messages" and row["priced"] == 1 and row["cost_pico_usd"] > 0
    assert not row["usage_estimated"]

"""`POST /v1/responses` through the official openai SDK, against every provider kind's fake, streaming and not."""

from __future__ import annotations

import json
from typing import Any

import openai
import orjson
import pytest

from modelyard.http.responses_api import from_chat, to_chat
from tests.conftest import GatewayUnderTest, available_kinds
from tests.fakes.common import EXPECTED_USAGE

KINDS = available_kinds()
TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
SCHEMA_FORMAT = {
    "type": "json_schema",
    "name": "answer",
    "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]},
}


def client(gateway: GatewayUnderTest) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="client-key", max_retries=0)


async def create(sdk: openai.AsyncOpenAI, stream: bool, **kwargs: Any) -> tuple[Any, list[str]]:
    """The final response, and the stream's event types (empty when not streaming)."""
    if not stream:
        return await sdk.responses.create(**kwargs), []
    events = await sdk.responses.create(stream=True, **kwargs)
    kinds, final = [], None
    async for ev in events:
        kinds.append(ev.type)
        if ev.type in ("response.completed", "response.incomplete", "response.failed"):
            final = ev.response  # type: ignore[union-attr]
    assert final is not None, kinds
    return final, kinds


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", KINDS)
async def test_responses_text_tools_and_structured_output(
    gateway: GatewayUnderTest, kind: str, stream: bool
) -> None:
    sdk = client(gateway)
    state = gateway.states[kind]
    model = f"{kind}-chat"

    # Multi-turn input with instructions.
    turns = [
        {"role": "user", "content": "Say hello."},
        {"role": "assistant", "content": [{"type": "output_text", "text": "Hi."}]},
        {"role": "user", "content": [{"type": "input_text", "text": "Again, please."}]},
    ]
    response, events = await create(sdk, stream, model=model, input=turns, instructions="You are terse.")
    assert response.output_text == "Hello, world!" and response.status == "completed"
    usage = response.usage
    assert (usage.input_tokens, usage.output_tokens) == EXPECTED_USAGE["text"][:2]
    assert usage.total_tokens == sum(EXPECTED_USAGE["text"][:2])
    sent = orjson.dumps(state.received[-1].body).decode()
    assert "You are terse." in sent and "Again, please." in sent and "Hi." in sent
    if kind == "openai":  # OpenAI serves the Responses API itself: the request goes as it came
        assert state.received[-1].path == "/v1/responses" and state.received[-1].body["store"] is False
        assert response.model == "gpt-4o-mini-2024-07-18"
    else:
        assert not state.received[-1].path.endswith("/responses"), "translated to the provider's chat"
    if stream:
        assert events[:2] == ["response.created", "response.in_progress"]
        assert events[-1] == "response.completed"
        assert "response.output_text.delta" in events and "response.output_item.done" in events

    # A tool call, then its output sent back in the next turn.
    state.scenario = "tool_call"
    response, events = await create(sdk, stream, model=model, input="Weather in Paris?", tools=[TOOL])
    (call,) = [item for item in response.output if item.type == "function_call"]
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "Paris"}
    if stream:
        assert "response.function_call_arguments.delta" in events
        assert "response.function_call_arguments.done" in events
    state.scenario = "text"
    follow_up = [
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": '{"temp_c": 21}'},
    ]
    response, _ = await create(sdk, stream, model=model, input=follow_up, tools=[TOOL])  # type: ignore[arg-type]
    assert response.output_text == "Hello, world!"
    assert "temp_c" in orjson.dumps(state.received[-1].body).decode(), "the tool output reached the provider"

    # Structured output through text.format.
    state.scenario = "json"
    response, _ = await create(sdk, stream, model=model, input="Answer?", text={"format": SCHEMA_FORMAT})
    assert json.loads(response.output_text) == {"answer": 42}

    # The token limit: an incomplete response saying why.
    state.scenario = "length"
    response, events = await create(sdk, stream, model=model, input="Hi", max_output_tokens=2)
    assert response.status == "incomplete" and response.incomplete_details.reason == "max_output_tokens"
    if stream:
        assert events[-1] == "response.incomplete"
    await sdk.close()

    rows = await gateway.wait_rows(5)
    assert [r["endpoint"] for r in rows] == ["responses"] * 5 and all(r["status"] == 200 for r in rows)
    assert rows[0]["input_tokens"] == 11 and rows[0]["streamed"] == int(stream)


async def test_previous_response_id_and_built_in_tools_are_refused_clearly(gateway: GatewayUnderTest) -> None:
    sdk = client(gateway)
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="openai-chat", input="hi", previous_response_id="resp_1")
    assert "send the whole conversation in 'input'" in str(refused.value)
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="openai-chat", input="hi", tools=[{"type": "web_search"}])
    assert "function tools only" in str(refused.value)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.create(model="no-such-model", input="hi")
    await sdk.close()
    rows = await gateway.wait_rows(3)
    assert [r["status"] for r in rows] == [400, 400, 404], "refusals are recorded too"


def test_translation_round_trip_without_a_server() -> None:
    request = {
        "model": "m",
        "instructions": "Be brief.",
        "input": [
            {"role": "user", "content": "Weather?"},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "get_weather",
                "arguments": '{"city":"Paris"}',
            },
            {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
            {"type": "function_call_output", "call_id": "c1", "output": "21"},
            {"type": "function_call_output", "call_id": "c2", "output": "25"},
        ],
        "tools": [TOOL],
        "tool_choice": {"type": "function", "name": "get_weather"},
        "max_output_tokens": 100,
        "metadata": {"workload": "chat"},
    }
    chat = to_chat(request)
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in chat["messages"][2]["tool_calls"]] == ["c1", "c2"], "parallel calls in one turn"
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert chat["max_tokens"] == 100 and chat["metadata"] == {"workload": "chat"}
    answer = {
        "model": "m-2025",
        "choices": [{"message": {"role": "assistant", "content": "21 and 25"}, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": 30,
            "completion_tokens": 5,
            "prompt_tokens_details": {"cached_tokens": 10},
        },
    }
    response = from_chat(answer, request)
    assert response["output"][0]["content"][0]["text"] == "21 and 25" and response["model"] == "m-2025"
    assert response["usage"]["input_tokens_details"] == {"cached_tokens": 10}
    assert response["instructions"] == "Be brief." and response["store"] is False


@pytest.mark.parametrize("kind", ["openai", "anthropic"])
async def test_a_stream_cut_mid_answer_ends_with_an_error_event_and_is_metered(
    gateway: GatewayUnderTest, kind: str
) -> None:
    import aiohttp

    gateway.states[kind].scenario = "stream_cut"
    body = {"model": f"{kind}-chat", "input": "hi", "stream": True}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/responses", data=orjson.dumps(body)) as r,
    ):
        status, raw = r.status, (await r.read()).decode()
    events = [block.split("\n")[0].removeprefix("event: ") for block in raw.split("\n\n") if block]
    assert status == 200 and "response.output_text.delta" in events
    assert "error" in events and "response.completed" not in events, "never a clean end"
    if kind != "openai":
        assert events[-1] == "response.failed"
    (row,) = await gateway.wait_rows(1)
    assert row["endpoint"] == "responses" and row["error_kind"] == "upstream_stream_cut"
    assert row["usage_estimated"] == 1 and row["output_tokens"] > 0

"""The Anthropic adapter: pure translation tables, then the adapter against the fake over loopback HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from modelyard.config.schema import ProviderConfig, Timeouts
from modelyard.errors import (
    InvalidRequest,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStreamCut,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from modelyard.providers.anthropic import (
    AnthropicAdapter,
    StreamTranslator,
    finish_reason_of,
    from_anthropic_response,
    usage_from_anthropic,
)
from modelyard.providers.anthropic_request import (
    DEFAULT_MAX_TOKENS,
    JSON_OBJECT_INSTRUCTION,
    JSON_TOOL,
    to_anthropic_request,
    tool_choice_to_anthropic,
)
from modelyard.providers.base import ChatCall, EmbeddingCall, StreamMeter, Usage
from modelyard.providers.sse import SSEDecoder
from tests.fakes.anthropic import API_KEY, create_app
from tests.fakes.common import EXPECTED_FINISH, EXPECTED_TEXT, EXPECTED_USAGE, FakeState, serve_app

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
HELLO = [{"role": "user", "content": "Hi"}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ANSWER_SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]},
    },
}


def request(**body: Any) -> dict[str, Any]:
    return to_anthropic_request({"model": "public", "messages": HELLO, **body}, "claude-up")


# --- request translation --------------------------------------------------------------------------------


def test_system_and_developer_messages_become_the_top_level_system() -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Use French."}]},
        {"role": "user", "content": "Hi"},
    ]
    out = to_anthropic_request({"messages": messages}, "claude-up")
    assert out["system"] == "Be brief.\n\nUse French."
    assert out["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    assert out["model"] == "claude-up"


def test_multi_turn_keeps_roles_and_order_and_merges_repeated_roles() -> None:
    messages = [
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"role": "user", "content": "three"},
        {"role": "user", "content": [{"type": "text", "text": "four"}]},
    ]
    out = to_anthropic_request({"messages": messages}, "m")["messages"]
    assert [turn["role"] for turn in out] == ["user", "assistant", "user"]
    assert [block["text"] for block in out[2]["content"]] == ["three", "four"]


@pytest.mark.parametrize(
    ("url", "source"),
    [
        (
            "data:image/png;base64,iVBORw0KGgo=",
            {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
        ),
        ("https://example.com/cat.jpg", {"type": "url", "url": "https://example.com/cat.jpg"}),
    ],
)
def test_image_parts_become_base64_or_url_sources(url: str, source: dict[str, str]) -> None:
    content = [{"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]
    out = to_anthropic_request({"messages": [{"role": "user", "content": content}]}, "m")
    assert out["messages"][0]["content"][1] == {"type": "image", "source": source}


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png,raw"}},
        {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.jpg"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
    ],
)
def test_unsupported_content_is_refused_with_the_field(part: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        to_anthropic_request({"messages": [{"role": "user", "content": [part]}]}, "m")
    assert caught.value.param == "messages"


def test_tool_calls_and_results_become_tool_use_and_one_user_turn_of_tool_results() -> None:
    calls = [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_weather", "arguments": ""}},
    ]
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "call_a", "content": "18C"},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "25C"}]},
        {"role": "user", "content": "Thanks"},
    ]
    out = to_anthropic_request({"messages": messages}, "m")["messages"]
    assert [turn["role"] for turn in out] == ["user", "assistant", "user"]
    assert out[1]["content"] == [
        {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "call_b", "name": "get_weather", "input": {}},
    ]
    assert out[2]["content"] == [
        {"type": "tool_result", "tool_use_id": "call_a", "content": "18C"},
        {"type": "tool_result", "tool_use_id": "call_b", "content": "25C"},
        {"type": "text", "text": "Thanks"},
    ]


def test_assistant_text_beside_tool_calls_is_kept_first() -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    messages = [*HELLO, {"role": "assistant", "content": "Let me look.", "tool_calls": [call]}]
    blocks = to_anthropic_request({"messages": messages}, "m")["messages"][1]["content"]
    assert [block["type"] for block in blocks] == ["text", "tool_use"]


@pytest.mark.parametrize("arguments", ["{not json", "[1, 2]"])
def test_tool_call_arguments_must_be_a_json_object(arguments: str) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(InvalidRequest, match="'f'"):
        to_anthropic_request({"messages": [*HELLO, {"role": "assistant", "tool_calls": [call]}]}, "m")


def test_unknown_role_is_refused_naming_the_allowed_ones() -> None:
    with pytest.raises(InvalidRequest, match="allowed: system, developer, user, assistant, tool"):
        to_anthropic_request({"messages": [{"role": "function", "content": "x"}]}, "m")


def test_tools_become_name_description_input_schema() -> None:
    bare = {"type": "function", "function": {"name": "ping"}}
    out = request(tools=[WEATHER_TOOL, bare])
    assert out["tools"] == [
        {
            "name": "get_weather",
            "description": "Current weather for a city",
            "input_schema": WEATHER_TOOL["function"]["parameters"],
        },
        {"name": "ping", "input_schema": {"type": "object", "properties": {}}},
    ]
    assert "tool_choice" not in out


@pytest.mark.parametrize(
    ("choice", "parallel", "expected"),
    [
        ("auto", None, {"type": "auto"}),
        ("required", None, {"type": "any"}),
        ("none", None, {"type": "none"}),
        (
            {"type": "function", "function": {"name": "get_weather"}},
            None,
            {"type": "tool", "name": "get_weather"},
        ),
        (None, None, None),
        (None, False, {"type": "auto", "disable_parallel_tool_use": True}),
        ("required", False, {"type": "any", "disable_parallel_tool_use": True}),
        ("none", False, {"type": "none"}),
        ("auto", True, {"type": "auto"}),
    ],
)
def test_tool_choice_variants(choice: Any, parallel: bool | None, expected: dict[str, Any] | None) -> None:
    assert tool_choice_to_anthropic(choice, parallel) == expected


def test_tool_choice_goes_upstream_only_with_tools() -> None:
    assert request(tools=[WEATHER_TOOL], tool_choice="required")["tool_choice"] == {"type": "any"}
    assert "tool_choice" not in request(tool_choice="auto", parallel_tool_calls=False)


def test_limits_sampling_stop_and_user() -> None:
    out = request(
        max_tokens=100, max_completion_tokens=50, stop="END", temperature=0.2, top_p=0.9, user="u-42", seed=7
    )
    assert out["max_tokens"] == 50
    assert out["stop_sequences"] == ["END"]
    assert (out["temperature"], out["top_p"]) == (0.2, 0.9)
    assert out["metadata"] == {"user_id": "u-42"}
    assert "seed" not in out and "stream" not in out
    assert request(max_tokens=100, stop=["a", "b"])["max_tokens"] == 100
    assert request(stop=["a", "b"])["stop_sequences"] == ["a", "b"]
    assert request()["max_tokens"] == DEFAULT_MAX_TOKENS
    assert to_anthropic_request({"messages": HELLO}, "m", stream=True)["stream"] is True


def test_more_than_one_choice_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        request(n=2)
    assert caught.value.param == "n"


def test_json_object_adds_a_system_instruction() -> None:
    out = to_anthropic_request(
        {
            "messages": [{"role": "system", "content": "Be brief."}, *HELLO],
            "response_format": {"type": "json_object"},
        },
        "m",
    )
    assert out["system"] == f"Be brief.\n\n{JSON_OBJECT_INSTRUCTION}"
    assert "tools" not in out


def test_json_schema_forces_one_tool_whose_input_schema_is_the_schema() -> None:
    out = request(response_format=ANSWER_SCHEMA)
    assert out["tools"] == [
        {
            "name": JSON_TOOL,
            "description": "Give the answer as a 'answer' object.",
            "input_schema": ANSWER_SCHEMA["json_schema"]["schema"],
        }
    ]
    assert out["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


def test_json_schema_beside_client_tools_keeps_the_clients_choice_unless_none() -> None:
    both = request(response_format=ANSWER_SCHEMA, tools=[WEATHER_TOOL], tool_choice="auto")
    assert [tool["name"] for tool in both["tools"]] == ["get_weather", JSON_TOOL]
    assert both["tool_choice"] == {"type": "auto"}
    no_tools = request(response_format=ANSWER_SCHEMA, tools=[WEATHER_TOOL], tool_choice="none")
    assert no_tools["tool_choice"] == {"type": "tool", "name": JSON_TOOL}


# --- response translation -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "has_tool_calls", "finish"),
    [
        ("end_turn", False, "stop"),
        ("stop_sequence", False, "stop"),
        ("pause_turn", False, "stop"),
        ("max_tokens", False, "length"),
        ("tool_use", True, "tool_calls"),
        ("tool_use", False, "stop"),  # only the json_schema tool was called
        ("refusal", False, "content_filter"),
        (None, False, "stop"),
    ],
)
def test_stop_reasons(stop_reason: str | None, has_tool_calls: bool, finish: str) -> None:
    assert finish_reason_of(stop_reason, has_tool_calls=has_tool_calls) == finish


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"input_tokens": 11, "output_tokens": 4}, Usage(11, 4)),
        (
            {
                "input_tokens": 30,
                "cache_read_input_tokens": 60,
                "cache_creation_input_tokens": 10,
                "output_tokens": 3,
            },
            Usage(100, 3, cached_input_tokens=60, cache_write_tokens=10),
        ),
        (
            {
                "input_tokens": 5,
                "cache_read_input_tokens": 0,
                "cache_creation_input_tokens": 300,
                "cache_creation": {"ephemeral_5m_input_tokens": 100, "ephemeral_1h_input_tokens": 200},
                "output_tokens": 1,
            },
            Usage(305, 1, cache_write_tokens=300, cache_write_1h_tokens=200),
        ),
        ({"input_tokens": 7, "cache_read_input_tokens": None, "output_tokens": 2}, Usage(7, 2)),
        ({}, Usage()),
    ],
)
def test_usage_adds_cache_reads_and_writes_to_input(raw: dict[str, Any], expected: Usage) -> None:
    assert usage_from_anthropic(raw) == expected


def test_message_with_text_and_tool_use_fixture() -> None:
    message = orjson.loads((FIXTURES / "message_tool_use.json").read_bytes())
    body, usage, finish = from_anthropic_response(message)
    reply = body["choices"][0]["message"]
    assert reply["content"] == "I'll check the weather in Lyon."
    assert reply["tool_calls"] == [
        {
            "id": "toolu_01Ab3Cd4Ef5Gh6Ij7Kl8Mn9",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Lyon", "unit": "celsius"}'},
        }
    ]
    assert finish == body["choices"][0]["finish_reason"] == "tool_calls"
    assert usage == Usage(
        3996, 71, cached_input_tokens=2048, cache_write_tokens=1536, cache_write_1h_tokens=1024
    )
    assert body["usage"] == usage.to_openai()
    assert (body["id"], body["model"], body["object"]) == (message["id"], message["model"], "chat.completion")


def test_json_tool_input_becomes_the_content_and_thinking_is_dropped() -> None:
    message = {
        "id": "msg_1",
        "type": "message",
        "model": "claude",
        "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "sig"},
            {"type": "tool_use", "id": "t", "name": JSON_TOOL, "input": {"answer": 42}},
        ],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 15, "output_tokens": 6},
    }
    body, _, finish = from_anthropic_response(message, json_tool=JSON_TOOL)
    assert body["choices"][0]["message"] == {"role": "assistant", "content": '{"answer": 42}'}
    assert finish == "stop"


# --- stream translation ---------------------------------------------------------------------------------


def translate_sse(raw: bytes, translator: StreamTranslator) -> list[dict[str, Any]]:
    decoder = SSEDecoder()
    chunks: list[dict[str, Any]] = []
    for event in decoder.feed(raw):
        chunks += translator.feed(event.event, orjson.loads(event.data))
    return chunks


def reassemble(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The final message, finish reason and usage that a list of OpenAI chunks adds up to."""
    content: str | None = None
    calls: dict[int, dict[str, Any]] = {}
    finish, usage, roles = None, None, []
    for chunk in chunks:
        if not chunk["choices"]:
            usage = chunk["usage"]
            continue
        choice = chunk["choices"][0]
        delta = choice["delta"]
        roles += [delta["role"]] if "role" in delta else []
        if delta.get("content") is not None:
            content = (content or "") + delta["content"]
        for call in delta.get("tool_calls", []):
            slot = calls.setdefault(call["index"], {"type": "function", "function": {"arguments": ""}})
            slot.update({key: call[key] for key in ("id", "type") if key in call})
            slot["function"]["name"] = call.get("function", {}).get("name") or slot["function"].get("name")
            slot["function"]["arguments"] += call.get("function", {}).get("arguments", "")
        finish = choice["finish_reason"] or finish
    message: dict[str, Any] = {"role": roles[0] if roles else None, "content": content or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"message": message, "finish": finish, "usage": usage, "last_is_usage": not chunks[-1]["choices"]}


def final_message(body: dict[str, Any]) -> dict[str, Any]:
    message = dict(body["choices"][0]["message"])
    message["content"] = message["content"] or None
    return message


def test_stream_fixture_adds_up_to_the_non_streaming_fixture() -> None:
    translator = StreamTranslator("anthropic")
    chunks = translate_sse((FIXTURES / "stream_tool_use.sse").read_bytes(), translator)
    body, usage, finish = from_anthropic_response(
        orjson.loads((FIXTURES / "message_tool_use.json").read_bytes())
    )
    streamed = reassemble(chunks)
    assert streamed["message"] == final_message(body)
    assert streamed["finish"] == finish == translator.finish_reason
    assert streamed["usage"] == body["usage"] and translator.usage == usage
    assert streamed["last_is_usage"] and translator.done
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {chunk["id"] for chunk in chunks} == {"msg_01Fx7TqZc3wZ6gHkP2aVb9Lm"}
    assert translator.model == "claude-sonnet-4-20250514"
    text_and_arguments = "I'll check the weather in Lyon." + '{"city": "Lyon", "unit": "celsius"}'
    assert translator.output_chars == len(text_and_arguments)


def test_thinking_deltas_are_hidden_but_counted() -> None:
    translator = StreamTranslator("anthropic")
    chunks = translate_sse((FIXTURES / "stream_thinking.sse").read_bytes(), translator)
    assert reassemble(chunks)["message"]["content"] == "17 × 23 = 391"
    thinking = "The user wants 17 * 23. 17 * 20 = 340, 17 * 3 = 51, so 391."
    assert translator.output_chars == len(thinking) + len("17 × 23 = 391")
    assert translator.usage == Usage(37, 58)


def test_usage_is_known_from_message_start_onwards() -> None:
    translator = StreamTranslator("anthropic")
    raw = (FIXTURES / "stream_tool_use.sse").read_bytes()
    translate_sse(raw.split(b"\n\n")[0] + b"\n\n", translator)
    assert translator.usage is not None and translator.usage.input_tokens == 3996
    partial = translator.partial_usage()
    assert partial is not None and partial.estimated and partial.output_tokens == 2
    assert not translator.done


@pytest.mark.parametrize(
    ("kind", "error_class", "status", "retryable"),
    [
        ("overloaded_error", UpstreamUnavailable, 503, True),
        ("rate_limit_error", UpstreamRateLimited, 429, True),
        ("api_error", UpstreamUnavailable, 502, True),
        ("invalid_request_error", UpstreamError, 400, False),
    ],
)
def test_error_events_raise_the_mapped_error(
    kind: str, error_class: type, status: int, retryable: bool
) -> None:
    translator = StreamTranslator("anthropic", scrub=lambda text: text.replace("sk-x", "[redacted]"))
    with pytest.raises(error_class) as caught:
        translator.feed("error", {"type": "error", "error": {"type": kind, "message": "boom sk-x"}})
    assert type(caught.value) is error_class
    assert (caught.value.status, caught.value.retryable) == (status, retryable)
    assert "sk-x" not in str(caught.value) and "boom" in caught.value.message


# --- the adapter against the fake -----------------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeState, AnthropicAdapter]]:
    state = FakeState()
    async with serve_app(create_app(state)) as url:
        adapter = AnthropicAdapter("anthropic", ProviderConfig(kind="anthropic", base_url=url), API_KEY)
        yield state, adapter
        await adapter.close()


SCENARIO_BODIES: dict[str, dict[str, Any]] = {
    "text": {},
    "tool_call": {"tools": [WEATHER_TOOL]},
    "json": {"response_format": ANSWER_SCHEMA},
    "cached": {},
    "reasoning": {},
    "length": {"max_tokens": 2},
    "slow": {},
}
#: (input, output, cached, cache write, reasoning): Anthropic reports the cache write of ``cached`` and no
#: separate reasoning figure (thinking is inside output_tokens).
ANTHROPIC_USAGE = {**EXPECTED_USAGE, "cached": (100, 3, 60, 10, 0), "reasoning": (10, 50, 0, 0, 0)}


def chat_call(**body: Any) -> ChatCall:
    return ChatCall(body={"model": "claude-public", "messages": HELLO, **body}, upstream_model="claude-up")


async def run_stream(adapter: AnthropicAdapter, call: ChatCall, meter: StreamMeter) -> list[dict[str, Any]]:
    return [chunk async for chunk in adapter.stream(call, meter)]


def usage_tuple(usage: Usage | None) -> tuple[int, ...]:
    assert usage is not None
    return (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
    )


def assert_scenario(scenario: str, message: dict[str, Any], finish: str | None, usage: Usage | None) -> None:
    if scenario == "tool_call":
        assert message["content"] is None
        (call,) = message["tool_calls"]
        assert (call["id"], call["type"], call["function"]["name"]) == ("call_1", "function", "get_weather")
        assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    else:
        assert message["content"] == EXPECTED_TEXT[scenario]
        assert "tool_calls" not in message
    assert finish == EXPECTED_FINISH.get(scenario, "stop")
    assert usage_tuple(usage) == ANTHROPIC_USAGE[scenario]


@pytest.mark.parametrize("scenario", list(SCENARIO_BODIES))
async def test_scenarios_streaming_and_not_give_the_same_result(
    fake: tuple[FakeState, AnthropicAdapter], scenario: Any
) -> None:
    state, adapter = fake
    state.scenario, state.delay_s = scenario, 0.05
    call = chat_call(**SCENARIO_BODIES[scenario])
    result = await adapter.complete(call)
    assert_scenario(scenario, result.body["choices"][0]["message"], result.finish_reason, result.usage)
    assert result.usage is not None and result.body["usage"] == result.usage.to_openai()
    assert result.body["model"] == "claude-up-20250514"

    meter = StreamMeter()
    streamed = reassemble(await run_stream(adapter, call, meter))
    assert_scenario(scenario, streamed["message"], streamed["finish"], meter.usage)
    assert streamed["message"] == final_message(result.body)
    assert streamed["usage"] == result.body["usage"] and meter.usage == result.usage
    assert streamed["last_is_usage"] and meter.finish_reason == result.finish_reason
    assert meter.upstream_model == "claude-up-20250514" and meter.chunks >= 3


async def test_cache_writes_for_one_hour_are_reported_apart(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    state.scenario = "cached"
    result = await adapter.complete(chat_call())
    meter = StreamMeter()
    await run_stream(adapter, chat_call(), meter)
    assert result.usage is not None and meter.usage is not None
    assert result.usage.cache_write_1h_tokens == meter.usage.cache_write_1h_tokens == 4


async def test_json_object_answers_with_json_text(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    state.scenario = "json"
    result = await adapter.complete(chat_call(response_format={"type": "json_object"}))
    assert result.body["choices"][0]["message"]["content"] == EXPECTED_TEXT["json"]
    assert state.received[-1].body["system"] == JSON_OBJECT_INSTRUCTION


async def test_the_wire_request(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    meter = StreamMeter()
    await adapter.complete(chat_call(messages=[{"role": "system", "content": "Be brief."}, *HELLO]))
    await run_stream(adapter, chat_call(stream=True, stream_options={"include_usage": True}), meter)
    plain, streamed = state.received
    headers = {name.lower(): value for name, value in plain.headers.items()}
    assert (plain.method, plain.path) == ("POST", "/v1/messages")
    assert headers["x-api-key"] == API_KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["content-type"] == "application/json"
    assert plain.body == {
        "model": "claude-up",
        "max_tokens": DEFAULT_MAX_TOKENS,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
    }
    assert streamed.body["stream"] is True and "stream_options" not in streamed.body


async def test_api_version_and_a_base_url_ending_in_v1_are_honoured() -> None:
    state = FakeState()
    async with serve_app(create_app(state)) as url:
        config = ProviderConfig(kind="anthropic", base_url=f"{url}/v1/", api_version="2099-01-01")
        adapter = AnthropicAdapter("anthropic", config, API_KEY)
        await adapter.complete(chat_call())
        await adapter.close()
    assert state.received[0].path == "/v1/messages"
    assert state.received[0].headers["anthropic-version"] == "2099-01-01"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize(
    ("scenario", "error_class", "status", "retryable"),
    [
        ("rate_limited", UpstreamRateLimited, 429, True),
        ("overloaded", UpstreamUnavailable, 503, True),
        ("server_error", UpstreamUnavailable, 502, True),
        ("bad_request", UpstreamError, 400, False),
        ("auth_error", UpstreamError, 502, False),
    ],
)
async def test_error_statuses_map_to_the_error_tree(
    fake: tuple[FakeState, AnthropicAdapter],
    scenario: Any,
    error_class: type,
    status: int,
    retryable: bool,
    streaming: bool,
) -> None:
    state, adapter = fake
    state.scenario = scenario
    with pytest.raises(error_class) as caught:
        if streaming:
            await run_stream(adapter, chat_call(), StreamMeter())
        else:
            await adapter.complete(chat_call())
    error = caught.value
    assert type(error) is error_class
    assert (error.status, error.retryable) == (status, retryable)
    assert API_KEY not in str(error) and API_KEY not in orjson.dumps(error.to_body()).decode()
    if scenario == "rate_limited":
        assert error.retry_after == 7
    if scenario == "bad_request":
        assert "bad things" in error.message
    if scenario == "auth_error":
        assert error.code == "upstream_auth_failed" and error.upstream_status == 401


async def test_a_wrong_key_is_refused_by_the_fake_and_never_echoed() -> None:
    state = FakeState()
    async with serve_app(create_app(state)) as url:
        adapter = AnthropicAdapter(
            "anthropic", ProviderConfig(kind="anthropic", base_url=url), "sk-wrong-KEY"
        )
        with pytest.raises(UpstreamError) as caught:
            await adapter.complete(chat_call())
        await adapter.close()
    assert caught.value.code == "upstream_auth_failed" and "sk-wrong-KEY" not in str(caught.value)


async def test_a_request_anthropic_refuses_passes_its_message_through(
    fake: tuple[FakeState, AnthropicAdapter],
) -> None:
    _, adapter = fake
    with pytest.raises(UpstreamError) as caught:
        await adapter.complete(chat_call(temperature=1.5))
    assert caught.value.status == 400
    assert "temperature: Input should be less than or equal to 1" in caught.value.message


async def test_stream_cut_raises_with_what_was_received(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    state.scenario = "stream_cut"
    meter, chunks = StreamMeter(), []
    with pytest.raises(UpstreamStreamCut):
        async for chunk in adapter.stream(chat_call(), meter):
            chunks.append(chunk)
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks) == "Hel"
    assert meter.output_chars == 3 and meter.chunks == len(chunks) == 2
    assert meter.usage is not None and meter.usage.estimated
    assert (meter.usage.input_tokens, meter.usage.output_tokens) == (11, 1)


async def test_a_truncated_body_is_a_malformed_answer(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    state.scenario = "stream_cut"
    with pytest.raises(UpstreamUnavailable, match="malformed"):
        await adapter.complete(chat_call())


async def test_an_error_event_mid_stream_raises_overloaded(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    state.scenario = "stream_error"
    meter = StreamMeter()
    with pytest.raises(UpstreamUnavailable) as caught:
        await run_stream(adapter, chat_call(), meter)
    assert (caught.value.status, caught.value.retryable, caught.value.upstream_status) == (503, True, 529)
    assert meter.output_chars == 3
    assert meter.usage is not None and meter.usage.input_tokens == 11 and meter.usage.estimated
    with pytest.raises(UpstreamUnavailable) as plain:  # the same overload without streaming is an HTTP 529
        await adapter.complete(chat_call())
    assert (plain.value.status, plain.value.upstream_status) == (503, 529)


async def test_a_slow_upstream_times_out() -> None:
    state = FakeState(scenario="slow", delay_s=0.4)
    async with serve_app(create_app(state)) as url:
        config = ProviderConfig(kind="anthropic", base_url=url, timeouts=Timeouts(total=0.1))
        adapter = AnthropicAdapter("anthropic", config, API_KEY)
        with pytest.raises(UpstreamTimeout):
            await adapter.complete(chat_call())
        await adapter.close()


async def test_embeddings_are_unsupported_without_a_call(fake: tuple[FakeState, AnthropicAdapter]) -> None:
    state, adapter = fake
    with pytest.raises(UpstreamError) as caught:
        await adapter.embed(EmbeddingCall(body={"model": "e", "input": "hi"}, upstream_model="e"))
    assert (caught.value.code, caught.value.status) == ("unsupported", 400)
    assert state.received == [] and not adapter.capabilities.embeddings

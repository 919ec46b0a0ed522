"""The Gemini adapter against the fake Gemini server over loopback HTTP: every FakeState scenario,
streaming and not, errors, cuts and embeddings. The pure translation tables are in
test_provider_gemini_translate.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from modelyard.config.schema import ProviderConfig
from modelyard.errors import UpstreamError, UpstreamRateLimited, UpstreamStreamCut, UpstreamUnavailable
from modelyard.providers.base import ChatCall, EmbeddingCall, StreamMeter, Usage
from modelyard.providers.gemini import GeminiAdapter
from modelyard.providers.gemini_request import to_gemini_request
from tests.fakes.common import EXPECTED_FINISH, EXPECTED_TEXT, EXPECTED_USAGE, FakeState, serve_app
from tests.fakes.gemini import API_KEY, create_app
from tests.test_provider_gemini_translate import MODEL, WEATHER_TOOL, user


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeState, GeminiAdapter]]:
    state = FakeState(delay_s=0.05)
    async with serve_app(create_app(state)) as base_url:
        adapter = GeminiAdapter("gem", ProviderConfig(kind="gemini", base_url=base_url), API_KEY)
        try:
            yield state, adapter
        finally:
            await adapter.close()


def chat_body(scenario: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "public-name",
        "messages": [{"role": "system", "content": "Be brief."}, user("Say hello")],
        "max_tokens": 100,
    }
    if scenario == "tool_call":
        body.update(tools=[WEATHER_TOOL], tool_choice="auto")
    if scenario == "json":
        body["response_format"] = {"type": "json_object"}
    return body


async def collect(adapter: GeminiAdapter, call: ChatCall, meter: StreamMeter) -> list[dict[str, Any]]:
    return [chunk async for chunk in adapter.stream(call, meter)]


def reassemble(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
    """Fold OpenAI chunks back into (message, finish_reason, usage) the way a client library does."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    calls: dict[int, dict[str, Any]] = {}
    finish = None
    for chunk in chunks[:-1]:
        choice = chunk["choices"][0]
        delta = choice["delta"]
        if delta.get("content"):
            message["content"] = (message["content"] or "") + delta["content"]
        for fragment in delta.get("tool_calls", ()):
            call = calls.setdefault(fragment["index"], {"function": {"arguments": ""}})
            call.update({k: v for k, v in fragment.items() if k not in ("index", "function")})
            call["function"].setdefault("name", fragment["function"].get("name"))
            call["function"]["arguments"] += fragment["function"].get("arguments", "")
        finish = choice["finish_reason"] or finish
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    assert chunks[-1]["choices"] == []
    return message, finish, chunks[-1]["usage"]


def expected_usage(scenario: str) -> Usage:
    inp, out, cached, write, reasoning = EXPECTED_USAGE[scenario]
    return Usage(inp, out, cached, write, reasoning)


@pytest.mark.parametrize("scenario", ["text", "tool_call", "json", "cached", "reasoning", "length", "slow"])
async def test_scenario_streaming_and_not_agree(fake: tuple[FakeState, GeminiAdapter], scenario: Any) -> None:
    state, adapter = fake
    state.scenario = scenario
    call = ChatCall(body=chat_body(scenario), upstream_model=MODEL)
    result = await adapter.complete(call)
    meter = StreamMeter()
    chunks = await collect(adapter, call, meter)

    message = result.body["choices"][0]["message"]
    assert message["content"] == EXPECTED_TEXT.get(scenario)
    assert (
        result.finish_reason
        == EXPECTED_FINISH.get(scenario, "stop")
        == result.body["choices"][0]["finish_reason"]
    )
    assert result.usage == expected_usage(scenario) and result.body["usage"] == result.usage.to_openai()
    assert (result.body["object"], result.body["model"], result.body["id"]) == (
        "chat.completion",
        MODEL,
        "fake-resp-1",
    )
    if scenario == "tool_call":
        assert message["tool_calls"] == [
            {
                "id": "call_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
            }
        ]
    streamed, finish, usage = reassemble(chunks)
    assert (streamed, finish, usage) == (message, result.finish_reason, result.body["usage"])
    assert (meter.usage, meter.finish_reason, meter.chunks) == (
        result.usage,
        result.finish_reason,
        len(chunks),
    )
    assert meter.output_chars == len(message["content"] or "") + sum(
        len(c["function"]["arguments"]) for c in message.get("tool_calls", ())
    )


async def test_requests_on_the_wire(fake: tuple[FakeState, GeminiAdapter]) -> None:
    state, adapter = fake
    call = ChatCall(body=chat_body("tool_call"), upstream_model=MODEL)
    await adapter.complete(call)
    await collect(adapter, call, StreamMeter())
    plain, streamed = state.received
    assert plain.path == f"/v1beta/models/{MODEL}:generateContent" and plain.query == {}
    assert streamed.path == f"/v1beta/models/{MODEL}:streamGenerateContent" and streamed.query == {
        "alt": "sse"
    }
    assert plain.headers["x-goog-api-key"] == API_KEY and "Authorization" not in plain.headers
    assert plain.body == streamed.body == to_gemini_request(call.body)
    assert plain.body["generationConfig"]["maxOutputTokens"] == 100


async def test_fake_refuses_openai_shaped_fields(fake: tuple[FakeState, GeminiAdapter]) -> None:
    """The fake validates like Gemini, so an adapter that sent snake_case fields would fail its tests."""
    _, adapter = fake
    url = adapter._url(MODEL, "generateContent")
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "generation_config": {}}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers={"x-goog-api-key": API_KEY}) as r,
    ):
        error = (await r.json())["error"]
    assert (r.status, error["status"]) == (400, "INVALID_ARGUMENT") and "generation_config" in error[
        "message"
    ]


@pytest.mark.parametrize(
    ("scenario", "kind", "status"),
    [
        ("rate_limited", UpstreamRateLimited, 429),
        ("overloaded", UpstreamUnavailable, 503),
        ("server_error", UpstreamUnavailable, 502),
        ("bad_request", UpstreamError, 400),
        ("auth_error", UpstreamError, 502),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
async def test_errors_map(
    fake: tuple[FakeState, GeminiAdapter],
    scenario: Any,
    kind: type[UpstreamError],
    status: int,
    streaming: bool,
) -> None:
    state, adapter = fake
    state.scenario = scenario
    call = ChatCall(body=chat_body("text"), upstream_model=MODEL)
    with pytest.raises(kind) as caught:
        await (collect(adapter, call, StreamMeter()) if streaming else adapter.complete(call))
    error = caught.value
    assert error.status == status and API_KEY not in error.message and API_KEY not in str(error.to_body())
    if scenario == "rate_limited":
        assert error.retry_after == 7
    if scenario == "bad_request":
        assert "bad things" in error.message and error.code == "upstream_invalid_request"
    if scenario == "auth_error":
        assert error.code == "upstream_auth_failed"


async def test_missing_key_is_an_auth_failure(fake: tuple[FakeState, GeminiAdapter]) -> None:
    state, adapter = fake
    keyless = GeminiAdapter("gem", adapter.config, None)
    try:
        with pytest.raises(UpstreamError) as caught:
            await keyless.complete(ChatCall(body=chat_body("text"), upstream_model=MODEL))
    finally:
        await keyless.close()
    assert (caught.value.code, caught.value.upstream_status) == ("upstream_auth_failed", 403)
    assert "x-goog-api-key" not in state.received[-1].headers


@pytest.mark.parametrize("scenario", ["stream_cut", "stream_error"])
async def test_cut_stream(fake: tuple[FakeState, GeminiAdapter], scenario: Any) -> None:
    state, adapter = fake
    state.scenario = scenario
    call = ChatCall(body=chat_body("text"), upstream_model=MODEL)
    meter = StreamMeter()
    received: list[dict[str, Any]] = []
    with pytest.raises(UpstreamStreamCut):
        async for chunk in adapter.stream(call, meter):
            received.append(chunk)
    assert [c["choices"][0]["delta"].get("content") for c in received] == ["", "Hel"]
    assert meter.output_chars == 3 and meter.finish_reason is None
    assert meter.usage == Usage(11, 0) and meter.chunks == 2
    with pytest.raises(UpstreamUnavailable, match="malformed"):
        await adapter.complete(call)


async def test_embeddings(fake: tuple[FakeState, GeminiAdapter]) -> None:
    state, adapter = fake
    state.scenario = "embedding"
    result = await adapter.embed(
        EmbeddingCall(body={"model": "emb", "input": ["hello", "world"]}, upstream_model="text-embedding-004")
    )
    assert [d["index"] for d in result.body["data"]] == [0, 1]
    assert [len(d["embedding"]) for d in result.body["data"]] == [3, 3]
    assert result.body["object"] == "list" and result.body["model"] == "text-embedding-004"
    assert (
        result.usage == Usage(input_tokens=4, estimated=True) and result.body["usage"]["prompt_tokens"] == 4
    )
    assert state.received[-1].path == "/v1beta/models/text-embedding-004:batchEmbedContents"
    single = await adapter.embed(EmbeddingCall(body={"input": "hello"}, upstream_model="text-embedding-004"))
    assert len(single.body["data"]) == 1 and single.usage is not None and single.usage.input_tokens == 2


async def test_embedding_errors_map(fake: tuple[FakeState, GeminiAdapter]) -> None:
    state, adapter = fake
    state.scenario = "rate_limited"
    with pytest.raises(UpstreamRateLimited):
        await adapter.embed(EmbeddingCall(body={"input": "hello"}, upstream_model="text-embedding-004"))

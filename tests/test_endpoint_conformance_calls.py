"""The endpoint conformance suite, continued (tests/test_endpoint_conformance.py has the plain answers):
a provider's rate limit reaching the client in each endpoint's own error shape, and tool calls — the tools
sent in each provider's format, the recorded call (``<operation>_tool_call`` fixtures) returned in each
endpoint's — for every provider kind, streaming and not."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tests.conftest import FAKE_KEY, GatewayUnderTest
from tests.endpoint_support import (
    CHAT_KINDS,
    COMPLETION_KINDS,
    DOCUMENTS,
    RERANK_KINDS,
    call,
    sse_events,
    upstream,
    wire_gateway,
)
from tests.fakes import replay

__all__ = ["wire_gateway"]  # a fixture, used by name


# -- the provider's rate limit, in each endpoint's own error shape -------------------------------------------

ERROR_CASES = [
    *[("responses", kind) for kind in CHAT_KINDS],
    *[("messages", kind) for kind in CHAT_KINDS],
    *[("completions", kind) for kind in COMPLETION_KINDS],
    *[("rerank", kind) for kind in RERANK_KINDS],
]


def request_for(endpoint: str, kind: str) -> dict[str, Any]:
    if endpoint == "responses":
        return {"model": f"{kind}-chat", "input": "Say hello."}
    if endpoint == "messages":
        return {"model": f"{kind}-chat", "max_tokens": 50, "messages": [{"role": "user", "content": "Hi"}]}
    if endpoint == "completions":
        return {"model": f"{kind}-chat", "prompt": "Say hello."}
    return {"model": f"{kind}-rerank", "query": "gpu prices", "documents": DOCUMENTS}


@pytest.mark.parametrize(("endpoint", "kind"), ERROR_CASES)
async def test_a_providers_rate_limit_reaches_the_client_in_the_endpoints_shape(
    wire_gateway: GatewayUnderTest, endpoint: str, kind: str
) -> None:
    wire_gateway.states[kind].scenario = "rate_limited"
    status, raw = await call(f"{wire_gateway.url}/v1/{endpoint}", request_for(endpoint, kind))
    assert status == 429, raw
    error = orjson.loads(raw)
    if endpoint == "messages":  # the Anthropic SDK reads Anthropic's error shape
        assert error["type"] == "error" and error["error"]["type"] == "rate_limit_error"
    else:
        assert error["error"]["code"] == "rate_limit_exceeded" and error["error"]["type"]
    assert FAKE_KEY not in raw.decode(), "no credential in what the client sees"
    state = wire_gateway.states[kind]
    assert isinstance(state, replay.ReplayState) and state.violations == []
    (row,) = await wire_gateway.wait_rows(1)
    assert (row["endpoint"], row["status"]) == (endpoint, 429)


# -- tool calls: the tools go in each provider's format, the call comes back in each endpoint's ---------------

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def upstream_tool_names(kind: str, body: Any) -> list[str]:
    """The tools the provider received, read in its own format."""
    tools = body.get("tools") or []
    if kind == "gemini":
        return [f["name"] for tool in tools for f in tool.get("functionDeclarations", [])]
    if kind == "anthropic" or "input" in body:  # Anthropic's, or the Responses API's flat tools
        return [tool["name"] for tool in tools]
    return [tool["function"]["name"] for tool in tools]


def responses_call(raw: bytes, stream: bool) -> tuple[str, str, tuple[int, int]]:
    body = orjson.loads(raw) if not stream else sse_events(raw)[-1][1]["response"]
    if stream:
        names = [data["type"] for _, data in sse_events(raw)]
        assert "response.function_call_arguments.done" in names and names[-1] == "response.completed"
    (call,) = [item for item in body["output"] if item["type"] == "function_call"]
    return call["name"], call["arguments"], (body["usage"]["input_tokens"], body["usage"]["output_tokens"])


def messages_call(raw: bytes, stream: bool) -> tuple[str, Any, str]:
    if not stream:
        body = orjson.loads(raw)
        (block,) = [b for b in body["content"] if b["type"] == "tool_use"]
        return block["name"], block["input"], body["stop_reason"]
    events = sse_events(raw)
    (start,) = [
        d for n, d in events if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    ]
    partial = "".join(
        d["delta"]["partial_json"]
        for n, d in events
        if n == "content_block_delta" and d["index"] == start["index"]
    )
    (delta,) = [d for n, d in events if n == "message_delta"]
    return start["content_block"]["name"], orjson.loads(partial), delta["delta"]["stop_reason"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", CHAT_KINDS)
async def test_responses_tool_call(wire_gateway: GatewayUnderTest, kind: str, stream: bool) -> None:
    wire_gateway.states[kind].scenario = "tool_call"
    tool = {
        "type": "function",
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": WEATHER,
    }
    body = {"model": f"{kind}-chat", "input": "Weather in Paris?", "tools": [tool], "stream": stream}
    status, raw = await call(f"{wire_gateway.url}/v1/responses", body)
    assert status == 200, raw
    name, arguments, usage = responses_call(raw, stream)
    assert (name, orjson.loads(arguments), usage) == ("get_weather", {"city": "Paris"}, (20, 9))
    assert upstream_tool_names(kind, upstream(wire_gateway, kind).body) == ["get_weather"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", CHAT_KINDS)
async def test_messages_tool_use(wire_gateway: GatewayUnderTest, kind: str, stream: bool) -> None:
    wire_gateway.states[kind].scenario = "tool_call"
    tool = {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER}
    body = {
        "model": f"{kind}-chat",
        "max_tokens": 50,
        "tools": [tool],
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "stream": stream,
    }
    status, raw = await call(f"{wire_gateway.url}/v1/messages", body)
    assert status == 200, raw
    assert messages_call(raw, stream) == ("get_weather", {"city": "Paris"}, "tool_use")
    assert upstream_tool_names(kind, upstream(wire_gateway, kind).body) == ["get_weather"]

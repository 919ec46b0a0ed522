"""One conformance suite, run through the gateway's HTTP API against every provider's fake server.

For each provider kind with a fake (tests/fakes/), every scenario of tests/fakes/common.py must give the
same OpenAI-format result, streaming and not, with the ledger row metering it exactly.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson
import pytest

from tests.conftest import GatewayUnderTest, available_kinds
from tests.fakes.common import EXPECTED_FINISH, EXPECTED_TEXT, EXPECTED_USAGE

KINDS = available_kinds()
#: Kinds the API price catalog does not price (their cost is the hardware's, in `decide`).
SELF_HOSTED = {"openai_compatible"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


def chat_body(kind: str, scenario: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": f"{kind}-chat",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Say hello."},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": "Again, please."},
        ],
        "max_tokens": 50,
    }
    if scenario == "tool_call":
        body["tools"] = TOOLS
        body["tool_choice"] = "auto"
    if scenario == "json":
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {
                "name": "answer",
                "schema": {
                    "type": "object",
                    "properties": {"answer": {"type": "integer"}},
                    "required": ["answer"],
                },
            },
        }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


async def post(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=orjson.dumps(body), headers=headers) as r,
    ):
        return r.status, await r.read(), r.headers


def parse_stream(raw: bytes) -> tuple[list[dict[str, Any]], bool]:
    events, done = [], False
    for block in raw.decode().split("\n\n"):
        if not block.strip():
            continue
        assert block.startswith("data: "), block
        data = block.removeprefix("data: ")
        if data == "[DONE]":
            done = True
        else:
            events.append(orjson.loads(data))
    return events, done


def reassemble(chunks: list[dict[str, Any]]) -> tuple[dict[str, Any], str | None, dict[str, Any] | None]:
    """The final message, finish reason and usage a client builds from a stream."""
    content, finish, usage = "", None, None
    tool_calls: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        if chunk.get("usage"):
            usage = chunk["usage"]
        for choice in chunk["choices"]:
            delta = choice["delta"]
            content += delta.get("content") or ""
            for call in delta.get("tool_calls") or []:
                slot = tool_calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["name"] += function.get("name") or ""
                slot["arguments"] += function.get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message = {"content": content or None, "tool_calls": [tool_calls[i] for i in sorted(tool_calls)]}
    return message, finish, usage


def usage_tuple(usage: dict[str, Any]) -> tuple[int, int, int, int]:
    return (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0),
        (usage.get("completion_tokens_details") or {}).get("reasoning_tokens", 0),
    )


def expected_usage(kind: str, scenario: str) -> tuple[int, int, int, int]:
    prompt, completion, cached, _write, reasoning = EXPECTED_USAGE[scenario]
    if kind == "anthropic" and scenario == "reasoning":
        reasoning = 0  # Anthropic bills thinking as output but does not report it apart
    return prompt, completion, cached, reasoning


SCENARIOS = ["text", "tool_call", "json", "cached", "reasoning", "length"]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", SCENARIOS)
async def test_stream_and_non_stream_agree(gateway: GatewayUnderTest, kind: str, scenario: str) -> None:
    gateway.states[kind].scenario = scenario  # type: ignore[assignment]
    url = f"{gateway.url}/v1/chat/completions"

    status, raw, _ = await post(url, chat_body(kind, scenario, stream=False))
    assert status == 200, raw
    body = orjson.loads(raw)
    message = body["choices"][0]["message"]
    finish = body["choices"][0]["finish_reason"]

    status, raw, headers = await post(url, chat_body(kind, scenario, stream=True))
    assert status == 200, raw
    assert headers["Content-Type"].startswith("text/event-stream")
    chunks, done = parse_stream(raw)
    assert done, "a complete stream ends with [DONE]"
    streamed, streamed_finish, streamed_usage = reassemble(chunks)

    assert finish == streamed_finish == EXPECTED_FINISH.get(scenario, "stop")
    if scenario == "tool_call":
        (call,) = message["tool_calls"]
        assert call["function"]["name"] == streamed["tool_calls"][0]["name"] == "get_weather"
        assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
        assert orjson.loads(streamed["tool_calls"][0]["arguments"]) == {"city": "Paris"}
        assert call["id"] == streamed["tool_calls"][0]["id"]
    else:
        assert message["content"] == streamed["content"] == EXPECTED_TEXT[scenario]
    assert streamed_usage is not None
    assert usage_tuple(body["usage"]) == usage_tuple(streamed_usage) == expected_usage(kind, scenario)

    rows = await gateway.wait_rows(2)
    assert [r["streamed"] for r in rows] == [0, 1]
    for row in rows:
        assert row["status"] == 200 and row["error_kind"] is None
        prompt, completion, cached, reasoning = expected_usage(kind, scenario)
        assert (row["input_tokens"], row["output_tokens"]) == (prompt, completion)
        assert (row["cached_input_tokens"], row["reasoning_tokens"]) == (cached, reasoning)
        assert row["usage_estimated"] == 0
        if kind in SELF_HOSTED:
            assert row["priced"] == 0 and row["cost_pico_usd"] is None, "no API price: unpriced, never $0"
        else:
            assert row["priced"] == 1 and row["cost_pico_usd"] > 0, "catalog models are priced"
        assert row["provider_kind"] == kind
        assert row["workload"] == "chat" and row["data_class"] == "public"
    assert rows[0]["cost_pico_usd"] == rows[1]["cost_pico_usd"]
    # Tool calls are counted the same whether the answer was streamed or not (issue 18).
    assert [r["tool_calls"] for r in rows] == ([1, 1] if scenario == "tool_call" else [0, 0])
    assert rows[1]["ttft_ms"] is not None and rows[1]["ttft_ms"] <= rows[1]["latency_ms"]


@pytest.mark.parametrize("kind", KINDS)
async def test_stream_without_include_usage_hides_usage_but_meters_it(
    gateway: GatewayUnderTest, kind: str
) -> None:
    body = chat_body(kind, "text", stream=True)
    del body["stream_options"]
    status, raw, _ = await post(f"{gateway.url}/v1/chat/completions", body)
    assert status == 200
    chunks, done = parse_stream(raw)
    assert done
    assert all(c.get("usage") is None for c in chunks), "client did not ask for usage"
    (row,) = await gateway.wait_rows(1)
    assert (row["input_tokens"], row["output_tokens"]) == (11, 4)
    assert row["usage_estimated"] == 0


ERRORS = [
    # scenario, status the client sees, error type
    ("rate_limited", 429, "rate_limit_error"),
    ("overloaded", 503, "api_error"),
    ("server_error", 502, "api_error"),
    ("bad_request", 400, "invalid_request_error"),
    ("auth_error", 502, "api_error"),
]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("scenario", "status", "error_type"), ERRORS)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_errors_are_mapped(
    gateway: GatewayUnderTest, kind: str, scenario: str, status: int, error_type: str, stream: bool
) -> None:
    gateway.states[kind].scenario = scenario  # type: ignore[assignment]
    got, raw, _ = await post(f"{gateway.url}/v1/chat/completions", chat_body(kind, "text", stream=stream))
    assert got == status, raw
    error = orjson.loads(raw)["error"]
    assert set(error) == {"message", "type", "code", "param"}
    if scenario == "bad_request":
        assert "bad things" in error["message"]
    elif scenario == "auth_error":
        assert error["code"] == "upstream_auth_failed"
    else:
        assert error["type"] == error_type
    assert "SECRET" not in raw.decode(), "the upstream credential never reaches the client"
    (row,) = await gateway.wait_rows(1)
    assert row["status"] == status and row["error_kind"] == error["code"]
    assert "SECRET" not in orjson.dumps(row).decode()


@pytest.mark.parametrize("kind", KINDS)
async def test_cut_stream_ends_with_an_error_event_and_estimated_usage(
    gateway: GatewayUnderTest, kind: str
) -> None:
    gateway.states[kind].scenario = "stream_cut"
    status, raw, _ = await post(f"{gateway.url}/v1/chat/completions", chat_body(kind, "text", stream=True))
    assert status == 200
    chunks, done = parse_stream(raw)
    assert not done, "a cut stream must never look complete"
    assert "error" in chunks[-1] and chunks[-1]["error"]["code"] == "upstream_stream_cut"
    text, _, _ = reassemble([c for c in chunks if "choices" in c])
    assert text["content"] == "Hel"
    (row,) = await gateway.wait_rows(1)
    # The client got 200 then an error event: the row's status is what the client got, the cut is marked
    # by error_kind, the route says where it was cut (issue 13; this line asserted 502 before).
    assert row["status"] == 200 and row["error_kind"] == "upstream_stream_cut"
    assert "served by" not in row["route"] and row["route"].endswith(
        "upstream_stream_cut after the stream began"
    )
    (cut,) = gateway.rows("attempts")
    assert cut["status"] == 502, "the attempt row keeps the upstream failure"
    assert row["usage_estimated"] == 1 and row["input_tokens"] > 0 and row["output_tokens"] >= 1
    assert row["priced"] == (0 if kind in SELF_HOSTED else 1), "an estimated cut stream is still priced"


@pytest.mark.parametrize("kind", KINDS)
async def test_malformed_upstream_json_is_a_502(gateway: GatewayUnderTest, kind: str) -> None:
    gateway.states[kind].scenario = "stream_cut"  # non-streaming: a truncated JSON body
    status, raw, _ = await post(f"{gateway.url}/v1/chat/completions", chat_body(kind, "text", stream=False))
    assert status == 502, raw
    assert orjson.loads(raw)["error"]["type"] == "api_error"

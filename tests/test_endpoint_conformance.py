"""The conformance suite of the endpoints beyond chat (issue 17): ``/v1/responses``, ``/v1/messages``,
``/v1/completions``, ``/v1/rerank`` and ``GET /v1/models/{id}``, each against every provider kind.

As tests/test_gateway_conformance.py does for chat, one table of cases runs through the gateway's HTTP API
over loopback — but here every upstream is :mod:`tests.fakes.replay`, which answers from wire fixtures
recorded after each provider's documented format (``tests/fixtures/wire/<kind>/``: the whole answer and
the SSE byte sequence) and refuses, as the provider would, a request that breaks the documented shape
(``tests/fixtures/wire/schemas/``). Each case checks what went upstream (path, model, the shape), what the
client got (the endpoint's own format, its SSE event order), and the ledger row metering it. The kinds come
from the provider table (config/kinds.py): a kind added without fixtures fails here. Rate limits and tool
calls, over the same gateway: tests/test_endpoint_conformance_calls.py; shared parts: tests/endpoint_support.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.config import parse_config
from modelyard.errors import ConfigError
from tests.conftest import FAKE_KEY, GatewayUnderTest
from tests.endpoint_support import (
    CHAT_KINDS,
    COMPLETION_KINDS,
    DOCUMENTS,
    RERANK_KINDS,
    RERANKER,
    TEXT,
    UPSTREAM,
    USAGE,
    call,
    chat_path,
    sse_events,
    the_row,
    upstream,
    wire_gateway,
)
from tests.fakes import replay
from tests.fakes.common import serve_app

__all__ = ["wire_gateway"]  # a fixture, used by name


def test_every_kind_has_its_wire_fixtures() -> None:
    for kind in CHAT_KINDS + RERANK_KINDS:
        assert kind in replay.OPERATIONS, f"provider kind {kind} has no wire fixtures (tests/fakes/replay.py)"
        assert (replay.WIRE / kind / "error_429.json").is_file()
        for operation in replay.OPERATIONS[kind]:
            assert (replay.WIRE / kind / f"{operation.fixture}.json").is_file()
            if operation.fixture != "rerank":
                assert (replay.WIRE / kind / f"{operation.fixture}.sse").is_file()
            if operation.fixture not in ("rerank", "completions"):  # the operations tools reach
                for suffix in ("json", "sse"):
                    assert (replay.WIRE / kind / f"{operation.fixture}_tool_call.{suffix}").is_file()
            assert (replay.WIRE / "schemas" / f"{operation.schema}.json").is_file()


# -- POST /v1/responses --------------------------------------------------------------------------------------


def responses_answer(raw: bytes, stream: bool) -> tuple[str, tuple[int, int]]:
    if not stream:
        body = orjson.loads(raw)
    else:
        events = sse_events(raw)
        names = [data["type"] for _, data in events]
        assert names[:2] == ["response.created", "response.in_progress"] and names[-1] == "response.completed"
        assert all(name == data["type"] for name, data in events), "each event named as its type"
        deltas = "".join(data["delta"] for _, data in events if data["type"] == "response.output_text.delta")
        body = events[-1][1]["response"]
        assert deltas == TEXT
    (message,) = [item for item in body["output"] if item["type"] == "message"]
    text = "".join(part["text"] for part in message["content"] if part["type"] == "output_text")
    assert body["status"] == "completed"
    return text, (body["usage"]["input_tokens"], body["usage"]["output_tokens"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", CHAT_KINDS)
async def test_responses(wire_gateway: GatewayUnderTest, kind: str, stream: bool) -> None:
    body = {
        "model": f"{kind}-chat",
        "input": "Say hello.",
        "instructions": "You are terse.",
        "stream": stream,
    }
    status, raw = await call(f"{wire_gateway.url}/v1/responses", body)
    assert status == 200, raw
    assert responses_answer(raw, stream) == (TEXT, USAGE)
    sent = upstream(wire_gateway, kind)
    if kind == "openai":  # OpenAI serves the Responses API: passed through
        assert sent.path == "/v1/responses" and sent.body["model"] == UPSTREAM[kind]
        assert sent.body["input"] == "Say hello." and sent.body["store"] is False
    else:
        assert sent.path == chat_path(kind, stream)
        assert "You are terse." in orjson.dumps(sent.body).decode(), "instructions became the system prompt"
    row = await the_row(wire_gateway, "responses", stream)
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (*USAGE, 0)


# -- POST /v1/messages ---------------------------------------------------------------------------------------


def messages_answer(raw: bytes, stream: bool) -> tuple[str, tuple[int, int]]:
    if not stream:
        body = orjson.loads(raw)
        assert body["type"] == "message" and body["stop_reason"] == "end_turn"
        return body["content"][0]["text"], (body["usage"]["input_tokens"], body["usage"]["output_tokens"])
    events = sse_events(raw)
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop", names
    assert all(name == data["type"] for name, data in events), "each event named as its type"
    assert (
        names.index("content_block_start")
        < names.index("content_block_delta")
        < names.index("content_block_stop")
    )
    (delta,) = [data for name, data in events if name == "message_delta"]
    assert delta["delta"]["stop_reason"] == "end_turn"
    text = "".join(data["delta"]["text"] for name, data in events if name == "content_block_delta")
    # message_delta's usage is cumulative (Anthropic's reference): a translated stream knows its input
    # tokens only at the end and says them there; Anthropic itself says them in message_start too.
    usage = {**events[0][1]["message"]["usage"], **delta["usage"]}
    return text, (usage["input_tokens"], usage["output_tokens"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", CHAT_KINDS)
async def test_messages(wire_gateway: GatewayUnderTest, kind: str, stream: bool) -> None:
    body = {
        "model": f"{kind}-chat",
        "max_tokens": 50,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Say hello."}],
        "stream": stream,
    }
    headers = {"x-api-key": "client-key", "anthropic-version": "2023-06-01"}
    status, raw = await call(f"{wire_gateway.url}/v1/messages", body, headers)
    assert status == 200, raw
    assert messages_answer(raw, stream) == (TEXT, USAGE)
    sent = upstream(wire_gateway, kind)
    assert sent.path == chat_path(kind, stream)
    if kind == "anthropic":  # Anthropic serves the Messages API: passed through, the client's key not
        assert sent.body["system"] == "You are terse." and sent.body["model"] == UPSTREAM[kind]
        assert sent.headers["x-api-key"] == FAKE_KEY
    row = await the_row(wire_gateway, "messages", stream)
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (*USAGE, 0)


# -- POST /v1/completions ------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize("kind", CHAT_KINDS)
async def test_completions(wire_gateway: GatewayUnderTest, kind: str, stream: bool) -> None:
    body = {"model": f"{kind}-chat", "prompt": "Say hello.", "max_tokens": 50, "stream": stream}
    status, raw = await call(f"{wire_gateway.url}/v1/completions", body)
    if kind not in COMPLETION_KINDS:
        assert status == 400 and b"no legacy completions endpoint" in raw, raw
        assert wire_gateway.states[kind].received == [], "refused before anything went upstream"
        return
    assert status == 200, raw
    if stream:
        events = sse_events(raw)
        assert events[-1] == (None, "[DONE]")
        chunks = [data for _, data in events[:-1]]
        text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
        usage = chunks[-1]["usage"]
    else:
        answer = orjson.loads(raw)
        text, usage = answer["choices"][0]["text"], answer["usage"]
    assert (text, (usage["prompt_tokens"], usage["completion_tokens"])) == (TEXT, USAGE)
    sent = upstream(wire_gateway, kind)
    assert sent.path == "/v1/completions" and sent.body["model"] == UPSTREAM[kind]
    if stream:
        assert sent.body["stream_options"] == {"include_usage": True}, "metering asks for the usage chunk"
    row = await the_row(wire_gateway, "completions", stream)
    assert (row["input_tokens"], row["output_tokens"], row["usage_estimated"]) == (*USAGE, 0)


# -- POST /v1/rerank -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RERANK_KINDS)
async def test_rerank(wire_gateway: GatewayUnderTest, kind: str) -> None:
    body = {"model": f"{kind}-rerank", "query": "gpu prices", "documents": DOCUMENTS, "top_n": 3}
    status, raw = await call(f"{wire_gateway.url}/v1/rerank", {**body, "return_documents": True})
    assert status == 200, raw
    answer = orjson.loads(raw)
    assert [r["index"] for r in answer["results"]] == [1, 2, 0]
    assert answer["results"][0]["relevance_score"] == pytest.approx(0.9875)
    assert answer["results"][0]["document"]["text"] == "gpu prices fell"
    sent = upstream(wire_gateway, kind)
    assert sent.body["model"] == RERANKER[kind] and sent.body["query"] == "gpu prices"
    if kind == "openai_compatible":
        assert sent.body["documents"] == DOCUMENTS, "a self-hosted server gets the body as it came"
    else:
        assert sent.body["documents"] == [d if isinstance(d, str) else d["text"] for d in DOCUMENTS]
    row = await the_row(wire_gateway, "rerank", False)
    if kind == "cohere":
        assert answer["usage"] == {"search_units": 1} and row["search_units"] == 1
        assert row["usage_estimated"] == 1, "Cohere reports no tokens"
    else:
        assert answer["usage"]["total_tokens"] == 12
        assert (row["input_tokens"], row["usage_estimated"], row["search_units"]) == (12, 0, 0)


@pytest.mark.parametrize("kind", [k for k in CHAT_KINDS if k not in RERANK_KINDS])
def test_rerank_models_are_refused_on_kinds_without_a_rerank_api(kind: str, tmp_path: Path) -> None:
    raw: dict[str, Any] = {
        "providers": {kind: {"kind": kind, "base_url": "http://127.0.0.1:9", "api_key_env": "K"}},
        "models": {"r": {"provider": kind, "upstream_model": "m", "kind": "rerank"}},
        "ledger": {"url": f"sqlite:///{tmp_path / 'l.db'}"},
    }
    with pytest.raises((ConfigError, ValueError), match="rerank models are served by"):
        parse_config(raw)


# -- GET /v1/models/{id} -------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(dict.fromkeys(CHAT_KINDS + RERANK_KINDS)))
async def test_models_retrieve(wire_gateway: GatewayUnderTest, kind: str) -> None:
    name, expected = (f"{kind}-chat", "chat") if kind in UPSTREAM else (f"{kind}-rerank", "rerank")
    async with aiohttp.ClientSession() as session, session.get(f"{wire_gateway.url}/v1/models/{name}") as r:
        status, model = r.status, orjson.loads(await r.read())
    assert status == 200 and (model["id"], model["object"], model["kind"]) == (name, "model", expected)
    assert wire_gateway.states[kind].received == [], "answered from the config, nothing upstream"


async def test_the_replay_fake_refuses_what_the_provider_would() -> None:
    state = replay.ReplayState()
    async with serve_app(replay.create_app("anthropic", state)) as base:
        headers = {"x-api-key": FAKE_KEY, "anthropic-version": "2023-06-01"}
        no_max_tokens = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "hi"}]}
        status, raw = await call(f"{base}/v1/messages", no_max_tokens, headers)
        assert status == 400 and orjson.loads(raw)["error"]["type"] == "invalid_request_error"
        status, _ = await call(
            f"{base}/v1/messages", {**no_max_tokens, "max_tokens": 5}, {"x-api-key": "nope"}
        )
        assert status == 401
    assert state.violations == [("messages", "(body): 'max_tokens' is a required property")]

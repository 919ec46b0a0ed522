"""Shared by the endpoint conformance suites (tests/test_endpoint_conformance*.py): the provider kinds,
a gateway whose every upstream is :mod:`tests.fakes.replay`, and readers of what the client got."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.config import parse_config
from modelyard.config.kinds import KINDS
from tests.conftest import FAKE_KEY, GatewayUnderTest
from tests.fakes import replay
from tests.fakes.common import serve_app

CHAT_KINDS = [k for k, spec in KINDS.items() if spec.wire and not spec.rerank_only]
RERANK_KINDS = [k for k, spec in KINDS.items() if spec.wire and spec.reranks]
#: Legacy completions exist only in OpenAI's API family.
COMPLETION_KINDS = ["openai", "openai_compatible"]
UPSTREAM = {
    "openai": "gpt-4o-mini",
    "openai_compatible": "meta-llama/Llama-3.1-8B-Instruct",
    "anthropic": "claude-haiku-4-5",
    "gemini": "gemini-2.5-flash",
}
RERANKER = {
    "openai_compatible": "BAAI/bge-reranker-v2-m3",
    "cohere": "rerank-v4.0-fast",
    "jina": "jina-reranker-v2-base-multilingual",
    "voyage": "rerank-2.5",
}
#: What the gateway sends each kind for a translated chat (responses and messages on non-native kinds).
CHAT_OPERATION = {
    "openai": "/v1/chat/completions",
    "openai_compatible": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "gemini": "/v1beta/models/gemini-2.5-flash:{method}",
}
TEXT, USAGE = "Hello, world!", (11, 4)
DOCUMENTS: list[Any] = ["a poem about spring", {"text": "gpu prices fell"}, "prices of gpu rentals rose"]


@pytest.fixture
async def wire_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GatewayUnderTest]:
    from modelyard.app import running_gateway

    providers: dict[str, Any] = {}
    models: dict[str, Any] = {}
    states: dict[str, Any] = {}
    async with AsyncExitStack() as stack:
        for kind in dict.fromkeys(CHAT_KINDS + RERANK_KINDS):
            states[kind] = replay.ReplayState()
            url = await stack.enter_async_context(serve_app(replay.create_app(kind, states[kind])))
            monkeypatch.setenv(f"WIRE_{kind.upper()}_KEY", FAKE_KEY)
            base = url + replay.BASE_SUFFIX.get(kind, "")
            providers[kind] = {"kind": kind, "base_url": base, "api_key_env": f"WIRE_{kind.upper()}_KEY"}
            if kind in UPSTREAM:
                models[f"{kind}-chat"] = {"provider": kind, "upstream_model": UPSTREAM[kind]}
            if kind in RERANKER:
                models[f"{kind}-rerank"] = {
                    "provider": kind,
                    "upstream_model": RERANKER[kind],
                    "kind": "rerank",
                }
        raw = {
            "providers": providers,
            "models": models,
            "ledger": {"url": f"sqlite:///{tmp_path / 'ledger.db'}", "flush_interval_ms": 20},
        }
        config = parse_config(raw)
        async with running_gateway(config, "127.0.0.1", 0) as url:
            yield GatewayUnderTest(url=url, config=config, db_path=tmp_path / "ledger.db", states=states)


async def call(url: str, body: Any, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=orjson.dumps(body), headers=headers) as r,
    ):
        return r.status, await r.read()


def sse_events(raw: bytes) -> list[tuple[str | None, Any]]:
    """(event name, parsed data) of every SSE event; ``[DONE]`` as (None, "[DONE]")."""
    events: list[tuple[str | None, Any]] = []
    for block in raw.decode().replace("\r\n", "\n").split("\n\n"):
        name, data = None, []
        for line in block.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())
        if data:
            text = "\n".join(data)
            events.append((name, text if text == "[DONE]" else orjson.loads(text)))
    return events


def upstream(gateway: GatewayUnderTest, kind: str) -> Any:
    """The one request the kind's fake received, checked against the documented shape there."""
    state = gateway.states[kind]
    assert isinstance(state, replay.ReplayState)
    assert state.violations == [], f"{kind} would refuse what the gateway sent: {state.violations}"
    (received,) = state.received
    return received


async def the_row(gateway: GatewayUnderTest, endpoint: str, stream: bool) -> dict[str, Any]:
    (row,) = await gateway.wait_rows(1)
    assert (row["endpoint"], row["status"], row["streamed"]) == (endpoint, 200, int(stream))
    return row


def chat_path(kind: str, stream: bool) -> str:
    method = "streamGenerateContent" if stream else "generateContent"
    return CHAT_OPERATION[kind].format(method=method)

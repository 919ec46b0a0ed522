"""The HTTP API's contract: bad input gets the right status and OpenAI-shaped error, nothing is forwarded;
workloads resolve from header, body or default; models, health and OpenAPI are served."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from modelyard.http.openapi import openapi_document
from tests.conftest import GatewayUnderTest

MESSAGES = [{"role": "user", "content": "hi"}]


async def request(
    method: str, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, url, data=data, headers=headers) as r,
    ):
        raw = await r.read()
        assert r.headers["Content-Type"].startswith("application/json"), raw[:200]
        return r.status, orjson.loads(raw)


BAD_INPUT = [
    # (name, body bytes, headers, status, code, param)
    ("malformed JSON", b'{"model": "openai-chat", "messages": [', None, 400, "invalid_json", None),
    ("not an object", b"[1, 2]", None, 400, "invalid_json", None),
    ("missing messages", orjson.dumps({"model": "openai-chat"}), None, 400, "invalid_request", "messages"),
    (
        "wrong role",
        orjson.dumps({"model": "openai-chat", "messages": [{"role": "robot", "content": "x"}]}),
        None,
        400,
        "invalid_request",
        "messages[0].role",
    ),
    (
        "temperature as string",
        orjson.dumps({"model": "openai-chat", "messages": MESSAGES, "temperature": "hot"}),
        None,
        400,
        "invalid_request",
        "temperature",
    ),
    (
        "stream as string",
        orjson.dumps({"model": "openai-chat", "messages": MESSAGES, "stream": "yes"}),
        None,
        400,
        "invalid_request",
        "stream",
    ),
    (
        "n > 1",
        orjson.dumps({"model": "openai-chat", "messages": MESSAGES, "n": 3}),
        None,
        400,
        "unsupported_value",
        "n",
    ),
    (
        "unknown model",
        orjson.dumps({"model": "gpt-9", "messages": MESSAGES}),
        None,
        404,
        "model_not_found",
        "model",
    ),
    (
        "embedding model for chat",
        orjson.dumps({"model": "openai-embed", "messages": MESSAGES}),
        None,
        400,
        "wrong_model_kind",
        "model",
    ),
    (
        "unknown workload header",
        orjson.dumps({"model": "openai-chat", "messages": MESSAGES}),
        {"X-Modelyard-Workload": "nope"},
        400,
        "unknown_workload",
        "metadata.workload",
    ),
    (
        "unknown workload in body",
        orjson.dumps({"model": "openai-chat", "messages": MESSAGES, "metadata": {"workload": "nope"}}),
        None,
        400,
        "unknown_workload",
        "metadata.workload",
    ),
    (
        "oversized body",
        orjson.dumps({"model": "openai-chat", "messages": [{"role": "user", "content": "x" * 70_000}]}),
        None,
        413,
        "request_too_large",
        None,
    ),
]


@pytest.mark.parametrize(
    ("name", "data", "headers", "status", "code", "param"), BAD_INPUT, ids=[b[0] for b in BAD_INPUT]
)
async def test_bad_input_is_refused_with_openai_errors_and_not_forwarded(
    gateway: GatewayUnderTest, name: str, data: bytes, headers: Any, status: int, code: str, param: str | None
) -> None:
    got, body = await request("POST", f"{gateway.url}/v1/chat/completions", data=data, headers=headers)
    assert got == status, body
    assert set(body["error"]) == {"message", "type", "code", "param"}
    assert body["error"]["code"] == code
    assert body["error"]["param"] == param
    assert body["error"]["message"]
    assert all(not state.received for state in gateway.states.values()), "nothing may reach an upstream"
    (row,) = await gateway.wait_rows(1)
    assert row["status"] == status and row["error_kind"] == code and row["provider"] is None


async def test_chunked_oversized_body_is_413(gateway: GatewayUnderTest) -> None:
    async def body() -> Any:
        for _ in range(100):
            yield b"x" * 1024

    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{gateway.url}/v1/chat/completions", data=body()) as r,
    ):
        assert r.status == 413
        assert (await r.json())["error"]["code"] == "request_too_large"


async def test_unknown_path_and_wrong_method(gateway: GatewayUnderTest) -> None:
    status, body = await request("GET", f"{gateway.url}/v1/nothing")
    assert status == 404 and body["error"]["code"] == "unknown_url"
    status, body = await request("GET", f"{gateway.url}/v1/chat/completions")
    assert status == 405 and "POST" in body["error"]["message"]


@pytest.mark.parametrize(
    ("headers", "metadata", "workload", "data_class"),
    [
        ({"X-Modelyard-Workload": "triage"}, None, "triage", "confidential"),
        (None, {"workload": "triage"}, "triage", "confidential"),
        (None, None, "chat", "public"),  # server.default_workload
    ],
)
async def test_workload_resolution(
    gateway: GatewayUnderTest, headers: Any, metadata: Any, workload: str, data_class: str
) -> None:
    body: dict[str, Any] = {"model": "openai-chat", "messages": MESSAGES}
    if metadata:
        body["metadata"] = metadata
    status, _ = await request(
        "POST", f"{gateway.url}/v1/chat/completions", data=orjson.dumps(body), headers=headers
    )
    assert status == 200
    (row,) = await gateway.wait_rows(1)
    assert (row["workload"], row["data_class"]) == (workload, data_class)
    forwarded = gateway.states["openai"].received[0].body
    assert "metadata" not in forwarded, "gateway routing data is not sent upstream"
    assert forwarded["model"] == "gpt-4o-mini", "the upstream model name replaces the public one"


async def test_workload_default_model_and_content_logging(gateway: GatewayUnderTest) -> None:
    status, _ = await request(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        data=orjson.dumps({"messages": MESSAGES}),
        headers={"X-Modelyard-Workload": "triage"},
    )
    assert status == 200
    status, _ = await request(
        "POST",
        f"{gateway.url}/v1/chat/completions",
        data=orjson.dumps({"model": "openai-chat", "messages": MESSAGES}),
        headers={"X-Modelyard-Workload": "audited"},
    )
    assert status == 200
    first, second = await gateway.wait_rows(2)
    assert first["model"] == gateway.config.workloads["triage"].model
    assert first["prompt"] is None and first["completion"] is None, "content is not stored by default"
    assert "hi" in second["prompt"] and "Hello, world!" in second["completion"]


async def test_self_hosted_model_is_recorded_unpriced_not_free(gateway: GatewayUnderTest) -> None:
    body = {"model": "llama", "messages": MESSAGES}
    status, _ = await request("POST", f"{gateway.url}/v1/chat/completions", data=orjson.dumps(body))
    assert status == 200
    (row,) = await gateway.wait_rows(1)
    assert row["priced"] == 0 and row["cost_pico_usd"] is None
    assert row["input_tokens"] == 11 and row["provider_kind"] == "openai_compatible"


async def test_models_health_and_openapi(gateway: GatewayUnderTest) -> None:
    status, body = await request("GET", f"{gateway.url}/v1/models")
    assert status == 200 and {m["id"] for m in body["data"]} == set(gateway.config.models)
    status, body = await request("GET", f"{gateway.url}/healthz")
    assert status == 200 and body == {"status": "ok"}
    status, body = await request("GET", f"{gateway.url}/openapi.json")
    assert status == 200
    from modelyard.http.admin import PREFIX, admin_paths
    from modelyard.http.app import ROUTES
    from modelyard.http.console import Console, console_paths

    assert set(body["paths"]) == set(ROUTES) | set(admin_paths()) | set(console_paths()), (
        "every route is documented, and nothing else"
    )
    assert all(path.startswith(PREFIX) for path in admin_paths()), (
        "the admin routes are all under /admin/keys"
    )
    assert all(Console.serves(path) for path in console_paths()), "the console's routes are under /console"


def test_openapi_document_in_repo_is_current() -> None:
    kept = orjson.loads((Path(__file__).parent.parent / "docs" / "openapi.json").read_bytes())
    assert kept == orjson.loads(orjson.dumps(openapi_document())), (
        "regenerate: modelyard openapi > docs/openapi.json"
    )


async def test_embeddings_through_openai_adapter(gateway: GatewayUnderTest) -> None:
    body = {"model": "openai-embed", "input": ["a", "b"]}
    status, answer = await request("POST", f"{gateway.url}/v1/embeddings", data=orjson.dumps(body))
    assert status == 200 and len(answer["data"]) == 2
    (row,) = await gateway.wait_rows(1)
    assert row["endpoint"] == "embeddings" and row["input_tokens"] == 4 and row["priced"] == 1

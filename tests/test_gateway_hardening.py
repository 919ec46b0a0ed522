"""Hostile clients against the gateway's request path (issue 13): each test replays an attack that once
worked, over real loopback HTTP, bounded in count and size."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
from multidict import CIMultiDict

from modelyard.app import running_gateway
from modelyard.errors import InvalidRequest
from modelyard.gateway.auth import hash_key
from modelyard.http.meta import header_values, single_header
from modelyard.http.openapi import openapi_document
from modelyard.http.validation import check_depth
from tests.conftest import GatewayUnderTest, gateway_config
from tests.fakes.common import FakeState

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"


async def call(
    gateway: GatewayUnderTest,
    method: str,
    path: str,
    *,
    body: Any = None,
    headers: CIMultiDict[str] | dict[str, str] | None = None,
) -> tuple[int, Any, CIMultiDict[str]]:
    # The standard library's encoder, not orjson's: it writes what orjson refuses to (300 levels).
    data = json.dumps(body).encode() if body is not None else None
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, gateway.url + path, data=data, headers=headers) as r,
    ):
        raw = await r.read()
        parsed = orjson.loads(raw) if r.content_type == "application/json" else raw
        return r.status, parsed, CIMultiDict(r.headers)


def nested(depth: int) -> Any:
    """A JSON value ``depth`` levels deep (objects inside arrays inside objects...)."""
    value: Any = {}
    for level in range(depth - 1):
        value = [value] if level % 2 else {"x": value}
    return value


# -- row 6: nesting deeper than the encoder's limit ------------------------------------------------------

DEPTHS = [
    # (name, body, limit, refused)
    ("flat", {"a": 1}, 8, False),
    ("exactly the limit", {"a": nested(7)}, 8, False),
    ("one past the limit", {"a": nested(8)}, 8, True),
    ("deep inside a list of many", {"a": [1] * 50 + [nested(9)]}, 8, True),
    ("many brackets, shallow", {"a": [{} for _ in range(100)]}, 8, False),
    ("brackets inside strings only", {"a": "[[[[[[[[[[{{{{{{{{{{"}, 8, False),
]


@pytest.mark.parametrize(("name", "body", "limit", "refused"), DEPTHS, ids=[d[0] for d in DEPTHS])
def test_depth_limit_from_a_table(name: str, body: Any, limit: int, refused: bool) -> None:
    raw = orjson.dumps(body)
    if refused:
        with pytest.raises(InvalidRequest) as caught:
            check_depth(raw, body, limit)
        assert caught.value.code == "json_too_deep" and str(limit) in str(caught.value)
    else:
        check_depth(raw, body, limit)


@pytest.mark.parametrize(
    "where",
    ["tools", "json_schema", "extra field"],
)
async def test_json_nested_past_the_encoders_limit_is_a_400_not_a_500(
    gateway: GatewayUnderTest, where: str
) -> None:
    deep = nested(300)  # orjson parses it (limit 1024) but cannot encode it (limit 254)
    body: dict[str, Any] = {"model": "openai-chat", "messages": MESSAGES}
    if where == "tools":
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": deep}}]
    elif where == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {"name": "s", "schema": deep}}
    else:
        body["vendor_extension"] = deep
    status, answer, _ = await call(gateway, "POST", CHAT, body=body)
    assert status == 400, answer
    assert answer["error"]["code"] == "json_too_deep"
    assert "128" in answer["error"]["message"]
    assert not gateway.states["openai"].received, "nothing is forwarded"


async def test_json_at_the_depth_limit_is_forwarded(gateway: GatewayUnderTest) -> None:
    # The body itself is level 1, tools 2, the tool 3, function 4, parameters 5: 124 more fit in 128.
    parameters = nested(124)
    body = {
        "model": "openai-chat",
        "messages": MESSAGES,
        "tools": [{"type": "function", "function": {"name": "f", "parameters": parameters}}],
    }
    status, answer, _ = await call(gateway, "POST", CHAT, body=body)
    assert status == 200, answer
    assert gateway.states["openai"].received[0].body["tools"][0]["function"]["parameters"] == parameters


# -- row 7: client-chosen names as metric labels ---------------------------------------------------------


async def test_unknown_model_names_never_become_metric_labels(gateway: GatewayUnderTest) -> None:
    for number in range(50):
        name = f"attacker-{number}-" + "m" * 10_000
        status, _, _ = await call(gateway, "POST", CHAT, body={"model": name, "messages": MESSAGES})
        assert status == 404
    status, _, _ = await call(gateway, "POST", CHAT, body={"model": "openai-chat", "messages": MESSAGES})
    assert status == 200
    status, metrics, _ = await call(gateway, "GET", "/metrics")
    assert status == 200
    text = metrics.decode()
    # Two label sets' worth of series (the 404s under _unknown, the answer): about 26 kB with the GenAI
    # histograms; fifty names as labels would add ~13 kB each.
    assert "attacker" not in text and len(metrics) < 40_000, len(metrics)
    assert 'modelyard_requests_total{model="_unknown",status="404",workload="chat"} 50.0' in text
    assert 'model="openai-chat"' in text, "configured names are still labelled"


# -- row 8: a repeated data-class header -----------------------------------------------------------------


def repeated(*values: str, name: str = "X-Modelyard-Data-Class") -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict({"X-Modelyard-Workload": "audited"})  # internal
    for value in values:
        headers.add(name, value)
    return headers


async def test_a_proxys_appended_data_class_header_is_not_overruled_by_the_clients(
    gateway: GatewayUnderTest,
) -> None:
    body = {"model": "openai-chat", "messages": MESSAGES}  # an external provider
    status, answer, _ = await call(
        gateway, "POST", CHAT, body=body, headers=repeated("internal", "restricted")
    )
    assert status == 403, answer
    assert not gateway.states["openai"].received, "restricted data never reaches an external provider"
    status, answer, _ = await call(gateway, "POST", CHAT, body=body, headers=repeated("internal, restricted"))
    assert status == 403, "a proxy that merged the values into one line counts the same"
    status, _, _ = await call(
        gateway, "POST", CHAT, body={**body, "model": "llama"}, headers=repeated("restricted", "internal")
    )
    assert status == 200, "the strictest value wins: self-hosted serves it"
    rows = await gateway.wait_rows(3)
    assert [r["data_class"] for r in rows] == ["restricted", "restricted", "restricted"]


async def test_different_workload_headers_are_refused(gateway: GatewayUnderTest) -> None:
    headers = repeated("chat", "triage", name="X-Modelyard-Workload")
    body = {"model": "openai-chat", "messages": MESSAGES}
    status, answer, _ = await call(gateway, "POST", CHAT, body=body, headers=headers)
    assert status == 400 and answer["error"]["code"] == "conflicting_header", answer


async def test_a_loosening_header_refusal_records_what_admission_decided(gateway: GatewayUnderTest) -> None:
    body = {"model": "openai-chat", "messages": MESSAGES}
    status, answer, _ = await call(gateway, "POST", CHAT, body=body, headers=repeated("public"))
    assert status == 403 and answer["error"]["code"] == "data_class_loosened", answer
    (row,) = await gateway.wait_rows(1)
    assert (row["workload"], row["data_class"], row["status"]) == ("audited", "internal", 403)
    assert row["policy"] and row["policy"].startswith("internal (workload)")
    assert row["route"] == "single:openai-chat; refused (data_class_loosened)"


# -- smaller items: keys on every route, /v1/usage without its database, 405 ----------------------------

KEY = "myd-hardening-0123456789abcdefghijklmnopqrstuv"


@pytest.mark.parametrize("public_metrics", [False, True])
async def test_models_and_metrics_need_a_key_when_keys_are_required(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]], public_metrics: bool
) -> None:
    bases, states = fakes
    auth = {
        "required": True,
        "keys": {"k": {"sha256": hash_key(KEY), "tenant": "acme"}},
        "public_metrics": public_metrics,
    }
    config = gateway_config(tmp_path, {"openai": bases["openai"]}, auth=auth)
    async with running_gateway(config, "127.0.0.1", 0) as url:
        gateway = GatewayUnderTest(url, config, tmp_path / "ledger.db", states)
        keyed = {"Authorization": f"Bearer {KEY}"}
        status, answer, _ = await call(gateway, "GET", "/v1/models")
        assert status == 401 and answer["error"]["code"] == "missing_api_key"
        assert (await call(gateway, "GET", "/v1/models", headers=keyed))[0] == 200
        status, _, _ = await call(gateway, "GET", "/metrics")
        assert status == (200 if public_metrics else 401)
        assert (await call(gateway, "GET", "/metrics", headers=keyed))[0] == 200
        assert (await call(gateway, "GET", "/healthz"))[0] == 200, "liveness stays open for probes"


async def test_usage_answers_503_while_the_database_is_down(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> None:
    bases, states = fakes
    auth = {"keys": {"k": {"sha256": hash_key(KEY), "tenant": "acme"}}}
    ledger = {"url": "postgresql://postgres@127.0.0.1:1/test", "spool_dir": str(tmp_path / "spool")}
    config = gateway_config(tmp_path, {"openai": bases["openai"]}, auth=auth, ledger=ledger)
    async with running_gateway(config, "127.0.0.1", 0) as url:
        gateway = GatewayUnderTest(url, config, tmp_path / "ledger.db", states)
        headers = {"Authorization": f"Bearer {KEY}"}
        status, answer, _ = await call(gateway, "GET", "/v1/usage", headers=headers)
    assert status == 503 and answer["error"]["code"] == "ledger_unavailable", answer


async def test_a_405_says_which_method_is_allowed(gateway: GatewayUnderTest) -> None:
    status, _, headers = await call(gateway, "GET", CHAT)
    assert status == 405 and headers["Allow"] == "POST"
    status, _, headers = await call(gateway, "DELETE", "/metrics")
    assert status == 405 and headers["Allow"] == "GET"


HEADERS = [
    # (name, header lines, every value, the single value or None when refused)
    ("absent", [], [], None),
    ("one", ["internal"], ["internal"], "internal"),
    ("repeated", ["internal", "restricted"], ["internal", "restricted"], "refused"),
    ("merged by a proxy", ["internal, restricted"], ["internal", "restricted"], "refused"),
    ("repeated alike", ["chat", "chat"], ["chat", "chat"], "chat"),
    ("empty items", [" , internal ,"], ["internal"], "internal"),
]


@pytest.mark.parametrize(("name", "lines", "values", "single"), HEADERS, ids=[h[0] for h in HEADERS])
def test_header_values_from_a_table(name: str, lines: list[str], values: list[str], single: str) -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        headers.add("X-H", line)
    assert header_values(headers, "x-h") == values
    if single == "refused":
        with pytest.raises(InvalidRequest):
            single_header(headers, "X-H")
    else:
        assert single_header(headers, "X-H") == single


# -- shapes the translations to Anthropic and Gemini took on trust ---------------------------------------

TOOLS = [{"type": "function", "function": {"name": "f"}}]
UNTRANSLATABLE = [
    # (path, body without its model, the parameter the 400 names): each once answered 500 (a KeyError or
    # AttributeError in a translation) or sent a null name upstream
    (CHAT, {"messages": MESSAGES, "tools": TOOLS, "tool_choice": {"type": "function", "function": {}}},
     "tool_choice.function.name"),
    (CHAT, {"messages": MESSAGES, "tool_choice": {"type": "allowed_tools", "allowed_tools": {}}},
     "tool_choice.type"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": 5}]}]},
     "messages[0].content[0].image_url"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
     "messages[0].content[0].image_url.url"),
    (CHAT, {"messages": [{"role": "user", "content": [{"type": "text"}]}]}, "messages[0].content[0].text"),
    (CHAT, {"messages": MESSAGES, "response_format": {"type": "json_schema"}}, "response_format.json_schema"),
    ("/v1/responses", {"input": "hi", "tool_choice": {"type": "function"}}, "tool_choice.name"),
    ("/v1/responses", {"input": "hi", "tool_choice": {"x": 1}}, "tool_choice.type"),
    ("/v1/responses", {"input": "hi", "tools": [{"type": "function"}]}, "tools[0].name"),
    ("/v1/responses", {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": 5}]}]},
     "input[0].content"),
    ("/v1/messages", {"max_tokens": 9, "messages": [
        {"role": "user", "content": "x"},
        {"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]},
    ]}, "messages[1].content[0].id"),
    ("/v1/messages", {"max_tokens": 9, "messages": [
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a", "content": 5}]},
    ]}, "messages[0].content[0].content"),
    ("/v1/messages", {"max_tokens": 9, "messages": MESSAGES, "tool_choice": {"type": "tool"}}, "tool_choice.name"),
    ("/v1/messages", {"max_tokens": 9, "messages": MESSAGES, "system": [{"type": "text", "text": 5}]},
     "system[0].text"),
]  # fmt: skip


@pytest.mark.parametrize("model", ["anthropic-chat", "gemini-chat"])
@pytest.mark.parametrize(("path", "body", "param"), UNTRANSLATABLE)
async def test_shapes_a_translation_cannot_take_are_a_400_naming_the_parameter(
    gateway: GatewayUnderTest, model: str, path: str, body: dict[str, Any], param: str
) -> None:
    status, answer, headers = await call(gateway, "POST", path, body={"model": model, **body})
    assert status == 400 and headers["Content-Type"].startswith("application/json"), answer
    if path == "/v1/messages":  # Anthropic's error shape names no parameter: the message does
        assert answer["error"]["type"] == "invalid_request_error" and param in answer["error"]["message"]
    else:
        assert answer["error"]["param"] == param, answer
    assert not gateway.states["anthropic"].received and not gateway.states["gemini"].received


# -- answers the OpenAPI document did not describe (found by schemathesis against docs/openapi.json) ------


async def test_a_usage_query_that_is_not_a_number_is_a_documented_400(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, FakeState]]
) -> None:
    bases, states = fakes
    auth = {"keys": {"k": {"sha256": hash_key(KEY), "tenant": "acme"}}}
    config = gateway_config(tmp_path, {"openai": bases["openai"]}, auth=auth)
    async with running_gateway(config, "127.0.0.1", 0) as url:
        gateway = GatewayUnderTest(url, config, tmp_path / "ledger.db", states)
        headers = {"Authorization": f"Bearer {KEY}"}
        status, answer, _ = await call(gateway, "GET", "/v1/usage?since=null", headers=headers)
    assert status == 400 and answer["error"]["param"] == "since"
    assert str(status) in openapi_document()["paths"]["/v1/usage"]["get"]["responses"]


@pytest.mark.parametrize("path", [CHAT, "/v1/completions", "/v1/responses", "/v1/messages"])
async def test_every_event_of_a_stream_matches_the_documented_event_schema(
    gateway: GatewayUnderTest, path: str
) -> None:
    body: dict[str, Any] = {"model": "openai-chat", "stream": True}
    body |= {"prompt": "hi"} if path == "/v1/completions" else {"input": "hi"}
    body |= {"messages": MESSAGES, "max_tokens": 9} if path in (CHAT, "/v1/messages") else {}
    async with (
        aiohttp.ClientSession() as session,
        session.post(gateway.url + path, data=orjson.dumps(body)) as r,
    ):
        assert r.status == 200 and r.content_type == "text/event-stream"
        text = (await r.read()).decode()
    documented = openapi_document()["paths"][path]["post"]["responses"]["200"]["content"]
    schema = documented["text/event-stream"]["schema"]
    events = [_sse_event(block) for block in text.split("\n\n") if block.strip()]
    assert len(events) >= 2
    for event in events:
        jsonschema.validate(event, schema)


def _sse_event(block: str) -> dict[str, Any]:
    """One event as the SSE standard reads it: ``field: value`` lines; data lines joined with newlines."""
    event: dict[str, Any] = {}
    for line in block.splitlines():
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            event["data"] = f"{event['data']}\n{value}" if "data" in event else value
        elif name == "retry":
            event["retry"] = int(value)
        elif name in ("event", "id"):
            event[name] = value
    return event

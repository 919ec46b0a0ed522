"""An answer that still fails its requested JSON schema after every retry is returned marked, and the ledger
says what each attempt was billed for."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import openai
import orjson
import pytest

from modelyard.gateway.unvalidated import REASON_HEADER, VALIDATION_HEADER, billing_note, header_value
from modelyard.ledger.schema import AttemptRow
from tests.fakes import flaky
from tests.test_gateway_resilience import fleet, models

SCHEMA = {"type": "object", "properties": {"answer": {"type": "integer"}}, "required": ["answer"]}
RESPONSE_FORMAT = {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}}


def _row(attempt: int, error_kind: str | None, purpose: str = "answer") -> AttemptRow:
    return AttemptRow(
        request_id="r",
        attempt=attempt,
        ts=0.0,
        provider="p",
        provider_kind="openai",
        upstream_model="m",
        status=200 if error_kind != "upstream_unavailable" else 502,
        error_kind=error_kind,
        latency_ms=1.0,
        ttft_ms=None,
        cost_pico_usd=1,
        priced=True,
        purpose=purpose,
    )


def test_billing_note_names_the_returned_attempt_and_each_ones_bill() -> None:
    rows = [_row(1, "upstream_unavailable"), _row(2, "rejected"), _row(3, None, "judge"), _row(4, "rejected")]
    assert billing_note(rows) == (
        "returned attempt 4's answer unvalidated; billed: attempt 1: failed (upstream_unavailable), "
        "attempt 2: answer rejected, attempt 4: answer returned, failed validation"
    )


def test_the_reason_header_is_one_printable_line() -> None:
    assert header_value("answer: 'x' is not of type\n'integer' — ü" + "x" * 500) == (
        "answer: 'x' is not of type?'integer' ? ?" + "x" * 160
    )


async def test_a_schema_failure_after_retries_is_marked_and_billed_per_attempt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake answers plain text ("Hello, world!") every time: never the requested schema.
    plans = {"up": flaky.FaultPlan(script=["text", "text", "json"])}
    async with fleet(tmp_path, monkeypatch, plans, models=models(m="up")) as (gateway, _):
        body: dict[str, Any] = {
            "model": "m",
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": RESPONSE_FORMAT,
        }
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{gateway.url}/v1/chat/completions", data=orjson.dumps(body)) as r:
                status, headers, answer = r.status, r.headers, orjson.loads(await r.read())
            # The next answer (the fake's "json") passes: no mark.
            sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
            raw = await sdk.chat.completions.with_raw_response.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                response_format=RESPONSE_FORMAT,  # type: ignore[arg-type]
            )
            await sdk.close()
        (row, passed) = await gateway.wait_rows(2)
        attempts = await gateway.wait_rows(3, table="attempts")

    assert status == 200 and headers[VALIDATION_HEADER] == "failed"
    assert headers[REASON_HEADER] == "answer is not valid JSON"
    assert answer["choices"][0]["message"]["content"] == "Hello, world!", "the answer paid for is returned"
    assert answer["choices"][0]["finish_reason"] == "stop", "finish_reason stays the model's"
    assert answer["modelyard"] == {"validation": {"status": "failed", "reason": "answer is not valid JSON"}}
    assert VALIDATION_HEADER not in raw.headers and raw.parse().model_extra == {}

    assert row["error_kind"] == "validation_failed" and row["attempts"] == 2
    assert row["route"].endswith(
        "returned attempt 2's answer unvalidated; billed: attempt 1: answer rejected, "
        "attempt 2: answer returned, failed validation"
    )
    first_two = [a for a in attempts if a["request_id"] == row["request_id"]]
    assert [a["error_kind"] for a in first_two] == ["rejected", "rejected"]
    assert all(a["input_tokens"] == 11 and a["cost_pico_usd"] > 0 for a in first_two)
    assert row["cost_pico_usd"] == sum(a["cost_pico_usd"] for a in first_two), "both attempts billed"
    assert passed["error_kind"] is None


async def test_a_streamed_cascade_answer_that_fails_is_marked_in_its_headers_and_final_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Both models answer plain text: the cascade escalates, then returns the last answer, unvalidated.
    plans = {"cheap": flaky.FaultPlan(script=["text"] * 4), "strong": flaky.FaultPlan(script=["text"] * 4)}
    config = {
        "models": models(mini="cheap", big="strong"),
        "routes": {
            "extract": {
                "strategy": "cascade",
                "targets": [{"model": "mini"}, {"model": "big"}],
                "validators": [{"kind": "json_schema", "schema": SCHEMA}],
            }
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, _):
        sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
        raw = await sdk.chat.completions.with_raw_response.create(
            model="extract",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in raw.parse()]
        await sdk.close()
        (row,) = await gateway.wait_rows(1)

    assert raw.headers[VALIDATION_HEADER] == "failed"
    assert raw.headers[REASON_HEADER] == "json_schema: answer is not valid JSON"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello, world!", "the answer paid for is streamed"
    (finish,) = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish.choices[0].finish_reason == "stop", "finish_reason stays the model's"
    assert finish.model_extra == {
        "modelyard": {"validation": {"status": "failed", "reason": "json_schema: answer is not valid JSON"}}
    }
    assert [c.model_extra for c in chunks if c is not finish] == [{}] * (len(chunks) - 1), "one chunk marked"
    assert chunks[-1].usage is not None and chunks[-1].usage.prompt_tokens == 11, "the returned answer's"
    assert row["error_kind"] == "validation_failed" and row["streamed"] == 1
    assert row["route"].endswith("attempt 1: answer rejected, attempt 2: answer returned, failed validation")


async def test_a_streamed_cascade_answer_that_passes_is_not_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"cheap": flaky.FaultPlan(script=["json"])}
    config = {
        "models": models(mini="cheap"),
        "routes": {
            "extract": {
                "strategy": "cascade",
                "targets": [{"model": "mini"}],
                "validators": [{"kind": "json_schema", "schema": SCHEMA}],
            }
        },
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, _):
        body = {"model": "extract", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        url = f"{gateway.url}/v1/chat/completions"
        async with aiohttp.ClientSession() as session, session.post(url, data=orjson.dumps(body)) as r:
            headers, raw = r.headers, await r.read()
    assert VALIDATION_HEADER not in headers and b"modelyard" not in raw and raw.endswith(b"data: [DONE]\n\n")


CASCADE = {
    "models": models(mini="cheap", big="strong"),
    "routes": {
        "extract": {
            "strategy": "cascade",
            "targets": [{"model": "mini"}, {"model": "big"}],
            "validators": [{"kind": "json_schema", "schema": SCHEMA}],
        }
    },
}
MARK = {"validation": {"status": "failed", "reason": "json_schema: answer is not valid JSON"}}


async def test_streamed_responses_and_messages_through_a_cascade_are_marked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # OpenAI targets: /v1/responses would pass through to OpenAI, but a cascade must read the answer, so
    # it is served as chat (the fake answers chat only); both answers fail the schema.
    plans = {"cheap": flaky.FaultPlan(script=["text"] * 4), "strong": flaky.FaultPlan(script=["text"] * 4)}
    async with fleet(tmp_path, monkeypatch, plans, **CASCADE) as (gateway, states):
        sdk = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="k", max_retries=0)
        raw = await sdk.responses.with_raw_response.create(model="extract", input="hi", stream=True)
        events = [event async for event in raw.parse()]
        await sdk.close()
        body = {"model": "extract", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}
        url, data = f"{gateway.url}/v1/messages", orjson.dumps({**body, "stream": True})
        async with aiohttp.ClientSession() as session, session.post(url, data=data) as r:
            message_headers, message_stream = r.headers, (await r.read()).decode()
    assert raw.headers[VALIDATION_HEADER] == "failed"
    completed = events[-1]
    assert completed.type == "response.completed" and completed.response.output_text == "Hello, world!"
    assert (completed.response.model_extra or {})["modelyard"] == MARK
    assert all(r.path == "/v1/chat/completions" for s in states.values() for r in s.received)

    assert message_headers[VALIDATION_HEADER] == "failed"
    blocks = [block for block in message_stream.split("\n\n") if block.startswith("event: message_delta")]
    (delta,) = [orjson.loads(block.split("data: ", 1)[1]) for block in blocks]
    assert delta["modelyard"] == MARK and delta["delta"]["stop_reason"] == "end_turn"
    assert message_stream.rstrip().endswith('{"type":"message_stop"}')


async def test_a_cascade_over_anthropic_reads_a_messages_answer_before_it_is_returned(
    tmp_path: Path, fakes: tuple[dict[str, str], dict[str, Any]]
) -> None:
    from modelyard.app import running_gateway
    from tests.conftest import gateway_config

    bases, states = fakes
    route = {"strategy": "cascade", "targets": [{"model": "anthropic-chat"}]}
    route["validators"] = [{"kind": "json_schema", "schema": SCHEMA}]
    config = gateway_config(tmp_path, bases, routes={"extract": route})
    body = {"model": "extract", "max_tokens": 20, "top_k": 5, "messages": [{"role": "user", "content": "hi"}]}
    async with (
        running_gateway(config, "127.0.0.1", 0) as url,
        aiohttp.ClientSession() as session,
        session.post(f"{url}/v1/messages", data=orjson.dumps(body)) as r,
    ):
        headers, answer = r.headers, orjson.loads(await r.read())
    assert headers[VALIDATION_HEADER] == "failed" and answer["modelyard"] == MARK
    sent = states["anthropic"].received
    assert sent and all("top_k" not in r.body for r in sent), (
        "translated (a passthrough keeps top_k): the cascade read the answer"
    )

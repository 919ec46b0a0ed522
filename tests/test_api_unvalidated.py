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

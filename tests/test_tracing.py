"""Traces (issue 18): the request's span and one child span per upstream attempt, with the GenAI
attributes, a client's ``traceparent`` joined and carried to the upstream; and the ledger's template, tool
call and trace id columns. Spans are caught by the SDK's in-memory exporter in place of OTLP's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from modelyard.errors import InvalidRequest
from modelyard.gateway import tracing
from modelyard.gateway.tracing import parse_traceparent
from modelyard.http.meta import read_template
from tests.fakes import flaky
from tests.test_gateway_resilience import chat, fleet, models

CLIENT_TRACE = "0af7651916cd43dd8448eb211c80319c"
CLIENT_SPAN = "b7ad6b7169203331"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01", (int(CLIENT_TRACE, 16), int(CLIENT_SPAN, 16), True)),
        (f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00", (int(CLIENT_TRACE, 16), int(CLIENT_SPAN, 16), False)),
        # A later version may append fields; version 00 may not.
        (f"01-{CLIENT_TRACE}-{CLIENT_SPAN}-01-extra", (int(CLIENT_TRACE, 16), int(CLIENT_SPAN, 16), True)),
        (f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01-extra", None),
        (f"ff-{CLIENT_TRACE}-{CLIENT_SPAN}-01", None),
        (f"00-{'0' * 32}-{CLIENT_SPAN}-01", None),
        (f"00-{CLIENT_TRACE}-{'0' * 16}-01", None),
        (f"00-{CLIENT_TRACE[:-1]}-{CLIENT_SPAN}-01", None),
        (f"00-{CLIENT_TRACE[:-1]}x-{CLIENT_SPAN}-01", None),
        ("garbage", None),
        (None, None),
    ],
)
def test_traceparent_parsing(header: str | None, expected: tuple[int, int, bool] | None) -> None:
    parent = parse_traceparent(header)
    if expected is None:
        assert parent is None
    else:
        assert parent is not None
        assert (parent.trace_id, parent.span_id, parent.trace_flags.sampled) == expected
        assert parent.is_remote


@pytest.fixture
def exporter(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The OTLP exporter the gateway builds, replaced by the SDK's in-memory one (the endpoint kept)."""
    caught: dict[str, Any] = {"exporter": InMemorySpanExporter()}

    def otlp(endpoint: str) -> InMemorySpanExporter:
        caught["endpoint"] = endpoint
        return caught["exporter"]  # type: ignore[no-any-return]

    monkeypatch.setattr(tracing, "OTLPSpanExporter", otlp)
    return caught


def _traced(**overrides: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "endpoint": "http://127.0.0.1:4318/v1/traces",
        "sample_ratio": 1.0,
        "service_name": "gw-test",
        **overrides,
    }


async def test_request_and_attempt_spans_join_the_clients_trace_and_reach_the_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter: dict[str, Any]
) -> None:
    # The primary fails twice (one retry), the backup answers with a tool call: three attempts.
    plans = {
        "primary": flaky.FaultPlan(rate=1.0, faults=("server_error",)),
        "backup": flaky.FaultPlan(script=["tool_call"]),
    }
    config = {
        "models": models(a="primary", b="backup"),
        "routes": {"r": {"strategy": "fallback", "targets": [{"model": "a"}, {"model": "b"}]}},
        "workloads": {"support": {"data_class": "internal"}},
        "tracing": _traced(),
    }
    headers = {
        "X-Modelyard-Workload": "support",
        "traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01",
        "X-Modelyard-Template": "triage-prompt@v7",
    }
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            status, _ = await chat(session, gateway.url, "r", headers=headers)
        (row,) = await gateway.wait_rows(1)
    assert status == 200
    assert exporter["endpoint"] == "http://127.0.0.1:4318/v1/traces"
    spans: tuple[ReadableSpan, ...] = exporter["exporter"].get_finished_spans()  # flushed at shutdown
    (request,) = [s for s in spans if s.kind == SpanKind.SERVER]
    attempts = sorted(
        (s for s in spans if s.kind == SpanKind.CLIENT), key=lambda s: s.attributes["modelyard.attempt"]
    )  # type: ignore[index]
    assert len(spans) == 4 and len(attempts) == 3

    # The request's span: a child of the client's span, named "{operation} {model}", GenAI attributes.
    assert request.name == "chat r"
    assert request.parent is not None and request.parent.span_id == int(CLIENT_SPAN, 16)
    assert request.context.trace_id == int(CLIENT_TRACE, 16)
    assert request.resource.attributes["service.name"] == "gw-test"
    a = request.attributes
    assert a is not None
    assert (a["gen_ai.operation.name"], a["gen_ai.request.model"], a["gen_ai.response.model"]) == (
        "chat",
        "r",
        "gpt-4o-mini",
    )
    assert a["gen_ai.provider.name"] == "openai"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("tool_calls",)  # type: ignore[arg-type]
    assert (a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (
        row["input_tokens"],
        row["output_tokens"],
    )
    assert (a["modelyard.workload"], a["modelyard.data_class"]) == ("support", "internal")
    assert a["modelyard.cost_usd"] > 0  # type: ignore[operator]
    assert (a["modelyard.attempts"], a["modelyard.tool_calls"], a["http.response.status_code"]) == (3, 1, 200)
    assert (a["modelyard.template.id"], a["modelyard.template.version"]) == ("triage-prompt", "v7")
    assert "error.type" not in a

    # One child per attempt, in order: two failures on the primary, then the backup's answer.
    for span in attempts:
        assert span.parent is not None and span.parent.span_id == request.context.span_id
        assert span.context.trace_id == int(CLIENT_TRACE, 16)
        assert span.name == "chat gpt-4o-mini"
    assert [s.attributes["modelyard.provider"] for s in attempts] == ["primary", "primary", "backup"]  # type: ignore[index]
    assert [s.status.status_code for s in attempts] == [StatusCode.ERROR, StatusCode.ERROR, StatusCode.UNSET]
    assert attempts[0].attributes["error.type"] == row_error_kind(gateway)  # type: ignore[index]
    assert attempts[0].start_time == request.start_time
    assert attempts[2].end_time <= request.end_time  # type: ignore[operator]

    # Every upstream call carried the client's trace, with the request's span as its parent.
    received = states["primary"].received + states["backup"].received
    assert len(received) == 3
    expected = f"00-{CLIENT_TRACE}-{request.context.span_id:016x}-01"
    assert [r.headers.get("traceparent") for r in received] == [expected] * 3

    # The spans go through OTLP's own encoder as they are (built finished, not checked attribute by
    # attribute by a live SDK span): what a collector receives carries the same names and links.
    encoded = encode_spans(spans)
    (scope,) = encoded.resource_spans[0].scope_spans
    assert sorted(s.name for s in scope.spans) == sorted(s.name for s in spans)
    assert {s.trace_id.hex() for s in scope.spans} == {CLIENT_TRACE}

    # The ledger row: template, tool calls and the trace id.
    assert (row["template_id"], row["template_version"], row["tool_calls"], row["trace_id"]) == (
        "triage-prompt",
        "v7",
        1,
        CLIENT_TRACE,
    )


def row_error_kind(gateway: Any) -> str:
    """The error kind the ledger gave the primary's first failed attempt."""
    (first,) = [r for r in gateway.rows("attempts") if r["attempt"] == 1]
    return str(first["error_kind"])


async def test_unsampled_requests_export_nothing_but_keep_their_trace_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter: dict[str, Any]
) -> None:
    plans = {"up": flaky.FaultPlan()}
    config = {"models": models(m="up"), "tracing": _traced(sample_ratio=0.0)}
    async with fleet(tmp_path, monkeypatch, plans, **config) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            await chat(session, gateway.url, "m")
            # A client's unsampled trace is followed too (parent-based), and still propagated.
            await chat(
                session, gateway.url, "m", headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"}
            )
        rows = await gateway.wait_rows(2)
    assert exporter["exporter"].get_finished_spans() == ()
    trace_ids = [r["trace_id"] for r in rows]
    assert len(trace_ids[0]) == 32 and trace_ids[0] != CLIENT_TRACE and trace_ids[1] == CLIENT_TRACE
    sent = [r.headers.get("traceparent") for r in states["up"].received]
    assert sent[0].startswith(f"00-{trace_ids[0]}-") and sent[1].startswith(f"00-{CLIENT_TRACE}-")
    # Not sampled (flag bit 0 clear; the SDK may set W3C level 2's "random" bit 0x02 on its new traces).
    assert [int(header.rsplit("-", 1)[1], 16) & 1 for header in sent] == [0, 0]


async def test_tracing_off_sends_no_traceparent_and_records_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exporter: dict[str, Any]
) -> None:
    plans = {"up": flaky.FaultPlan()}
    async with fleet(tmp_path, monkeypatch, plans, models=models(m="up")) as (gateway, states):
        async with aiohttp.ClientSession() as session:
            body_template = {"metadata": {"template": "summarise"}}
            await chat(
                session,
                gateway.url,
                "m",
                headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"},
                **body_template,
            )
        (row,) = await gateway.wait_rows(1)
    assert "endpoint" not in exporter, "no exporter is built when tracing is off"
    assert states["up"].received[0].headers.get("traceparent") is None
    assert (row["trace_id"], row["template_id"], row["template_version"], row["tool_calls"]) == (
        None,
        "summarise",
        None,
        0,
    )


@pytest.mark.parametrize(
    ("template", "expected"),
    [("triage", ("triage", None)), ("team/triage.v2@2026-11-01+3", ("team/triage.v2", "2026-11-01+3"))],
)
def test_template_names(template: str, expected: tuple[str, str | None]) -> None:
    assert read_template(template) == expected


@pytest.mark.parametrize("template", ["", "a b@v1", "name@", "@v1", "a@b@c", "x" * 129, 7, ["t"]])
def test_a_malformed_template_is_refused_saying_what_is_expected(template: object) -> None:
    with pytest.raises(InvalidRequest, match="name@version") as refused:
        read_template(template)
    assert refused.value.code == "invalid_template"


async def test_a_malformed_template_header_gets_a_400_and_goes_nowhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plans = {"up": flaky.FaultPlan()}
    async with (
        fleet(tmp_path, monkeypatch, plans, models=models(m="up")) as (gateway, states),
        aiohttp.ClientSession() as session,
    ):
        status, raw = await chat(session, gateway.url, "m", headers={"X-Modelyard-Template": "a b"})
        (row,) = await gateway.wait_rows(1)
    assert status == 400 and b"invalid_template" in raw
    assert states["up"].received == [] and row["error_kind"] == "invalid_template"

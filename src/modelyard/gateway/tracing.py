"""OpenTelemetry traces of the gateway's requests: one span per request and one child span per upstream
attempt, with the GenAI semantic conventions' attributes, exported by OTLP (issue 18).

Off the hot path by construction. With ``tracing.enabled: false`` (the default) no :class:`Tracing` exists
and the request path pays one ``is None`` test. With it on, a request costs one span started at admission
(so that its trace id, the client's when it sent a ``traceparent``, is known before anything goes
upstream) and, only when the sampler keeps it, its attributes and attempt spans *recorded* from the
finished ledger row at the end: nothing wraps the awaits of the request path. The attempt spans' start
times are therefore laid end to end from the request's start (the ledger keeps each attempt's duration,
not its start); their durations are exact.

Every upstream call of a traced request carries a W3C ``traceparent`` naming the request's span as its
parent (``providers.http.UPSTREAM_TRACEPARENT``), so a traced upstream (vLLM, a provider's own tracing)
joins the client's trace; the attempt spans are its siblings, built afterwards.

Sampling is parent-based: a client's ``traceparent`` decides (sampled or not), and new traces are kept
at ``sample_ratio``, by the rule of the SDK's ``TraceIdRatioBased`` on a trace id drawn here. The decision
is made *before* the SDK is touched: asking the SDK to start a span only for it to be dropped costs
~90k instructions per request (measured), an unsampled request here costs one random draw and a string
format. A request not sampled still has a trace id (in its ledger row) and still propagates it upstream,
flagged unsampled.
"""

from __future__ import annotations

from collections.abc import Sequence
from random import getrandbits
from typing import TYPE_CHECKING

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from modelyard.config.tracing import TracingConfig
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.providers.http import UPSTREAM_TRACEPARENT

if TYPE_CHECKING:
    from modelyard.gateway.metering import RequestContext

#: ``gen_ai.operation.name`` of each gateway endpoint (GenAI semantic conventions' well-known values).
OPERATIONS = {
    "chat": "chat",
    "messages": "chat",
    "responses": "chat",
    "completions": "text_completion",
    "embeddings": "embeddings",
}
#: ``gen_ai.provider.name`` of each provider kind; an OpenAI-compatible server keeps its configured name.
PROVIDER_NAMES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}

_NS = 1_000_000_000
_PICO_PER_USD = 1e12
_LOW_64 = (1 << 64) - 1


def parse_traceparent(value: str | None) -> SpanContext | None:
    """The remote parent a W3C ``traceparent`` names; None when absent or malformed (a malformed one is
    ignored, as the W3C recommendation says, and a new trace starts)."""
    if value is None:
        return None
    parts = value.strip().split("-")
    if len(parts) < 4 or len(parts[0]) != 2 or parts[0] == "ff":
        return None
    version, trace_hex, span_hex, flags_hex = parts[:4]
    if (
        len(trace_hex) != 32
        or len(span_hex) != 16
        or len(flags_hex) != 2
        or (version == "00" and len(parts) > 4)
    ):
        return None
    try:
        trace_id, span_id, flags = int(trace_hex, 16), int(span_hex, 16), int(flags_hex, 16)
    except ValueError:
        return None
    if trace_id == 0 or span_id == 0:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags & 1))


class Tracing:
    """The gateway's tracer, built at start-up when ``tracing.enabled``; ``exporter`` replaces OTLP (tests
    pass the SDK's in-memory exporter)."""

    def __init__(
        self,
        config: TracingConfig,
        exporter: SpanExporter | None = None,
        processor: SpanProcessor | None = None,
    ) -> None:
        #: New traces whose id's low 64 bits fall under this bound are kept (``TraceIdRatioBased``'s rule).
        self.bound = TraceIdRatioBased.get_bound_for_rate(config.sample_ratio)
        # The SDK sees only the requests already kept (see :meth:`start`): it follows their decision.
        self.provider = TracerProvider(
            sampler=ParentBased(ALWAYS_ON),
            resource=Resource.create({"service.name": config.service_name}),
        )
        # Batched: export happens on the SDK's own thread, never on the event loop.
        self.provider.add_span_processor(
            processor or BatchSpanProcessor(exporter or OTLPSpanExporter(endpoint=config.endpoint))
        )
        self.tracer = self.provider.get_tracer("modelyard")

    def start(self, ctx: RequestContext, traceparent: str | None) -> None:
        """Decide whether the request is sampled; if so open its span (at the request's arrival time).
        Either way, every upstream call of this request carries a ``traceparent`` of its trace. The
        span's name and attributes come at :meth:`finish`."""
        remote = parse_traceparent(traceparent) if traceparent is not None else None
        if remote is not None:
            trace_id, sampled = remote.trace_id, remote.trace_flags.sampled
        else:
            trace_id = getrandbits(128) or 1
            sampled = (trace_id & _LOW_64) < self.bound
        if not sampled:
            ctx.trace_id = f"{trace_id:032x}"
            span_id = getrandbits(64) or 1
            UPSTREAM_TRACEPARENT.set(b"traceparent: 00-%032x-%016x-00\r\n" % (trace_id, span_id))
            return
        parent = trace.set_span_in_context(NonRecordingSpan(remote)) if remote is not None else None
        span = self.tracer.start_span(
            ctx.endpoint, context=parent, kind=SpanKind.SERVER, start_time=int(ctx.ts * _NS)
        )
        sc = span.get_span_context()
        ctx.span, ctx.trace_id = span, f"{sc.trace_id:032x}"
        UPSTREAM_TRACEPARENT.set(
            b"traceparent: 00-%032x-%016x-%02x\r\n" % (sc.trace_id, sc.span_id, int(sc.trace_flags))
        )

    def finish(self, ctx: RequestContext, row: RequestRow, attempts: Sequence[AttemptRow]) -> None:
        """Close a sampled request's span from its ledger row; its attempts become child spans."""
        span = ctx.span
        if span is None:
            return
        ctx.span = None
        end = int((row.ts + row.latency_ms / 1000.0) * _NS)
        operation = OPERATIONS.get(row.endpoint, row.endpoint)
        span.update_name(f"{operation} {row.model}")
        span.set_attributes(request_attributes(operation, row))
        if row.error_kind is not None:
            span.set_status(Status(StatusCode.ERROR, row.error_kind))
        parent = trace.set_span_in_context(span)
        start = int(row.ts * _NS)
        for attempt in attempts:
            took = int(attempt.latency_ms * 1_000_000)
            child = self.tracer.start_span(
                f"{operation} {attempt.upstream_model}",
                context=parent,
                kind=SpanKind.CLIENT,
                start_time=start,
                attributes=attempt_attributes(operation, attempt),
            )
            if attempt.error_kind is not None:
                child.set_status(Status(StatusCode.ERROR, attempt.error_kind))
            child.end(end_time=start + took)
            start += took
        span.end(end_time=end)

    def shutdown(self) -> None:
        """Export what is buffered, then stop (at gateway shutdown)."""
        self.provider.shutdown()


def request_attributes(operation: str, row: RequestRow) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.request.model": row.model,
        "http.response.status_code": row.status,
        "modelyard.request_id": row.request_id,
        "modelyard.attempts": row.attempts,
        "modelyard.cache_hit": row.cache_hit,
        "modelyard.priced": row.priced,
        "gen_ai.usage.input_tokens": row.input_tokens,
        "gen_ai.usage.output_tokens": row.output_tokens,
    }
    optional: dict[str, AttributeValue | None] = {
        "gen_ai.provider.name": _provider_name(row.provider_kind, row.provider),
        "gen_ai.response.model": row.upstream_model,
        "error.type": row.error_kind,
        "modelyard.workload": row.workload,
        "modelyard.data_class": row.data_class,
        "modelyard.tenant": row.tenant,
        "modelyard.route": row.route,
        "modelyard.template.id": row.template_id,
        "modelyard.template.version": row.template_version,
        "modelyard.tool_calls": row.tool_calls,
        "modelyard.cost_usd": row.cost_pico_usd / _PICO_PER_USD if row.cost_pico_usd is not None else None,
    }
    if row.finish_reason is not None:
        attributes["gen_ai.response.finish_reasons"] = [row.finish_reason]
    attributes.update({k: v for k, v in optional.items() if v is not None})
    return attributes


def attempt_attributes(operation: str, attempt: AttemptRow) -> dict[str, AttributeValue]:
    attributes: dict[str, AttributeValue] = {
        "gen_ai.operation.name": operation,
        "gen_ai.provider.name": _provider_name(attempt.provider_kind, attempt.provider) or attempt.provider,
        "gen_ai.request.model": attempt.upstream_model,
        "gen_ai.usage.input_tokens": attempt.input_tokens,
        "gen_ai.usage.output_tokens": attempt.output_tokens,
        "http.response.status_code": attempt.status,
        "modelyard.attempt": attempt.attempt,
        "modelyard.provider": attempt.provider,
        "modelyard.purpose": attempt.purpose,
    }
    if attempt.error_kind is not None:
        attributes["error.type"] = attempt.error_kind
    if attempt.cost_pico_usd is not None:
        attributes["modelyard.cost_usd"] = attempt.cost_pico_usd / _PICO_PER_USD
    return attributes


def _provider_name(kind: str | None, provider: str | None) -> str | None:
    if kind is None:
        return None
    return PROVIDER_NAMES.get(kind, provider)

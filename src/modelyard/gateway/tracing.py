"""OpenTelemetry traces of the gateway's requests: one span per request and one child span per upstream
attempt, with the GenAI semantic conventions' attributes, exported by OTLP (issue 18).

Off the hot path by construction. With ``tracing.enabled: false`` (the default) no :class:`Tracing` exists
and the request path pays one ``is None`` test. With it on, admission draws the request's trace and span
ids (the trace id is the client's when it sent a ``traceparent``), so they are known before anything goes
upstream; only when the request is sampled are its span and attempt spans built, *finished*, from the
ledger row at the end: nothing wraps the awaits of the request path. The attempt spans' start times are
therefore laid end to end from the request's start (the ledger keeps each attempt's duration, not its
start); their durations are exact.

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

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import AttributeValue

from modelyard.config.tracing import TracingConfig
from modelyard.gateway.metering import RequestContext, SampledSpan
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.providers.http import UPSTREAM_TRACEPARENT

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
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_UNSET = Status(StatusCode.UNSET)
_SCOPE = InstrumentationScope("modelyard")


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
        self.resource = Resource.create({"service.name": config.service_name})
        # Batched: export happens on the SDK's own thread, never on the event loop.
        self.processor = processor or BatchSpanProcessor(
            exporter or OTLPSpanExporter(endpoint=config.endpoint)
        )

    def start(self, ctx: RequestContext, traceparent: str | None) -> None:
        """Decide whether the request is sampled; if so note its span's ids (the span itself is built at
        :meth:`finish`). Either way, every upstream call of this request carries a ``traceparent`` of its
        trace."""
        remote = parse_traceparent(traceparent) if traceparent is not None else None
        if remote is not None:
            trace_id, sampled = remote.trace_id, remote.trace_flags.sampled
        else:
            trace_id = getrandbits(128) or 1
            sampled = (trace_id & _LOW_64) < self.bound
        span_id = getrandbits(64) or 1
        ctx.trace_id = f"{trace_id:032x}"
        UPSTREAM_TRACEPARENT.set(
            b"traceparent: 00-%032x-%016x-%s\r\n" % (trace_id, span_id, b"01" if sampled else b"00")
        )
        if sampled:
            ctx.span = SampledSpan(
                SpanContext(trace_id, span_id, is_remote=False, trace_flags=_SAMPLED), remote
            )

    def finish(self, ctx: RequestContext, row: RequestRow, attempts: Sequence[AttemptRow]) -> None:
        """Record a sampled request's span from its ledger row; its attempts become child spans. The spans
        are handed to the processor finished (``ReadableSpan``): the SDK's live ``Span`` would check each
        attribute as it is set, which cost ~1.4M instructions per sampled request (measured), for values
        built here from typed ledger columns."""
        sampled = ctx.span
        if sampled is None:
            return
        ctx.span = None
        operation = OPERATIONS.get(row.endpoint, row.endpoint)
        start = int(row.ts * _NS)
        for attempt in attempts:
            took = int(attempt.latency_ms * 1_000_000)
            context = SpanContext(
                sampled.context.trace_id, getrandbits(64) or 1, is_remote=False, trace_flags=_SAMPLED
            )
            self._emit(
                f"{operation} {attempt.upstream_model}",
                context,
                sampled.context,
                SpanKind.CLIENT,
                attempt_attributes(operation, attempt),
                attempt.error_kind,
                start,
                start + took,
            )
            start += took
        end = int((row.ts + row.latency_ms / 1000.0) * _NS)
        self._emit(
            f"{operation} {row.model}",
            sampled.context,
            sampled.parent,
            SpanKind.SERVER,
            request_attributes(operation, row),
            row.error_kind,
            int(row.ts * _NS),
            end,
        )

    def _emit(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, AttributeValue],
        error_kind: str | None,
        start: int,
        end: int,
    ) -> None:
        status = Status(StatusCode.ERROR, error_kind) if error_kind is not None else _UNSET
        span = ReadableSpan(
            name,
            context=context,
            parent=parent,
            resource=self.resource,
            attributes=attributes,
            kind=kind,
            status=status,
            start_time=start,
            end_time=end,
            instrumentation_scope=_SCOPE,
        )
        self.processor.on_end(span)

    def shutdown(self) -> None:
        """Export what is buffered, then stop (at gateway shutdown)."""
        self.processor.shutdown()


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
        attributes["gen_ai.response.finish_reasons"] = (row.finish_reason,)
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

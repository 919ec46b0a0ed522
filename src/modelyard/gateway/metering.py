"""Turn what a call produced into ledger rows: usage, cost, timings.

Cost is computed once here from the catalog price the target carries. A target without a price gives a
row with ``priced = False`` and a NULL cost, never $0. Usage the provider never reported (a stream the
client cancelled or the upstream cut) is estimated and flagged ``usage_estimated``.
"""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter

from modelyard.catalog.prices import to_pico
from modelyard.gateway.targets import Target, Workload
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.providers.base import JSON, StreamMeter, Usage, estimate_tokens, message_chars


@dataclass(slots=True)
class RequestContext:
    """What the HTTP layer knows about a request before the gateway handles it."""

    request_id: str
    #: Wall clock (for the ledger) and monotonic clock (for latencies) at arrival.
    ts: float
    t0: float
    endpoint: str
    tenant: str | None = None
    api_key_id: str | None = None


def cost_of(target: Target, usage: Usage | None) -> tuple[int | None, bool]:
    """``(cost in pico-USD, priced)``; unpriced models give ``(None, False)``."""
    if target.price is None or usage is None:
        return None, False
    return to_pico(target.price.cost(usage)), True


def stream_usage(meter: StreamMeter, body: JSON, *, completed: bool) -> Usage:
    """The usage of a stream: as the provider reported it when the stream completed; otherwise what the
    provider reported so far (Anthropic sends input tokens first) topped up with estimates, flagged."""
    reported = meter.usage
    if completed and reported is not None:
        return reported
    base = reported or Usage()
    return Usage(
        input_tokens=base.input_tokens or estimate_tokens(message_chars(body)),
        output_tokens=max(base.output_tokens, estimate_tokens(meter.output_chars)),
        cached_input_tokens=base.cached_input_tokens,
        cache_write_tokens=base.cache_write_tokens,
        cache_write_1h_tokens=base.cache_write_1h_tokens,
        reasoning_tokens=base.reasoning_tokens,
        estimated=True,
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


@dataclass(slots=True)
class Outcome:
    """Everything known when a request ends, from which both rows are built."""

    status: int
    error_kind: str | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    upstream_model: str | None = None
    upstream_seconds: float | None = None
    ttft_seconds: float | None = None
    upstream_ttft_seconds: float | None = None
    client_cancelled: bool = False
    prompt: str | None = None
    completion: str | None = None


def build_rows(
    ctx: RequestContext,
    workload: Workload,
    target: Target | None,
    model: str,
    streamed: bool,
    outcome: Outcome,
) -> tuple[RequestRow, list[AttemptRow]]:
    latency = perf_counter() - ctx.t0
    usage = outcome.usage
    cost, priced = cost_of(target, usage) if target is not None else (None, False)
    request = RequestRow(
        request_id=ctx.request_id,
        ts=ctx.ts,
        endpoint=ctx.endpoint,
        workload=workload.name,
        data_class=workload.data_class,
        tenant=ctx.tenant,
        api_key_id=ctx.api_key_id,
        model=model,
        provider=target.provider if target else None,
        provider_kind=target.provider_kind if target else None,
        upstream_model=outcome.upstream_model or (target.upstream_model if target else None),
        status=outcome.status,
        error_kind=outcome.error_kind,
        streamed=streamed,
        cost_pico_usd=cost,
        priced=priced,
        price_version=target.price_version if target and priced else None,
        latency_ms=_ms(latency),
        ttft_ms=_ms(outcome.ttft_seconds) if outcome.ttft_seconds is not None else None,
        upstream_latency_ms=_ms(outcome.upstream_seconds) if outcome.upstream_seconds is not None else None,
        overhead_ms=_ms(latency - outcome.upstream_seconds) if outcome.upstream_seconds is not None else None,
        attempts=1 if outcome.upstream_seconds is not None else 0,
        finish_reason=outcome.finish_reason,
        client_cancelled=outcome.client_cancelled,
        route=f"{target.provider}/{target.upstream_model}" if target else None,
        prompt=outcome.prompt if workload.log_content else None,
        completion=outcome.completion if workload.log_content else None,
    )
    if usage is not None:
        _copy_usage(request, usage)
    attempts: list[AttemptRow] = []
    if target is not None and outcome.upstream_seconds is not None:
        attempt = AttemptRow(
            request_id=ctx.request_id,
            attempt=1,
            ts=ctx.ts,
            provider=target.provider,
            provider_kind=target.provider_kind,
            upstream_model=request.upstream_model or target.upstream_model,
            status=outcome.status,
            error_kind=outcome.error_kind,
            latency_ms=_ms(outcome.upstream_seconds),
            ttft_ms=_ms(outcome.upstream_ttft_seconds) if outcome.upstream_ttft_seconds is not None else None,
            cost_pico_usd=cost,
            priced=priced,
        )
        if usage is not None:
            _copy_usage(attempt, usage)
        attempts.append(attempt)
    return request, attempts


def _copy_usage(row: RequestRow | AttemptRow, usage: Usage) -> None:
    row.input_tokens = usage.input_tokens
    row.output_tokens = usage.output_tokens
    row.cached_input_tokens = usage.cached_input_tokens
    row.cache_write_tokens = usage.cache_write_tokens
    row.reasoning_tokens = usage.reasoning_tokens
    row.usage_estimated = usage.estimated

"""Turn what a call produced into ledger rows: usage, cost, timings.

Cost is computed here from the catalog price the target carries. A target without a price gives rows
with ``priced = False`` and a NULL cost, never $0. Usage the provider never reported (a stream the client
cancelled or the upstream cut) is estimated and flagged ``usage_estimated``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, NamedTuple

from modelyard.gateway.targets import Target, Workload
from modelyard.ledger.schema import AttemptRow, RequestRow, Values
from modelyard.providers.base import JSON, StreamMeter, Usage, estimate_tokens, message_chars

if TYPE_CHECKING:
    from opentelemetry.trace import SpanContext

    from modelyard.gateway.budgeting import Hold


class SampledSpan(NamedTuple):
    """A sampled request's span before it is recorded (``gateway/tracing.py``): its ids, and the
    client's span when it sent a ``traceparent``."""

    context: SpanContext
    parent: SpanContext | None


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
    #: The budget reservation admission made (None: no governance, or not admitted that far); the
    #: recorder settles it once and clears it, so an ending recorded twice cannot settle twice.
    hold: Hold | None = None
    #: With a network budget store, the reservation admission left to be awaited off the event loop
    #: (``Gateway.chat`` and its siblings await it first; see ``gateway.budgeting.reserve_async``).
    reserving: Callable[[], Awaitable[None]] | None = None
    #: The prompt template the request named (``name@version``), split.
    template_id: str | None = None
    template_version: str | None = None
    #: With tracing on: a sampled request's span (recorded by the recorder) and its trace id (for the row).
    span: SampledSpan | None = None
    trace_id: str | None = None


def cost_of(target: Target, usage: Usage | None) -> tuple[int | None, bool]:
    """``(cost in pico-USD, priced)``; unpriced models give ``(None, False)``."""
    if target.price is None or usage is None:
        return None, False
    return target.price.cost_pico(usage), True


def stream_usage(meter: StreamMeter, body: JSON, *, completed: bool) -> Usage:
    """The usage of a stream: as the provider reported it when the stream completed; otherwise what the
    provider reported so far (Anthropic sends input tokens first) topped up with estimates, flagged."""
    reported = meter.usage
    if completed and reported is not None:
        return reported
    base = reported or Usage()
    return Usage(
        input_tokens=base.input_tokens or estimate_tokens(message_chars(body)),
        output_tokens=max(base.output_tokens, estimate_tokens(meter.text_chars())),
        cached_input_tokens=base.cached_input_tokens,
        cache_write_tokens=base.cache_write_tokens,
        cache_write_1h_tokens=base.cache_write_1h_tokens,
        reasoning_tokens=base.reasoning_tokens,
        estimated=True,
        search_units=base.search_units,
    )


def attempt_row(
    ctx: RequestContext,
    number: int,
    target: Target,
    *,
    status: int,
    error_kind: str | None,
    seconds: float,
    usage: Usage | None = None,
    ttft_seconds: float | None = None,
    purpose: str = "answer",
    upstream_model: str | None = None,
) -> AttemptRow:
    cost, priced = cost_of(target, usage)
    u = usage or _NO_USAGE
    # Positional, in ATTEMPT_COLUMNS order: keyword construction of a row costs several times more, and
    # this runs on every request (tests/test_metering_rows.py holds the order to the schema's).
    return AttemptRow(
        ctx.request_id,
        number,
        ctx.ts,
        target.provider,
        target.provider_kind,
        upstream_model or target.upstream_model,
        status,
        error_kind,
        seconds * 1000.0,
        ttft_seconds * 1000.0 if ttft_seconds is not None else None,
        u.input_tokens,
        u.output_tokens,
        u.cached_input_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        u.estimated,
        cost,
        priced,
        purpose,
        u.search_units,
    )


def tool_calls_in(body: JSON) -> int:
    """Tool calls in a chat answer: every choice's ``message.tool_calls``. (Searching the raw answer's
    bytes for the key first costs twice the walk: ``bytes.find`` of a 12-byte needle, valgrind.)"""
    count = 0
    for choice in body.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if isinstance(calls, list):
            count += len(calls)
    return count


#: The usage of a call that reported none: every count zero, not estimated.
_NO_USAGE = Usage()


@dataclass(slots=True)
class Outcome:
    """Everything known when a request ends, from which its row is built."""

    status: int
    error_kind: str | None = None
    #: The target that answered (or was tried last); None when refused before any target.
    target: Target | None = None
    usage: Usage | None = None
    finish_reason: str | None = None
    upstream_model: str | None = None
    attempts: list[AttemptRow] = field(default_factory=list)
    #: Time spent waiting on upstreams, and in back-off between attempts.
    upstream_seconds: float = 0.0
    backoff_seconds: float = 0.0
    ttft_seconds: float | None = None
    client_cancelled: bool = False
    route: str | None = None
    cache_hit: bool = False
    cost_saved_pico_usd: int | None = None
    shadow_of: str | None = None
    prompt: str | None = None
    completion: str | None = None
    #: Tool calls in a whole answer; None where not counted.
    tool_calls: int | None = None

    def answered(
        self,
        ctx: RequestContext,
        target: Target,
        usage: Usage | None,
        seconds: float,
        upstream_model: str | None = None,
    ) -> None:
        """An attempt that answered: its row, and its time spent upstream. (:func:`attempt_row`'s work,
        written out for this case: it runs for every answered request.)"""
        self.upstream_seconds += seconds
        attempts = self.attempts
        price = target.price
        u = usage or _NO_USAGE
        cost = price.cost_pico(u) if price is not None and usage is not None else None
        attempts.append(
            AttemptRow(
                ctx.request_id,
                len(attempts) + 1,
                ctx.ts,
                target.provider,
                target.provider_kind,
                upstream_model or target.upstream_model,
                200,
                None,
                seconds * 1000.0,
                None,
                u.input_tokens,
                u.output_tokens,
                u.cached_input_tokens,
                u.cache_write_tokens,
                u.reasoning_tokens,
                u.estimated,
                cost,
                cost is not None,
                "answer",
                u.search_units,
            )
        )


class RowFacts(NamedTuple):
    """What a request's row says about its admission, decided once: for answers and refusals alike."""

    workload: Workload
    #: The class the request was handled under (workload's, tightened by key or header).
    data_class: str | None
    #: The class, where it came from, what it allows, and what redaction found.
    policy: str | None
    #: The route's public name (the name the client asked for, when no route was decided).
    model: str
    streamed: bool


def build_row(ctx: RequestContext, facts: RowFacts, outcome: Outcome) -> RequestRow:
    """The request's row (see :func:`request_values`)."""
    return RequestRow(*request_values(ctx, facts, outcome))


def request_values(ctx: RequestContext, facts: RowFacts, outcome: Outcome) -> Values:
    """The request's row as its values in ``REQUEST_COLUMNS`` order: what the spool line holds and the
    metrics read, without a 44-column row object built and taken apart again. Its cost is the sum of
    every attempt's cost (a failed attempt that streamed tokens before breaking was billed too); unpriced
    if any attempt billed tokens without a price."""
    latency = perf_counter() - ctx.t0
    # Nothing billed (refused, failed before any token, served from the cache) costs exactly $0; tokens
    # from a model without a price make the whole request unpriced rather than understated. One loop, not
    # comprehensions and generators: each of those is a frame of its own, on every request.
    tried = cost = 0
    priced = True
    for a in outcome.attempts:
        if a.purpose == "shadow":
            continue
        tried += 1
        if a.input_tokens or a.output_tokens or a.search_units:
            if a.priced:
                cost += a.cost_pico_usd or 0
            else:
                priced = False
    target = outcome.target
    if target is None:
        provider = provider_kind = price_version = None
        upstream_model = outcome.upstream_model or None
    else:
        provider, provider_kind = target.provider, target.provider_kind
        upstream_model = outcome.upstream_model or target.upstream_model
        price_version = target.price_version if priced and not outcome.cache_hit else None
    waited = outcome.upstream_seconds + outcome.backoff_seconds
    workload = facts.workload
    usage = outcome.usage or _NO_USAGE
    answered = tried > 0
    # In REQUEST_COLUMNS order (see attempt_row; tests/test_metering_rows.py holds the order).
    return (
        ctx.request_id,
        ctx.ts,
        ctx.endpoint,
        workload.name,
        facts.data_class,
        ctx.tenant,
        ctx.api_key_id,
        facts.model,
        provider,
        provider_kind,
        upstream_model,
        outcome.status,
        outcome.error_kind,
        facts.streamed,
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
        usage.cache_write_tokens,
        usage.reasoning_tokens,
        usage.estimated,
        cost if priced else None,
        priced,
        price_version,
        latency * 1000.0,
        outcome.ttft_seconds * 1000.0 if outcome.ttft_seconds is not None else None,
        outcome.upstream_seconds * 1000.0 if answered else None,
        (latency - waited) * 1000.0 if answered else None,
        tried,
        tried - 1 if tried else 0,
        outcome.finish_reason,
        outcome.client_cancelled,
        outcome.route,
        outcome.prompt if workload.log_content else None,
        outcome.completion if workload.log_content else None,
        facts.policy,
        outcome.cache_hit,
        outcome.cost_saved_pico_usd,
        outcome.shadow_of,
        # A mirror to a candidate is not demand: readers (ledger summary, decide) tell it apart by purpose.
        "shadow" if outcome.shadow_of else "answer",
        None,  # eval_run_id: only eval runs' rows have one
        ctx.template_id,
        ctx.template_version,
        outcome.tool_calls,
        ctx.trace_id,
        usage.search_units,
    )

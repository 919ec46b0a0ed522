"""Calls made beside the client's answer: a cascade's judge, and a shadow route's mirrored request.

Each is one plain upstream call (no retries: neither may delay or change the client's answer beyond
what its route asks) recorded as an attempt row with its purpose, so what they cost is never hidden.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from time import perf_counter

import orjson

from modelyard.config.routing import ValidatorConfig
from modelyard.errors import UpstreamError
from modelyard.gateway.metering import Outcome, RequestContext, attempt_row
from modelyard.gateway.targets import Target
from modelyard.ledger.schema import AttemptRow
from modelyard.providers.base import JSON, ChatCall, ChatResult
from modelyard.routing.validators import answer_text, judge_prompt, judge_verdict


async def call_once(
    ctx: RequestContext, target: Target, body: JSON, number: int, purpose: str
) -> tuple[ChatResult | None, AttemptRow, UpstreamError | None]:
    """One non-streaming call and its attempt row (status and usage as it went)."""
    started = perf_counter()
    try:
        result = await target.adapter.complete(ChatCall(body=body, upstream_model=target.upstream_model))
    except UpstreamError as error:
        row = attempt_row(
            ctx,
            number,
            target,
            status=error.status,
            error_kind=error.kind,
            seconds=perf_counter() - started,
            purpose=purpose,
        )
        return None, row, error
    row = attempt_row(
        ctx,
        number,
        target,
        status=200,
        error_kind=None,
        seconds=perf_counter() - started,
        usage=result.usage,
        purpose=purpose,
    )
    return result, row, None


async def judge(
    ctx: RequestContext,
    targets: Mapping[str, Target],
    validators: Sequence[ValidatorConfig],
    body: JSON,
    text: str | None,
    outcome: Outcome,
) -> str | None:
    """Run the judge validators on an answer: the reason it failed, or None when every judge says PASS.
    A judge that cannot be reached fails the answer (the cascade escalates rather than guess)."""
    for validator in validators:
        if validator.kind != "judge" or validator.model is None:
            continue
        question = orjson.dumps(body.get("messages")).decode()
        prompt = judge_prompt(validator.rubric or "", question, text or "")
        number = len(outcome.attempts) + 1
        verdict, row, error = await call_once(ctx, targets[validator.model], prompt, number, "judge")
        outcome.attempts.append(row)
        if error is not None or verdict is None:
            return f"judge {validator.model} failed ({error.kind if error else 'no answer'})"
        if not judge_verdict(answer_text(verdict.body)):
            return f"judge {validator.model}: FAIL"
    return None


async def mirror(
    ctx: RequestContext, target: Target, body: JSON, outcome: Outcome, log_content: bool
) -> RequestContext:
    """Send the request to a shadow target; fill ``outcome`` for the shadow's own row and return the
    context that row is recorded under (its id is the original's with ``-shadow``)."""
    shadow_ctx = RequestContext(
        request_id=ctx.request_id + "-shadow",
        ts=ctx.ts,
        t0=perf_counter(),
        endpoint=ctx.endpoint,
        tenant=ctx.tenant,
        api_key_id=ctx.api_key_id,
    )
    outcome.shadow_of, outcome.target = ctx.request_id, target
    outcome.route = f"shadow of {ctx.request_id}"
    mirrored = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    result, row, error = await call_once(shadow_ctx, target, mirrored, 1, "shadow")
    outcome.attempts.append(row)
    outcome.upstream_seconds = row.latency_ms / 1000.0
    if error is not None:
        outcome.status, outcome.error_kind = error.status, error.kind
    elif result is not None:
        outcome.usage, outcome.finish_reason = result.usage, result.finish_reason
        if log_content:
            outcome.completion = orjson.dumps(result.body.get("choices")).decode()
    return shadow_ctx

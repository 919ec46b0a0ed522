"""One model call through the gateway's own adapters, measured the way the gateway measures it.

The tokens come from the adapter's normalised :class:`~modelyard.providers.base.Usage`, the cost from the
gateway's own cost function (:func:`~modelyard.gateway.metering.cost_of`: the same catalog entry, the same
pico-dollars the ledger stores; ``None`` when the model is unpriced, never $0), and the latency is the
upstream time around ``adapter.complete``, as the ledger's ``upstream_latency_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from time import perf_counter
from typing import Any, Literal, NamedTuple

import orjson

from modelyard.errors import UpstreamError
from modelyard.gateway.metering import cost_of
from modelyard.gateway.targets import Target
from modelyard.ledger.summary import pico_to_usd
from modelyard.providers.base import JSON, ChatCall, Usage


class CallTag(NamedTuple):
    """What a call is for, as the ledger records it: a candidate's answer (``eval``) or a grading
    (``judge``), and the case (and its workload) it was made for."""

    purpose: Literal["eval", "judge"] = "eval"
    workload: str | None = None
    case_id: str | None = None


CANDIDATE = CallTag()


@dataclass(frozen=True, slots=True)
class CallResult:
    """What a candidate answered (or why it did not), with its tokens, cost and latency."""

    output: str
    input_tokens: int
    output_tokens: int
    #: USD; None when the model has no price in the catalog.
    cost: Decimal | None
    latency_ms: float
    #: Set when the call failed: the error kind and message. Failed calls score 0 and are not cached.
    error: str | None = None
    #: The tokens as the provider reported them, for the ledger; None for answers read from the cache.
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class ModelParams:
    """Sampling parameters sent with every case; part of the cache key so a change re-runs the case."""

    temperature: float | None = 0.0
    max_tokens: int | None = None
    seed: int | None = 0

    def apply(self, body: JSON) -> JSON:
        for key in ("temperature", "max_tokens", "seed"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        return body

    def key(self) -> str:
        return f"t={self.temperature};max={self.max_tokens};seed={self.seed}"


def answer_text(body: JSON) -> str:
    """The assistant's text in an OpenAI ``chat.completion``; tool calls are rendered as their JSON."""
    choices = body.get("choices") or ()
    if not choices:
        return ""
    message: dict[str, Any] = choices[0].get("message") or {}
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    calls = message.get("tool_calls")
    if calls:
        return orjson.dumps(calls).decode()
    return ""


async def complete(target: Target, messages: list[dict[str, Any]], params: ModelParams) -> CallResult:
    """Ask ``target`` to answer ``messages`` once; an upstream failure raises :class:`UpstreamError`."""
    body = params.apply({"model": target.public_model, "messages": messages})
    started = perf_counter()
    result = await target.adapter.complete(ChatCall(body=body, upstream_model=target.upstream_model))
    elapsed = (perf_counter() - started) * 1000
    usage = result.usage
    pico, priced = cost_of(target, usage)
    return CallResult(
        output=answer_text(result.body),
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        # From the ledger's pico-dollars, so the eval record and the ledger agree to the last digit.
        cost=pico_to_usd(pico) if priced and pico is not None else None,
        latency_ms=elapsed,
        usage=usage,
    )


async def call_target(
    target: Target, messages: list[dict[str, Any]], params: ModelParams, tag: CallTag = CANDIDATE
) -> CallResult:
    """One attempt, no retry, not recorded (``tag`` is for callers that record: the run's dispatcher);
    an upstream failure is returned as a failed :class:`CallResult`."""
    started = perf_counter()
    try:
        return await complete(target, messages, params)
    except UpstreamError as error:
        return failed(error, (perf_counter() - started) * 1000)


def failed(error: UpstreamError, elapsed_ms: float, attempts: int = 1) -> CallResult:
    """The result of a call that got no answer: scores 0, is not cached, says why."""
    tried = f" (after {attempts} attempts)" if attempts > 1 else ""
    return CallResult("", 0, 0, None, elapsed_ms, error=f"{error.kind}: {error.message}{tried}")

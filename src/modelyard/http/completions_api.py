"""Legacy ``POST /v1/completions``, forwarded to OpenAI and OpenAI-compatible servers as it is.

Other API families have no plain-prompt completion, so their models are refused (naming the endpoint to
use instead). Admission sees the prompt as user messages (:func:`admission_body`), so data-class policy,
PII redaction, budgets and the ledger treat it like chat; what goes upstream is the client's body with the
upstream model and the (redacted) prompt (:func:`endpoint`). Streams always ask for usage, so metering is
exact: the client sees that last usage-only chunk too (``choices: []``), as OpenAI sends it. The output is
bounded as chat's is (issue 15): a request without ``max_tokens`` is sent the bound its reservation held.
"""

from __future__ import annotations

from typing import Annotated, Any, NotRequired

import orjson
from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict

from modelyard.errors import InvalidRequest, UpstreamError, upstream_error_for_status
from modelyard.gateway.passthrough import Endpoint
from modelyard.gateway.targets import Target
from modelyard.providers.base import JSON, StreamMeter, Usage
from modelyard.providers.openai import finish_reason_of, usage_from


@with_config(ConfigDict(extra="allow"))
class CompletionRequest(TypedDict):
    """The body of ``POST /v1/completions`` as the gateway accepts it (unknown members pass)."""

    model: NotRequired[str]
    prompt: str | Annotated[list[str], Field(min_length=1)]
    max_tokens: NotRequired[Annotated[int, Field(ge=1)] | None]
    temperature: NotRequired[Annotated[float, Field(ge=0, le=2)] | None]
    top_p: NotRequired[Annotated[float, Field(ge=0, le=1)] | None]
    n: NotRequired[Annotated[int, Field(ge=1, le=1)] | None]
    # best_of > 1 has the server write (and bill) that many answers and return one: refused like n > 1,
    # since the reservation holds one answer per prompt.
    best_of: NotRequired[Annotated[int, Field(ge=1, le=1)] | None]
    stream: NotRequired[bool | None]
    stop: NotRequired[str | list[str] | None]
    suffix: NotRequired[str | None]
    seed: NotRequired[int | None]
    user: NotRequired[str]
    metadata: NotRequired[dict[str, Any] | None]


#: Provider kinds whose servers have a legacy completions endpoint.
KINDS = frozenset({"openai", "openai_compatible"})


def admission_body(body: JSON) -> JSON:
    """What admission sees: the prompt(s) as user messages, and what budgets and routing read."""
    prompts = body["prompt"] if isinstance(body["prompt"], list) else [body["prompt"]]
    chat: JSON = {"messages": [{"role": "user", "content": prompt} for prompt in prompts]}
    if len(prompts) > 1:  # one answer per prompt, each up to the output bound: budgets hold them all
        chat["n"] = len(prompts)
    for name in ("model", "max_tokens", "metadata", "user"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("stream") is True:
        chat["stream"], chat["stream_options"] = True, {"include_usage": True}
    return chat


def unservable(targets: tuple[Target, ...] | list[Target], model: str) -> InvalidRequest | None:
    """The refusal of a route with a target that has no completions endpoint; None when all have one."""
    for target in targets:
        if target.provider_kind not in KINDS:
            return InvalidRequest(
                f"model {model!r} is served by {target.provider_kind} provider '{target.provider}', which has no"
                " legacy completions endpoint (only openai and openai_compatible do); use /v1/chat/completions",
                code="unsupported_endpoint",
                param="model",
            )
    return None


def endpoint(original: JSON, admitted: JSON) -> Endpoint:
    """How to forward: the client's body with the upstream model and the prompt admission let through."""
    redacted = [m["content"] for m in admitted["messages"]]
    prompt: str | list[str] = redacted if isinstance(original["prompt"], list) else redacted[0]
    stream = original.get("stream") is True

    def body(target: Target) -> JSON:
        upstream = {**original, "model": target.upstream_model, "prompt": prompt}
        upstream.pop("metadata", None)  # gateway routing data
        if stream:
            upstream["stream_options"] = {"include_usage": True}
        return upstream

    # The legacy endpoint has one name for the bound, ``max_tokens``, at OpenAI and on every self-hosted
    # server: a request that set none is sent the one its reservation assumed (budgeting.send_output_bound).
    return Endpoint("/completions", body, _answer, _event, _cut, output_limit="max_tokens")


def _answer(body: Any) -> tuple[Usage | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    return usage_from(body.get("usage")), finish_reason_of(body)


def _event(chunk: JSON, meter: StreamMeter) -> bool:
    if "error" in chunk:
        error = chunk["error"] if isinstance(chunk["error"], dict) else {}
        raise upstream_error_for_status("upstream", 500, str(error.get("message") or "error in stream"))
    if chunk.get("usage"):
        meter.usage = usage_from(chunk["usage"])
    if meter.upstream_model is None and isinstance(chunk.get("model"), str):
        meter.upstream_model = chunk["model"]
    for choice in chunk.get("choices") or ():
        meter.output_chars += len(choice.get("text") or "")
        if choice.get("finish_reason"):
            meter.finish_reason = choice["finish_reason"]
    return False  # the stream ends with [DONE]


def _cut(error: UpstreamError) -> bytes:
    return b"data: " + orjson.dumps(error.to_body()) + b"\n\n"

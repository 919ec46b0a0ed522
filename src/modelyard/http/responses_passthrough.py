"""``POST /v1/responses`` forwarded to OpenAI as it is, when every target of the plan is OpenAI itself.

Translation through Chat Completions (:mod:`modelyard.http.responses_api`) serves every provider kind but
loses what only the Responses API has (reasoning items, ``include``, newer members the gateway does not
know yet). OpenAI serves the Responses API natively, so its targets get the client's body with the
upstream model swapped in. Two things change on the way: ``store`` is false (the gateway continues no
stored response, so OpenAI need not keep the data) and ``metadata.workload`` (the gateway's routing
data) is removed. When PII redaction changed the request, the translated path is taken instead: the
redacted text lives in the chat body admission saw.
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.errors import UpstreamError, UpstreamStreamCut
from modelyard.gateway.admission import RequestPlan
from modelyard.gateway.passthrough import Endpoint, forwards
from modelyard.gateway.targets import Target
from modelyard.providers.base import JSON, StreamMeter, Usage

#: A stream's last event, carrying the whole response and its usage.
_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def passes_through(plan: RequestPlan, admitted: JSON) -> bool:
    """Every target is OpenAI's own API, redaction left the request as it came, and no validator
    of the route must read the answer first."""
    if plan.redaction.body is not admitted or plan.redaction.vault is not None:
        return False
    if plan.route.validators:  # a cascade must read the answer to accept it: the translated path does
        return False
    return all(t.provider_kind == "openai" and forwards(t) for t in plan.attempts.candidates)


def endpoint(original: JSON) -> Endpoint:
    def body(target: Target) -> JSON:
        upstream = {**original, "model": target.upstream_model, "store": False}
        metadata = {k: v for k, v in (original.get("metadata") or {}).items() if k != "workload"}
        if metadata:
            upstream["metadata"] = metadata
        else:
            upstream.pop("metadata", None)
        return upstream

    # A request without max_output_tokens gets the bound its budget reservation assumed (budgeting.py).
    return Endpoint("/responses", body, _answer, _event, _cut, output_limit="max_output_tokens")


def usage_of(raw: Any) -> Usage | None:
    """The Responses ``usage`` object → :class:`Usage` (cached and reasoning tokens are parts, as ours)."""
    if not isinstance(raw, dict):
        return None
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_input_tokens=int((raw.get("input_tokens_details") or {}).get("cached_tokens") or 0),
        reasoning_tokens=int((raw.get("output_tokens_details") or {}).get("reasoning_tokens") or 0),
    )


def _finish(response: JSON) -> str | None:
    status = response.get("status")
    if status == "incomplete":
        return "length"
    if status == "completed":
        calls = any(item.get("type") == "function_call" for item in response.get("output") or ())
        return "tool_calls" if calls else "stop"
    return str(status) if status else None


def _answer(body: Any) -> tuple[Usage | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    return usage_of(body.get("usage")), _finish(body)


def _event(event: JSON, meter: StreamMeter) -> bool:
    kind = event.get("type")
    if kind == "response.output_text.delta" or kind == "response.function_call_arguments.delta":
        meter.output_chars += len(event.get("delta") or "")
        return False
    if kind == "error":
        raise UpstreamStreamCut(f"OpenAI stream error: {event.get('message')}", provider="openai")
    response = event.get("response")
    if isinstance(response, dict):
        if meter.upstream_model is None and isinstance(response.get("model"), str):
            meter.upstream_model = response["model"]
        if kind in _FINAL:
            meter.usage = usage_of(response.get("usage"))
            meter.finish_reason = _finish(response)
            return True
    return False


def _cut(error: UpstreamError) -> bytes:
    payload = {"type": "error", "code": error.code, "message": error.message, "param": None}
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

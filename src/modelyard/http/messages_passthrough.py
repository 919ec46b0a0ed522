"""``POST /v1/messages`` forwarded to Anthropic as it is, when every target of the plan is Anthropic.

Translation through Chat Completions (:mod:`modelyard.http.messages_api`) serves every provider kind, but
drops what only the Messages API has: ``cache_control`` breakpoints (prompt caching, which Claude Code
relies on), ``thinking``, server tools, documents and citations. Anthropic targets get the client's body
with the upstream model swapped in, so those reach Anthropic; usage (cache reads and writes, 1-hour writes
included) is read from its answer and priced by the catalog's cache rates. When PII redaction changed the
request, the translated path is taken instead (the redacted text lives in the chat body admission saw).
"""

from __future__ import annotations

from typing import Any

import orjson

from modelyard.errors import UpstreamError, UpstreamStreamCut
from modelyard.gateway.admission import RequestPlan
from modelyard.gateway.passthrough import Endpoint, forwards
from modelyard.gateway.targets import Target
from modelyard.providers.anthropic import usage_from_anthropic
from modelyard.providers.base import JSON, StreamMeter, Usage

#: Anthropic stop reasons → chat finish reasons (the ledger's finish_reason column speaks chat).
_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def passes_through(plan: RequestPlan, admitted: JSON) -> bool:
    """Every target is an Anthropic provider, redaction left the request as it came, and no validator
    of the route must read the answer first."""
    if plan.redaction.body is not admitted or plan.redaction.vault is not None:
        return False
    if plan.route.validators:  # a cascade must read the answer to accept it: the translated path does
        return False
    return all(t.provider_kind == "anthropic" and forwards(t) for t in plan.attempts.candidates)


def endpoint(original: JSON) -> Endpoint:
    def body(target: Target) -> JSON:
        return {**original, "model": target.upstream_model}

    # max_tokens is required by the Messages API, so the reserved bound is the client's own; named anyway.
    return Endpoint("/messages", body, _answer, _event, _cut, output_limit="max_tokens")


def _answer(body: Any) -> tuple[Usage | None, str | None]:
    if not isinstance(body, dict):
        return None, None
    usage = body.get("usage")
    finish = _FINISH.get(str(body.get("stop_reason")), body.get("stop_reason"))
    return (usage_from_anthropic(usage) if isinstance(usage, dict) else None), finish


def _event(event: JSON, meter: StreamMeter) -> bool:
    kind = event.get("type")
    if kind == "content_block_delta":
        delta = event.get("delta") or {}
        meter.output_chars += len(
            delta.get("text") or delta.get("partial_json") or delta.get("thinking") or ""
        )
        return False
    if kind == "message_start" or kind == "message_delta":
        message = event.get("message") or {}
        raw = meter.extra.setdefault("anthropic_usage", {})
        raw.update(
            (k, v) for k, v in ((message.get("usage") or event.get("usage")) or {}).items() if v is not None
        )
        meter.usage = usage_from_anthropic(raw)
        if meter.upstream_model is None and isinstance(message.get("model"), str):
            meter.upstream_model = message["model"]
        stop = (event.get("delta") or {}).get("stop_reason")
        if stop:
            meter.finish_reason = _FINISH.get(stop, stop)
        return False
    if kind == "message_stop":
        return True
    if kind == "error":
        error = event.get("error") or {}
        raise UpstreamStreamCut(f"anthropic stream error: {error.get('message')}", provider="anthropic")
    return False


def _cut(error: UpstreamError) -> bytes:
    kind = "overloaded_error" if error.status == 503 else "api_error"
    payload = {"type": "error", "error": {"type": kind, "message": error.message}}
    return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"

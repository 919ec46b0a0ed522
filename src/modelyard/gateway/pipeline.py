"""The request pipeline: workload → target → adapter → meter.

The HTTP layer parses and validates; this module decides where a request goes, calls the adapter, and
records exactly one ledger row per request (plus one per upstream attempt) whatever happens: answered,
refused, failed upstream, cut mid-stream or cancelled by the client. Rows are handed to the ledger's
spool synchronously *before* the client receives the end of its answer, so an answered request's row
survives a crash; the database write happens later, off the request path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from time import perf_counter
from typing import Any, Protocol

import orjson

from modelyard.catalog.prices import PriceCatalog
from modelyard.config.schema import Config, ModelKind
from modelyard.errors import ModelyardError, UpstreamError
from modelyard.gateway.metering import Outcome, RequestContext, build_rows, stream_usage
from modelyard.gateway.targets import (
    NO_WORKLOAD,
    Target,
    Workload,
    build_targets,
    resolve_target,
    resolve_workload,
)
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.providers.base import (
    JSON,
    Adapter,
    ChatCall,
    ChatResult,
    EmbeddingCall,
    EmbeddingResult,
    StreamMeter,
)


class LedgerSink(Protocol):
    def record(self, request: RequestRow, attempts: list[AttemptRow]) -> None: ...


DONE = b"data: [DONE]\n\n"


def sse(payload: JSON) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class Gateway:
    """Everything a request needs, built once at start-up."""

    def __init__(
        self, config: Config, adapters: Mapping[str, Adapter], catalog: PriceCatalog, ledger: LedgerSink
    ) -> None:
        self.config = config
        self.adapters = dict(adapters)
        self.catalog = catalog
        self.ledger = ledger
        self.targets = build_targets(config, adapters, catalog)

    def resolve(
        self, body: Mapping[str, Any], workload_header: str | None, kind: ModelKind
    ) -> tuple[Workload, Target]:
        workload = resolve_workload(self.config, workload_header, body)
        return workload, resolve_target(self.targets, body.get("model"), workload, kind)

    def record_refusal(
        self,
        ctx: RequestContext,
        body: Mapping[str, Any] | None,
        error: ModelyardError,
        workload: Workload | None,
    ) -> None:
        """A request refused before any upstream call still gets its row (the audit trail)."""
        model = body.get("model") if isinstance(body, Mapping) else None
        outcome = Outcome(status=error.status, error_kind=error.kind)
        streamed = bool(body.get("stream")) if isinstance(body, Mapping) else False
        row, attempts = build_rows(ctx, workload or NO_WORKLOAD, None, str(model or ""), streamed, outcome)
        self.ledger.record(row, attempts)

    async def chat(self, ctx: RequestContext, workload: Workload, target: Target, body: JSON) -> ChatResult:
        call = ChatCall(body=body, upstream_model=target.upstream_model)
        started = perf_counter()
        try:
            result = await target.adapter.complete(call)
        except UpstreamError as error:
            self._record(ctx, workload, target, body, False, _failed(error, perf_counter() - started))
            raise
        outcome = Outcome(
            status=200,
            usage=result.usage,
            finish_reason=result.finish_reason,
            upstream_model=_str_or_none(result.body.get("model")),
            upstream_seconds=perf_counter() - started,
        )
        if workload.log_content:
            outcome.prompt = orjson.dumps(body.get("messages")).decode()
            outcome.completion = orjson.dumps(result.body.get("choices")).decode()
        self._record(ctx, workload, target, body, False, outcome)
        return result

    async def stream_chat(
        self, ctx: RequestContext, workload: Workload, target: Target, body: JSON
    ) -> AsyncIterator[bytes]:
        """SSE frames for the client. An upstream failure before the first frame is raised (the HTTP layer
        answers with a status); after it, the client gets an explicit error event and never ``[DONE]``."""
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        meter = StreamMeter()
        call = ChatCall(
            body=body, upstream_model=target.upstream_model, client_wants_stream_usage=wants_usage
        )
        outcome = Outcome(status=200)
        completion: list[str] = []
        started = perf_counter()
        sent_any = False
        recorded = False
        upstream = target.adapter.stream(call, meter)
        try:
            try:
                async for chunk in upstream:
                    if not chunk.get("choices") and chunk.get("usage") is not None and not wants_usage:
                        continue  # the usage-only chunk we asked for to meter; the client did not
                    if outcome.ttft_seconds is None and _has_output(chunk):
                        outcome.ttft_seconds = perf_counter() - ctx.t0
                        outcome.upstream_ttft_seconds = perf_counter() - started
                    if workload.log_content:
                        completion.append(_delta_text(chunk))
                    sent_any = True
                    yield sse(chunk)
            except UpstreamError as error:
                failed = _failed(error, perf_counter() - started)
                self._finish_stream(ctx, workload, target, body, meter, failed, completion, completed=False)
                recorded = True
                if not sent_any:
                    raise
                yield sse(error.to_body())
                return
            outcome.upstream_seconds = perf_counter() - started
            self._finish_stream(ctx, workload, target, body, meter, outcome, completion, completed=True)
            recorded = True
            yield DONE
        finally:
            if not recorded:
                # The client went away (or the server is shutting down): stop the upstream call and record
                # what was produced so far, estimated where the provider never said.
                outcome.client_cancelled = True
                outcome.status = 499
                outcome.error_kind = "client_cancelled"
                outcome.upstream_seconds = perf_counter() - started
                self._finish_stream(ctx, workload, target, body, meter, outcome, completion, completed=False)
            await upstream.aclose()  # type: ignore[attr-defined]

    def _finish_stream(
        self,
        ctx: RequestContext,
        workload: Workload,
        target: Target,
        body: JSON,
        meter: StreamMeter,
        outcome: Outcome,
        completion: list[str],
        *,
        completed: bool,
    ) -> None:
        outcome.usage = stream_usage(meter, body, completed=completed)
        outcome.finish_reason = meter.finish_reason
        outcome.upstream_model = meter.upstream_model
        if workload.log_content:
            outcome.prompt = orjson.dumps(body.get("messages")).decode()
            outcome.completion = "".join(completion)
        self._record(ctx, workload, target, body, True, outcome)

    async def embeddings(
        self, ctx: RequestContext, workload: Workload, target: Target, body: JSON
    ) -> EmbeddingResult:
        call = EmbeddingCall(body=body, upstream_model=target.upstream_model)
        started = perf_counter()
        try:
            result = await target.adapter.embed(call)
        except UpstreamError as error:
            self._record(ctx, workload, target, body, False, _failed(error, perf_counter() - started))
            raise
        outcome = Outcome(status=200, usage=result.usage, upstream_seconds=perf_counter() - started)
        self._record(ctx, workload, target, body, False, outcome)
        return result

    def _record(
        self,
        ctx: RequestContext,
        workload: Workload,
        target: Target,
        body: JSON,
        streamed: bool,
        outcome: Outcome,
    ) -> None:
        row, attempts = build_rows(ctx, workload, target, target.public_model, streamed, outcome)
        self.ledger.record(row, attempts)

    async def close(self) -> None:
        for adapter in self.adapters.values():
            await adapter.close()


def _failed(error: UpstreamError, seconds: float) -> Outcome:
    return Outcome(status=error.status, error_kind=error.kind, upstream_seconds=seconds)


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _has_output(chunk: JSON) -> bool:
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content") or delta.get("tool_calls"):
            return True
    return False


def _delta_text(chunk: JSON) -> str:
    parts = []
    for choice in chunk.get("choices") or ():
        content = (choice.get("delta") or {}).get("content")
        if isinstance(content, str):
            parts.append(content)
    return "".join(parts)

"""OpenAI-family endpoints forwarded as they are: legacy ``/v1/completions``, and ``/v1/responses`` to OpenAI.

Chat and embeddings go through the executor, which speaks Chat Completions to every adapter. These
endpoints have no equivalent in other API families, or lose features when translated, so for targets
whose adapter can forward them (:class:`RawEndpoints`: the OpenAI adapter and the OpenAI-compatible
servers that reuse it) the request goes upstream in its own format. Everything around the call is what
chat gets: the admitted plan's targets in order, retries and fallbacks through the attempt runner before
the first byte, one ledger row per request and per attempt (usage from the answer, estimated and flagged
when a stream breaks first), budgets settled by the recorder.

An :class:`Endpoint` says what differs between endpoints: the path, the upstream body for a target, how
to read usage from an answer and from stream events, and the frame that tells a client its stream broke.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Protocol, runtime_checkable

import orjson

from modelyard.errors import UpstreamError, UpstreamStreamCut
from modelyard.gateway.admission import RequestPlan
from modelyard.gateway.attempts import AttemptRunner, Served
from modelyard.gateway.metering import Outcome, RequestContext, attempt_row, stream_usage
from modelyard.gateway.recording import Recorder
from modelyard.gateway.targets import Target
from modelyard.providers.base import JSON, StreamMeter, Usage
from modelyard.providers.http import UpstreamStream


@runtime_checkable
class RawEndpoints(Protocol):
    """An adapter that forwards a body to one of its provider's endpoints as it is."""

    async def post_raw(self, path: str, body: JSON) -> tuple[bytes, Any]: ...

    async def open_raw_stream(self, path: str, body: JSON) -> UpstreamStream: ...


def forwards(target: Target) -> bool:
    return isinstance(target.adapter, RawEndpoints)


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    #: The upstream body for one target (its upstream model swapped in).
    body: Callable[[Target], JSON]
    #: Usage and finish reason of a whole (non-streaming) answer.
    answer: Callable[[Any], tuple[Usage | None, str | None]]
    #: Meter one parsed stream event (usage, finish reason, output characters); True when it ends the
    #: stream. Raises :class:`UpstreamError` for an error event.
    event: Callable[[JSON, StreamMeter], bool]
    #: The frame telling the client its stream broke (the endpoint's own error event).
    cut: Callable[[UpstreamError], bytes]
    #: The body's output bound (``max_output_tokens``, ``max_tokens``): where the reserved bound goes when
    #: the client set none (None: the endpoint has no such field, or always carries the client's own).
    output_limit: str | None = None

    def upstream_body(self, target: Target, ctx: RequestContext) -> JSON:
        body = self.body(target)
        bound = ctx.hold.output_bound if ctx.hold is not None else None
        if bound is not None and self.output_limit is not None:
            body[self.output_limit] = bound  # budgeting.send_output_bound, in this endpoint's field
        return body


def _adapter(target: Target) -> RawEndpoints:
    adapter = target.adapter
    assert isinstance(adapter, RawEndpoints), "admission let only forwarding targets through"
    return adapter


async def forward(
    runner: AttemptRunner, recorder: Recorder, ctx: RequestContext, plan: RequestPlan, endpoint: Endpoint
) -> bytes:
    """The plan's attempts for one whole answer at ``endpoint``; its raw bytes. Recorded however it ends."""
    outcome = Outcome(status=200, route=plan.attempts.describe())

    async def call(target: Target) -> tuple[bytes, Any]:
        return await _adapter(target).post_raw(endpoint.path, endpoint.upstream_body(target, ctx))

    def on_success(target: Target, result: tuple[bytes, Any], seconds: float) -> None:
        usage, _ = endpoint.answer(result[1])
        model = result[1].get("model") if isinstance(result[1], dict) else None
        outcome.answered(ctx, target, usage, seconds, model if isinstance(model, str) else None)

    with recorder.on_failure(ctx, plan.facts, outcome):
        served = await runner.run(ctx, plan.attempts, call, outcome, on_success=on_success)
    raw, body = served.result
    outcome.target = served.target
    outcome.usage, outcome.finish_reason = endpoint.answer(body)
    outcome.upstream_model = outcome.attempts[-1].upstream_model if outcome.attempts else None
    if plan.workload.log_content:
        outcome.prompt = orjson.dumps(plan.redaction.body.get("messages")).decode()
        outcome.completion = raw.decode(errors="replace")
    recorder.record(ctx, plan.facts, outcome)
    return raw


async def forward_stream(
    runner: AttemptRunner, recorder: Recorder, ctx: RequestContext, plan: RequestPlan, endpoint: Endpoint
) -> RawRelay:
    """Open the stream at ``endpoint`` (retried and falling back until its first bytes arrive)."""
    outcome = Outcome(status=200, route=plan.attempts.describe())

    async def open_stream(target: Target) -> tuple[UpstreamStream, bytes]:
        upstream = await _adapter(target).open_raw_stream(endpoint.path, endpoint.upstream_body(target, ctx))
        try:
            head = await upstream.next_piece()
        except BaseException:
            upstream.close()
            raise
        if head is None:
            upstream.close()
            raise UpstreamStreamCut(f"{target.provider} sent an empty stream", provider=target.provider)
        return upstream, head

    with recorder.on_failure(ctx, plan.facts, outcome):
        served = await runner.run(ctx, plan.attempts, open_stream, outcome)
    return RawRelay(ctx, plan, outcome, served, endpoint, lambda: recorder.record(ctx, plan.facts, outcome))


class RawRelay:
    """The upstream's SSE bytes passed to the client as read, each event parsed only to meter it."""

    __slots__ = (
        "_ctx",
        "_endpoint",
        "_head",
        "_meter",
        "_outcome",
        "_pending",
        "_plan",
        "_record",
        "_recorded",
        "_started",
        "_target",
        "_upstream",
    )

    def __init__(
        self,
        ctx: RequestContext,
        plan: RequestPlan,
        outcome: Outcome,
        served: Served[tuple[UpstreamStream, bytes]],
        endpoint: Endpoint,
        record: Callable[[], None],
    ) -> None:
        self._ctx, self._plan, self._outcome, self._endpoint = ctx, plan, outcome, endpoint
        self._upstream, self._head = served.result
        self._target = outcome.target = served.target
        self._record = record
        self._meter = StreamMeter()
        self._pending = b""
        self._recorded = False
        self._started = perf_counter()

    async def pump(self, write: Callable[[bytes], Awaitable[None]]) -> bytes:
        ended = False
        try:
            piece: bytes | None = self._head
            while piece is not None:
                ended = self._meter_events(piece) or ended
                if self._outcome.ttft_seconds is None:
                    self._outcome.ttft_seconds = perf_counter() - self._ctx.t0
                await write(piece)
                piece = await self._upstream.next_piece()
            if not ended:
                raise UpstreamStreamCut(
                    f"{self._target.provider} ended the stream before it was complete",
                    provider=self._target.provider,
                )
            self._finish(True)
            return b""
        except UpstreamError as error:
            self._finish(False, error)
            return self._endpoint.cut(error)
        finally:
            if not self._recorded:  # the client went away (cancelled) mid-stream
                self._client_left()
            self._upstream.close()

    async def close(self) -> None:
        if not self._recorded:
            self._client_left()
        self._upstream.close()

    def _client_left(self) -> None:
        self._outcome.client_cancelled = True
        self._outcome.status, self._outcome.error_kind = 499, "client_cancelled"
        self._finish(False)

    def _meter_events(self, piece: bytes) -> bool:
        """Meter the complete events in ``piece`` (with what an earlier piece left); True at the end."""
        data = (self._pending + piece).replace(b"\r\n", b"\n")
        end = data.rfind(b"\n\n") + 2
        if end < 2:
            self._pending = data
            return False
        self._pending = data[end:]
        ended = False
        for block in data[: end - 2].split(b"\n\n"):
            payload = b"\n".join(line[5:].strip() for line in block.split(b"\n") if line.startswith(b"data:"))
            if not payload:
                continue
            if payload == b"[DONE]":
                ended = True
                continue
            try:
                parsed = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise UpstreamStreamCut(
                    f"{self._target.provider} sent a malformed stream event", provider=self._target.provider
                ) from None
            if isinstance(parsed, dict):
                ended = self._endpoint.event(parsed, self._meter) or ended
        return ended

    def _finish(self, completed: bool, error: UpstreamError | None = None) -> None:
        self._recorded = True
        outcome, meter = self._outcome, self._meter
        seconds = perf_counter() - self._started
        usage = stream_usage(meter, self._plan.redaction.body, completed=completed)
        outcome.upstream_seconds += seconds
        outcome.usage, outcome.finish_reason = usage, meter.finish_reason
        outcome.upstream_model = meter.upstream_model
        status = outcome.status
        if error is not None:
            status, outcome.error_kind = error.status, error.kind
        outcome.attempts.append(
            attempt_row(
                self._ctx,
                len(outcome.attempts) + 1,
                self._target,
                status=status,
                error_kind=outcome.error_kind,
                seconds=seconds,
                usage=usage,
                upstream_model=meter.upstream_model,
            )
        )
        if self._plan.workload.log_content:
            outcome.prompt = orjson.dumps(self._plan.redaction.body.get("messages")).decode()
        self._record()

"""The request pipeline: workload → data class → route plan → attempts → meter.

The HTTP layer parses and validates; this module decides where a request may go and goes there, and
records exactly one ledger row per request (plus one per upstream attempt) whatever happens: answered,
refused by policy, failed upstream, cut mid-stream or cancelled by the client. Rows reach the ledger's
spool synchronously *before* the client receives the end of its answer, so an answered request's row
survives a crash; the database write happens later, off the request path.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any, Protocol

import orjson

from modelyard.catalog.prices import PriceCatalog
from modelyard.config.routing import DataClassPolicy
from modelyard.config.schema import Config, ModelKind
from modelyard.errors import ModelyardError, PolicyDenied, UpstreamError, UpstreamStreamCut, UpstreamTimeout
from modelyard.gateway.attempts import AttemptRunner, Served
from modelyard.gateway.auth import Caller, KeyRing
from modelyard.gateway.cached import answer_frames
from modelyard.gateway.metering import Outcome, RequestContext, attempt_row, build_row, cost_of, stream_usage
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.redaction import (
    Redaction,
    StreamRestorer,
    redact_chat,
    redact_embeddings,
    restore_result,
)
from modelyard.gateway.targets import (
    NO_WORKLOAD,
    WORKLOAD_HEADER,
    Target,
    Workload,
    build_routes,
    build_targets,
    resolve_route,
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
from modelyard.routing.breaker import Breakers
from modelyard.routing.cache import CachedAnswer, ResponseCache, cache_key
from modelyard.routing.plan import Plan, Route, plan_route
from modelyard.routing.policy import DATA_CLASS_HEADER, ClassDecision, describe, effective_data_class
from modelyard.routing.validators import (
    answer_text,
    first_failure,
    judge_prompt,
    judge_verdict,
    requested_schema,
    schema_violation,
)


class LedgerSink(Protocol):
    def record(self, request: RequestRow, attempts: list[AttemptRow]) -> None: ...

    async def usage(self, tenant: str, since: float = 0.0) -> list[dict[str, Any]]: ...


DONE = b"data: [DONE]\n\n"


def sse(payload: JSON) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


@dataclass(frozen=True, slots=True)
class Admitted:
    """A request that passed admission: who it is for, where it may go."""

    workload: Workload
    route: Route[Target]
    decision: ClassDecision
    policy: DataClassPolicy

    def note(self) -> str:
        return f"{self.decision.data_class} ({self.decision.source}); allows {describe(self.policy)}"


@dataclass(slots=True)
class Live:
    """A stream that produced its first chunk: the generator, that chunk, and its meter."""

    frames: AsyncIterator[JSON | bytes]
    #: What arrived up to and including the first output (role chunks come before it).
    head: list[JSON | bytes]
    meter: StreamMeter


class Gateway:
    """Everything a request needs, built once at start-up."""

    def __init__(
        self,
        config: Config,
        adapters: Mapping[str, Adapter],
        catalog: PriceCatalog,
        ledger: LedgerSink,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.adapters = dict(adapters)
        self.catalog = catalog
        self.ledger = ledger
        self.targets = build_targets(config, adapters, catalog)
        self.routes = build_routes(config, self.targets)
        self.breakers = Breakers(config.resilience.breaker)
        self.runner = AttemptRunner(config.resilience, self.breakers)
        self.cache = ResponseCache({n: w.cache for n, w in config.workloads.items() if w.cache is not None})
        self.metrics = GatewayMetrics(self.breakers)
        self.keys = KeyRing(config.auth)
        self.rng = rng or random.Random()
        self._background: set[asyncio.Task[None]] = set()

    # -- admission -------------------------------------------------------------------------------------

    def resolve(
        self,
        body: Mapping[str, Any],
        headers: Mapping[str, str],
        kind: ModelKind,
        caller: Caller | None = None,
    ) -> Admitted:
        workload = resolve_workload(self.config, headers.get(WORKLOAD_HEADER), body)
        if caller is not None:
            caller.check_workload(workload.name)
        decision = effective_data_class(
            workload.data_class, headers.get(DATA_CLASS_HEADER), caller.data_class if caller else None
        )
        route = resolve_route(self.routes, body.get("model"), workload, kind)
        return Admitted(workload, route, decision, self.config.policy.data_classes[decision.data_class])

    def record_refusal(
        self,
        ctx: RequestContext,
        body: Mapping[str, Any] | None,
        error: ModelyardError,
        admitted: Admitted | None,
    ) -> None:
        """A request refused before any upstream call still gets its row: the audit trail."""
        model = body.get("model") if isinstance(body, Mapping) else None
        streamed = bool(body.get("stream")) if isinstance(body, Mapping) else False
        outcome = Outcome(status=error.status, error_kind=error.kind)
        if admitted is not None:
            outcome.policy, outcome.data_class = admitted.note(), admitted.decision.data_class
            model = admitted.route.name
        self._record(ctx, admitted.workload if admitted else NO_WORKLOAD, str(model or ""), streamed, outcome)

    def _plan(self, ctx: RequestContext, admitted: Admitted, body: JSON, outcome: Outcome) -> Plan[Target]:
        def available(target: Target) -> bool:
            return self.breakers[target.public_model].available()

        plan = plan_route(admitted.route, admitted.policy, available, self.rng)
        outcome.route = plan.describe()
        if plan.candidates:
            return plan
        error: ModelyardError
        if all(why.startswith("policy") for _, why in plan.skipped):
            error = PolicyDenied(
                f"data class '{admitted.decision.data_class}' allows {describe(admitted.policy)}; "
                f"no target of '{admitted.route.name}' qualifies, so the request was not forwarded",
            )
        else:
            error = UpstreamError(
                f"no healthy target for '{admitted.route.name}' ({plan.describe()})",
                provider="gateway",
                code="no_healthy_target",
                status=503,
            )
        outcome.status, outcome.error_kind = error.status, error.kind
        self._record(ctx, admitted.workload, admitted.route.name, bool(body.get("stream")), outcome)
        raise error

    def _redact(self, admitted: Admitted, body: JSON, outcome: Outcome) -> Redaction:
        """The class's PII policy applied to the body that goes upstream; the ledger notes what was found."""
        red = redact_chat(admitted.policy, body)
        if red.note:
            outcome.policy = f"{outcome.policy}; {red.note}"
        return red

    def _outcome(self, admitted: Admitted) -> Outcome:
        return Outcome(status=200, policy=admitted.note(), data_class=admitted.decision.data_class)

    # -- chat ------------------------------------------------------------------------------------------

    async def chat(self, ctx: RequestContext, admitted: Admitted, body: JSON) -> ChatResult:
        outcome = self._outcome(admitted)
        plan = self._plan(ctx, admitted, body, outcome)
        key = self._cache_key(ctx, admitted, body)
        cached = self.cache.get(admitted.workload.name, key) if key else None
        if cached is not None:
            self._record_hit(ctx, admitted, body, outcome, cached, streamed=False)
            return ChatResult(body=cached.body, usage=cached.usage)
        red = self._redact(admitted, body, outcome)
        try:
            served = await self._complete(ctx, admitted, plan, red.body, outcome)
        except UpstreamError as error:
            outcome.status, outcome.error_kind = error.status, error.kind
            self._record(ctx, admitted.workload, admitted.route.name, False, outcome)
            raise
        except asyncio.CancelledError:
            outcome.status, outcome.error_kind, outcome.client_cancelled = 499, "client_cancelled", True
            self._record(ctx, admitted.workload, admitted.route.name, False, outcome)
            raise
        if red.vault is not None:
            served = replace(served, result=restore_result(served.result, red.vault))
        self._finish(ctx, admitted, red.body, outcome, served, streamed=False)
        if key and served.accepted:
            self.cache.put(admitted.workload.name, key, self._cache_entry(served))
        self._launch_shadow(ctx, admitted, plan, red.body)
        return served.result

    async def _complete(
        self, ctx: RequestContext, admitted: Admitted, plan: Plan[Target], body: JSON, outcome: Outcome
    ) -> Served[ChatResult]:
        validators = admitted.route.validators
        schema = requested_schema(body)

        async def call(target: Target) -> ChatResult:
            return await target.adapter.complete(ChatCall(body=body, upstream_model=target.upstream_model))

        def on_success(target: Target, result: ChatResult, seconds: float) -> None:
            outcome.upstream_seconds += seconds
            number = len(outcome.attempts) + 1
            model = result.body.get("model")
            outcome.attempts.append(
                attempt_row(
                    ctx,
                    number,
                    target,
                    status=200,
                    error_kind=None,
                    seconds=seconds,
                    usage=result.usage,
                    upstream_model=model if isinstance(model, str) else None,
                )
            )

        async def accept(result: ChatResult) -> str | None:
            text = answer_text(result.body)
            if schema is not None:
                violation = schema_violation(text, schema)
                if violation:
                    return violation
            reason = first_failure(text, validators)
            if reason is None:
                reason = await self._judge(ctx, admitted, body, text, outcome)
            return reason

        needs_check = schema is not None or bool(validators)
        return await self.runner.run(ctx, plan, call, outcome, accept if needs_check else None, on_success)

    async def _judge(
        self, ctx: RequestContext, admitted: Admitted, body: JSON, text: str | None, outcome: Outcome
    ) -> str | None:
        """Run the route's judge validators; each judge call is an attempt row of purpose ``judge``."""
        for validator in admitted.route.validators:
            if validator.kind != "judge" or validator.model is None:
                continue
            judge = self.targets[validator.model]
            question = orjson.dumps(body.get("messages")).decode()
            prompt = judge_prompt(validator.rubric or "", question, text or "")
            started = perf_counter()
            try:
                verdict = await judge.adapter.complete(
                    ChatCall(body=prompt, upstream_model=judge.upstream_model)
                )
            except UpstreamError as error:
                outcome.attempts.append(
                    attempt_row(
                        ctx,
                        len(outcome.attempts) + 1,
                        judge,
                        status=error.status,
                        error_kind=error.kind,
                        seconds=perf_counter() - started,
                        purpose="judge",
                    )
                )
                return f"judge {validator.model} failed ({error.kind})"
            outcome.attempts.append(
                attempt_row(
                    ctx,
                    len(outcome.attempts) + 1,
                    judge,
                    status=200,
                    error_kind=None,
                    seconds=perf_counter() - started,
                    usage=verdict.usage,
                    purpose="judge",
                )
            )
            if not judge_verdict(answer_text(verdict.body)):
                return f"judge {validator.model}: FAIL"
        return None

    def _finish(
        self,
        ctx: RequestContext,
        admitted: Admitted,
        body: JSON,
        outcome: Outcome,
        served: Served[ChatResult],
        *,
        streamed: bool,
    ) -> None:
        result = served.result
        outcome.target = served.target
        outcome.usage = result.usage
        outcome.finish_reason = result.finish_reason
        model = result.body.get("model")
        outcome.upstream_model = model if isinstance(model, str) else None
        if not served.accepted:
            outcome.error_kind = "validation_failed"
        if admitted.workload.log_content:
            outcome.prompt = orjson.dumps(body.get("messages")).decode()
            outcome.completion = orjson.dumps(result.body.get("choices")).decode()
        self._record(ctx, admitted.workload, admitted.route.name, streamed, outcome)

    # -- streaming -------------------------------------------------------------------------------------

    async def stream_chat(self, ctx: RequestContext, admitted: Admitted, body: JSON) -> AsyncIterator[bytes]:
        """SSE frames for the client. A failure before the first frame is raised (the HTTP layer answers
        with a status; retries and fallbacks happen before that); after it, the client gets an explicit
        error event and never ``[DONE]``."""
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        outcome = self._outcome(admitted)
        plan = self._plan(ctx, admitted, body, outcome)
        key = self._cache_key(ctx, admitted, body)
        cached = self.cache.get(admitted.workload.name, key) if key else None
        if cached is not None:
            for frame in answer_frames(cached.body, cached.usage, wants_usage):
                yield frame
            self._record_hit(ctx, admitted, body, outcome, cached, streamed=True)
            yield DONE
            return
        red = self._redact(admitted, body, outcome)
        if admitted.route.validators:
            # A cascade must see the whole answer before accepting it: the client gets it as one stream.
            async for frame in self._stream_buffered(ctx, admitted, plan, red, outcome, wants_usage, key):
                yield frame
            return
        try:
            served = await self.runner.run(ctx, plan, self._opener(red.body, wants_usage), outcome)
        except UpstreamError as error:
            outcome.status, outcome.error_kind = error.status, error.kind
            self._record(ctx, admitted.workload, admitted.route.name, True, outcome)
            raise
        except asyncio.CancelledError:
            outcome.status, outcome.error_kind, outcome.client_cancelled = 499, "client_cancelled", True
            self._record(ctx, admitted.workload, admitted.route.name, True, outcome)
            raise
        self._launch_shadow(ctx, admitted, plan, red.body)
        restorer = StreamRestorer(red.vault) if red.vault is not None else None
        async for frame in self._relay(ctx, admitted, red.body, outcome, served, wants_usage, restorer):
            yield frame

    def _opener(self, body: JSON, wants_usage: bool) -> Any:
        ttft_timeout = self.config.resilience.ttft_timeout_s

        async def open_stream(target: Target) -> Live:
            """Start a stream and read up to its first token. Until then nothing has reached the client,
            so a failure here (including an error event right after the role chunk) can still be retried
            or fall back."""
            meter = StreamMeter()
            call = ChatCall(
                body=body, upstream_model=target.upstream_model, client_wants_stream_usage=wants_usage
            )
            frames = target.adapter.stream(call, meter)
            try:
                if ttft_timeout is None:
                    head = await _read_to_first_token(frames, meter)
                else:
                    async with asyncio.timeout(ttft_timeout):
                        head = await _read_to_first_token(frames, meter)
            except TimeoutError:
                await frames.aclose()  # type: ignore[attr-defined]
                raise UpstreamTimeout(
                    f"{target.provider} sent no first token within {ttft_timeout}s", provider=target.provider
                ) from None
            except BaseException:
                await frames.aclose()  # type: ignore[attr-defined]
                raise
            if not head:
                raise UpstreamStreamCut(f"{target.provider} sent an empty stream", provider=target.provider)
            return Live(frames, head, meter)

        return open_stream

    async def _relay(
        self,
        ctx: RequestContext,
        admitted: Admitted,
        body: JSON,
        outcome: Outcome,
        served: Served[Live],
        wants_usage: bool,
        restorer: StreamRestorer | None = None,
    ) -> AsyncIterator[bytes]:
        live, target = served.result, served.target
        meter = live.meter
        outcome.target = target
        completion: list[str] = []
        log_content = admitted.workload.log_content
        started = perf_counter()
        recorded = False

        def finish(completed: bool, error: UpstreamError | None = None) -> None:
            seconds = perf_counter() - started
            usage = stream_usage(meter, body, completed=completed)
            outcome.upstream_seconds += seconds
            outcome.usage, outcome.finish_reason = usage, meter.finish_reason
            outcome.upstream_model = meter.upstream_model
            if error is not None:
                outcome.status, outcome.error_kind = error.status, error.kind
            outcome.attempts.append(
                attempt_row(
                    ctx,
                    len(outcome.attempts) + 1,
                    target,
                    status=outcome.status,
                    error_kind=outcome.error_kind,
                    seconds=seconds,
                    usage=usage,
                    upstream_model=meter.upstream_model,
                )
            )
            if log_content:
                outcome.prompt = orjson.dumps(body.get("messages")).decode()
                outcome.completion = "".join(completion)
            self._record(ctx, admitted.workload, admitted.route.name, True, outcome)

        def frame(piece: JSON | bytes) -> bytes | None:
            if restorer is not None:
                piece = restorer.block(piece) if isinstance(piece, bytes) else restorer.chunk(piece)
            if isinstance(piece, bytes):
                # Already OpenAI SSE events, passed through as read (one write per upstream read).
                if outcome.ttft_seconds is None and meter.output_chars:
                    outcome.ttft_seconds = perf_counter() - ctx.t0
                if log_content:
                    completion.append(_sse_text(piece))
                return piece
            if not piece.get("choices") and piece.get("usage") is not None and not wants_usage:
                return None  # the usage-only chunk we asked for to meter; the client did not
            if outcome.ttft_seconds is None and _has_output(piece):
                outcome.ttft_seconds = perf_counter() - ctx.t0
            if log_content:
                completion.append(_delta_text(piece))
            return sse(piece)

        try:
            try:
                head = b"".join(f for f in map(frame, live.head) if f)
                if head:
                    yield head
                async for piece in live.frames:
                    out = frame(piece)
                    if out:
                        yield out
            except UpstreamError as error:
                finish(False, error)
                recorded = True
                yield sse(error.to_body())
                return
            finish(True)
            recorded = True
            tail = restorer.tail() if restorer is not None else None
            if tail is not None:
                yield sse(tail)
            yield DONE
        finally:
            if not recorded:
                # The client went away (or the server is stopping): end the upstream call and record what
                # was produced so far, estimated where the provider never said.
                outcome.client_cancelled = True
                outcome.status, outcome.error_kind = 499, "client_cancelled"
                finish(False)
            await live.frames.aclose()  # type: ignore[attr-defined]

    async def _stream_buffered(
        self,
        ctx: RequestContext,
        admitted: Admitted,
        plan: Plan[Target],
        red: Redaction,
        outcome: Outcome,
        wants_usage: bool,
        key: str | None,
    ) -> AsyncIterator[bytes]:
        try:
            served = await self._complete(ctx, admitted, plan, red.body, outcome)
        except UpstreamError as error:
            outcome.status, outcome.error_kind = error.status, error.kind
            self._record(ctx, admitted.workload, admitted.route.name, True, outcome)
            raise
        except asyncio.CancelledError:
            outcome.status, outcome.error_kind, outcome.client_cancelled = 499, "client_cancelled", True
            self._record(ctx, admitted.workload, admitted.route.name, True, outcome)
            raise
        outcome.ttft_seconds = perf_counter() - ctx.t0
        if red.vault is not None:
            served = replace(served, result=restore_result(served.result, red.vault))
        frames = answer_frames(served.result.body, served.result.usage, wants_usage)
        self._finish(ctx, admitted, red.body, outcome, served, streamed=True)
        if key and served.accepted:
            self.cache.put(admitted.workload.name, key, self._cache_entry(served))
        self._launch_shadow(ctx, admitted, plan, red.body)
        for frame in frames:
            yield frame
        yield DONE

    # -- cache and shadow ------------------------------------------------------------------------------

    def _cache_key(self, ctx: RequestContext, admitted: Admitted, body: JSON) -> str | None:
        if not self.cache.enabled(admitted.workload.name):
            return None
        return cache_key(
            admitted.route.name,
            body,
            workload=admitted.workload.name,
            data_class=admitted.decision.data_class,
            tenant=ctx.tenant,
        )

    def _cache_entry(self, served: Served[ChatResult]) -> CachedAnswer:
        cost, _ = cost_of(served.target, served.result.usage)
        return CachedAnswer(served.result.body, served.result.usage, cost, served.target.public_model)

    def _record_hit(
        self,
        ctx: RequestContext,
        admitted: Admitted,
        body: JSON,
        outcome: Outcome,
        cached: CachedAnswer,
        *,
        streamed: bool,
    ) -> None:
        outcome.cache_hit = True
        outcome.cost_saved_pico_usd = cached.cost_pico_usd
        outcome.usage = None
        outcome.route = f"cache hit (answered earlier by {cached.served_by})"
        outcome.finish_reason = "stop"
        self._record(ctx, admitted.workload, admitted.route.name, streamed, outcome)

    def _launch_shadow(self, ctx: RequestContext, admitted: Admitted, plan: Plan[Target], body: JSON) -> None:
        if plan.shadow is None:
            return
        task = asyncio.get_running_loop().create_task(self._shadow(ctx, admitted, plan.shadow, body))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _shadow(self, ctx: RequestContext, admitted: Admitted, target: Target, body: JSON) -> None:
        """Mirror the request to the shadow target, off the request path; its own row points back."""
        shadow_ctx = RequestContext(
            request_id=ctx.request_id + "-shadow",
            ts=ctx.ts,
            t0=perf_counter(),
            endpoint=ctx.endpoint,
            tenant=ctx.tenant,
            api_key_id=ctx.api_key_id,
        )
        outcome = self._outcome(admitted)
        outcome.shadow_of, outcome.target = ctx.request_id, target
        outcome.route = f"shadow of {ctx.request_id}"
        mirrored = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        started = perf_counter()
        try:
            result = await target.adapter.complete(
                ChatCall(body=mirrored, upstream_model=target.upstream_model)
            )
        except UpstreamError as error:
            outcome.status, outcome.error_kind = error.status, error.kind
            usage = None
        else:
            outcome.usage, outcome.finish_reason = result.usage, result.finish_reason
            usage = result.usage
            if admitted.workload.log_content:
                outcome.completion = orjson.dumps(result.body.get("choices")).decode()
        seconds = perf_counter() - started
        outcome.upstream_seconds = seconds
        outcome.attempts.append(
            attempt_row(
                shadow_ctx,
                1,
                target,
                status=outcome.status,
                error_kind=outcome.error_kind,
                seconds=seconds,
                usage=usage,
            )
        )
        self._record(shadow_ctx, admitted.workload, target.public_model, False, outcome)

    # -- embeddings ------------------------------------------------------------------------------------

    async def embeddings(self, ctx: RequestContext, admitted: Admitted, body: JSON) -> EmbeddingResult:
        outcome = self._outcome(admitted)
        plan = self._plan(ctx, admitted, body, outcome)
        red = redact_embeddings(admitted.policy, body)
        if red.note:
            outcome.policy = f"{outcome.policy}; {red.note}"

        async def call(target: Target) -> EmbeddingResult:
            return await target.adapter.embed(
                EmbeddingCall(body=red.body, upstream_model=target.upstream_model)
            )

        def on_success(target: Target, result: EmbeddingResult, seconds: float) -> None:
            outcome.upstream_seconds += seconds
            outcome.attempts.append(
                attempt_row(
                    ctx,
                    len(outcome.attempts) + 1,
                    target,
                    status=200,
                    error_kind=None,
                    seconds=seconds,
                    usage=result.usage,
                )
            )

        try:
            served = await self.runner.run(ctx, plan, call, outcome, on_success=on_success)
        except UpstreamError as error:
            outcome.status, outcome.error_kind = error.status, error.kind
            self._record(ctx, admitted.workload, admitted.route.name, False, outcome)
            raise
        outcome.target, outcome.usage = served.target, served.result.usage
        self._record(ctx, admitted.workload, admitted.route.name, False, outcome)
        return served.result

    # -- ledger ----------------------------------------------------------------------------------------

    def _record(
        self, ctx: RequestContext, workload: Workload, model: str, streamed: bool, outcome: Outcome
    ) -> None:
        row = build_row(ctx, workload, model, streamed, outcome)
        self.ledger.record(row, outcome.attempts)
        self.metrics.observe(row)

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=10)
        for adapter in self.adapters.values():
            await adapter.close()


async def _read_to_first_token(frames: AsyncIterator[JSON | bytes], meter: StreamMeter) -> list[JSON | bytes]:
    head: list[JSON | bytes] = []
    async for piece in frames:
        head.append(piece)
        if isinstance(piece, bytes):
            if meter.output_chars or meter.finish_reason or meter.usage:
                break
        elif _has_output(piece) or _finished(piece):
            break
    return head


def _sse_text(block: bytes) -> str:
    """Content text of passed-through SSE events (only for workloads that log content)."""
    texts = []
    for line in block.split(b"\n"):
        if line.startswith(b"data: "):
            try:
                texts.append(_delta_text(orjson.loads(line[6:])))
            except orjson.JSONDecodeError:
                continue
    return "".join(texts)


def _finished(chunk: JSON) -> bool:
    return any(choice.get("finish_reason") for choice in chunk.get("choices") or ()) or not chunk.get(
        "choices"
    )


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

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from time import perf_counter
from typing import Any, Protocol

import orjson

from modelyard.catalog.prices import PriceCatalog
from modelyard.config.routing import DataClassPolicy
from modelyard.config.schema import Config, ModelKind
from modelyard.errors import ModelyardError, PolicyDenied, UpstreamError
from modelyard.gateway.attempts import AttemptRunner, Served
from modelyard.gateway.auth import Caller, KeyRing
from modelyard.gateway.cached import answer_frames
from modelyard.gateway.headers import header_values, single_header
from modelyard.gateway.metering import Outcome, RequestContext, attempt_row, build_row, cost_of
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.redaction import (
    Redaction,
    StreamRestorer,
    redact_chat,
    redact_embeddings,
    restore_result,
)
from modelyard.gateway.side_calls import judge, mirror
from modelyard.gateway.streaming import ClientStream, Frames, Relay, opener
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
)
from modelyard.routing.breaker import Breakers
from modelyard.routing.cache import CachedAnswer, ResponseCache, cache_key
from modelyard.routing.plan import Plan, Route, plan_route
from modelyard.routing.policy import DATA_CLASS_HEADER, ClassDecision, describe, effective_data_class
from modelyard.routing.validators import (
    answer_text,
    first_failure,
    requested_schema,
    schema_violation,
)


class LedgerSink(Protocol):
    def record(self, request: RequestRow, attempts: list[AttemptRow]) -> None: ...

    async def usage(self, tenant: str, since: float = 0.0) -> list[dict[str, Any]]: ...


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
class Draft:
    """Admission's decisions so far: a refused request's row records them."""

    workload: Workload | None = None
    #: The caller's key's class: with the workload's, the class decided before any header.
    key_class: str | None = None


class RecordedOnFailure:
    """A ``with`` block whose failure (the attempts failed, or the client went away) is recorded, then
    re-raised. A class rather than ``@contextmanager``: it runs on every request, and a generator-based
    context manager costs several times more."""

    __slots__ = ("outcome", "record")

    def __init__(self, record: Callable[[], None], outcome: Outcome) -> None:
        self.record, self.outcome = record, outcome

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: object) -> None:
        outcome = self.outcome
        if isinstance(error, UpstreamError):
            outcome.status, outcome.error_kind = error.status, error.kind
            self.record()
        elif isinstance(error, asyncio.CancelledError):
            outcome.status, outcome.error_kind, outcome.client_cancelled = 499, "client_cancelled", True
            self.record()


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
        self.cache = ResponseCache(
            {n: w.cache for n, w in config.workloads.items() if w.cache is not None},
            config.redis.url if config.redis else None,
        )
        self.metrics = GatewayMetrics(self.breakers, self.routes, config.workloads)
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
        draft: Draft | None = None,
    ) -> Admitted:
        """Workload, data class and route of a request. ``draft`` receives each decision as it is made, so
        a refusal's row records what admission had decided before it refused."""
        workload = resolve_workload(self.config, single_header(headers, WORKLOAD_HEADER), body)
        key_class = caller.data_class if caller else None
        if draft is not None:
            draft.workload, draft.key_class = workload, key_class
        if caller is not None:
            caller.check_workload(workload.name)
        decision = effective_data_class(
            workload.data_class, header_values(headers, DATA_CLASS_HEADER), key_class
        )
        route = resolve_route(self.routes, body.get("model"), workload, kind)
        return Admitted(workload, route, decision, self.config.policy.data_classes[decision.data_class])

    def record_refusal(
        self,
        ctx: RequestContext,
        body: Mapping[str, Any] | None,
        error: ModelyardError,
        admitted: Admitted | None,
        draft: Draft | None = None,
    ) -> None:
        """A request refused before any upstream call still gets its row: the audit trail, with what
        admission had decided (workload, class, policy, route) when it refused."""
        model = body.get("model") if isinstance(body, Mapping) else None
        streamed = bool(body.get("stream")) if isinstance(body, Mapping) else False
        outcome = Outcome(status=error.status, error_kind=error.kind)
        workload = admitted.workload if admitted else NO_WORKLOAD
        if admitted is not None:
            outcome.policy, outcome.data_class = admitted.note(), admitted.decision.data_class
            model = admitted.route.name
        elif draft is not None and draft.workload is not None:
            workload = draft.workload
            decision = effective_data_class(workload.data_class, None, draft.key_class)
            policy = self.config.policy.data_classes[decision.data_class]
            outcome.data_class = decision.data_class
            outcome.policy = f"{decision.data_class} ({decision.source}); allows {describe(policy)}"
            route = self.routes.get(model if isinstance(model, str) else workload.default_model or "")
            if route is not None:
                model = route.name
                outcome.route = f"{route.strategy}:{route.name}; refused ({error.kind})"
        self._record(ctx, workload, str(model or ""), streamed, outcome)

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

    def _recorded_on_failure(
        self, ctx: RequestContext, admitted: Admitted, outcome: Outcome, *, streamed: bool
    ) -> RecordedOnFailure:
        """Record the request's row when the attempts fail, or the client goes away, then re-raise."""
        return RecordedOnFailure(
            lambda: self._record(ctx, admitted.workload, admitted.route.name, streamed, outcome), outcome
        )

    def _outcome(self, admitted: Admitted) -> Outcome:
        return Outcome(status=200, policy=admitted.note(), data_class=admitted.decision.data_class)

    # -- chat ------------------------------------------------------------------------------------------

    async def chat(self, ctx: RequestContext, admitted: Admitted, body: JSON) -> ChatResult:
        outcome = self._outcome(admitted)
        plan = self._plan(ctx, admitted, body, outcome)
        key = self._cache_key(ctx, admitted, body)
        cached = await self.cache.get(admitted.workload.name, key) if key else None
        if cached is not None:
            self._record_hit(ctx, admitted, body, outcome, cached, streamed=False)
            return ChatResult(body=cached.body, usage=cached.usage)
        red = self._redact(admitted, body, outcome)
        with self._recorded_on_failure(ctx, admitted, outcome, streamed=False):
            served = await self._complete(ctx, admitted, plan, red.body, outcome)
        if red.vault is not None:
            served = replace(served, result=restore_result(served.result, red.vault))
        self._finish(ctx, admitted, red.body, outcome, served, streamed=False)
        if key and served.accepted:
            await self.cache.put(admitted.workload.name, key, self._cache_entry(served))
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
                reason = await judge(ctx, self.targets, validators, body, text, outcome)
            return reason

        needs_check = schema is not None or bool(validators)
        return await self.runner.run(ctx, plan, call, outcome, accept if needs_check else None, on_success)

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

    async def stream_chat(self, ctx: RequestContext, admitted: Admitted, body: JSON) -> ClientStream:
        """Open the stream the client gets. A failure before its first token is raised (the HTTP layer
        answers with a status; retries and fallbacks happen before that); after it, the client gets an
        explicit error event and never ``[DONE]``."""
        options = body.get("stream_options")
        wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        outcome = self._outcome(admitted)
        plan = self._plan(ctx, admitted, body, outcome)
        key = self._cache_key(ctx, admitted, body)
        cached = await self.cache.get(admitted.workload.name, key) if key else None
        if cached is not None:
            self._record_hit(ctx, admitted, body, outcome, cached, streamed=True)
            return Frames(answer_frames(cached.body, cached.usage, wants_usage))
        red = self._redact(admitted, body, outcome)
        if admitted.route.validators:
            # A cascade must see the whole answer before accepting it: the client gets it as one stream.
            return await self._stream_buffered(ctx, admitted, plan, red, outcome, wants_usage, key)
        with self._recorded_on_failure(ctx, admitted, outcome, streamed=True):
            open_stream = opener(red.body, wants_usage, self.config.resilience.ttft_timeout_s)
            served = await self.runner.run(ctx, plan, open_stream, outcome)
        self._launch_shadow(ctx, admitted, plan, red.body)
        workload, route = admitted.workload, admitted.route.name
        return Relay(
            ctx,
            red.body,
            outcome,
            served,
            wants_usage=wants_usage,
            log_content=workload.log_content,
            restorer=StreamRestorer(red.vault) if red.vault is not None else None,
            record=lambda: self._record(ctx, workload, route, True, outcome),
        )

    async def _stream_buffered(
        self,
        ctx: RequestContext,
        admitted: Admitted,
        plan: Plan[Target],
        red: Redaction,
        outcome: Outcome,
        wants_usage: bool,
        key: str | None,
    ) -> Frames:
        with self._recorded_on_failure(ctx, admitted, outcome, streamed=True):
            served = await self._complete(ctx, admitted, plan, red.body, outcome)
        outcome.ttft_seconds = perf_counter() - ctx.t0
        if red.vault is not None:
            served = replace(served, result=restore_result(served.result, red.vault))
        frames = answer_frames(served.result.body, served.result.usage, wants_usage)
        self._finish(ctx, admitted, red.body, outcome, served, streamed=True)
        if key and served.accepted:
            await self.cache.put(admitted.workload.name, key, self._cache_entry(served))
        self._launch_shadow(ctx, admitted, plan, red.body)
        return Frames(frames)

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
        outcome = self._outcome(admitted)
        shadow_ctx = await mirror(ctx, target, body, outcome, admitted.workload.log_content)
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

        with self._recorded_on_failure(ctx, admitted, outcome, streamed=False):
            served = await self.runner.run(ctx, plan, call, outcome, on_success=on_success)
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
        await self.cache.close()

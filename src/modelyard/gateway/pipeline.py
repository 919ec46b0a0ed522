"""The gateway core, wired: admission → executor → recorder.

A request is admitted once (:mod:`~modelyard.gateway.admission`: a pure function returning an immutable
plan, or a refusal carrying what it had decided), carried out by the executor
(:mod:`~modelyard.gateway.executor`: cache, attempts, stream, shadow), and recorded once whatever happens
(:mod:`~modelyard.gateway.recording`). With a ``governance:`` section, admission's last step is the
budget reservation (:mod:`~modelyard.gateway.budgeting`), which the recorder settles. This module builds
them at start-up and holds them together.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from modelyard.catalog.prices import PriceCatalog
from modelyard.config.schema import Config
from modelyard.errors import ModelyardError
from modelyard.gateway.admission import Refused, RequestMeta, RequestPlan, Tables, admit
from modelyard.gateway.attempts import AttemptRunner
from modelyard.gateway.auth import Caller, KeyRing
from modelyard.gateway.budget_metrics import BudgetGauges
from modelyard.gateway.budgeting import reserve_async, send_output_bound
from modelyard.gateway.executor import Executor
from modelyard.gateway.metering import Outcome, RequestContext
from modelyard.gateway.metrics import GatewayMetrics
from modelyard.gateway.passthrough import Endpoint, forward, forward_stream
from modelyard.gateway.recording import LedgerSink, Recorder
from modelyard.gateway.streaming import ClientStream
from modelyard.gateway.targets import Target, build_routes, build_targets
from modelyard.governance.model import Subject
from modelyard.governance.runtime import Governance
from modelyard.providers.base import JSON, Adapter, ChatResult, EmbeddingResult
from modelyard.routing.breaker import Breakers
from modelyard.routing.cache import ResponseCache

if TYPE_CHECKING:
    from modelyard.gateway.tracing import Tracing

__all__ = ["Gateway", "LedgerSink", "Refused", "RequestPlan"]

#: What a step of the executor returns (an answer, a stream).
Done = TypeVar("Done")


class Gateway:
    """Everything a request needs, built once at start-up."""

    def __init__(
        self,
        config: Config,
        adapters: Mapping[str, Adapter],
        catalog: PriceCatalog,
        ledger: LedgerSink,
        *,
        governance: Governance | None = None,
        rng: random.Random | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.config = config
        self.adapters = dict(adapters)
        self.ledger = ledger
        self.targets = build_targets(config, adapters, catalog)
        self.routes = build_routes(config, self.targets)
        self.breakers = Breakers(config.resilience.breaker)
        self.governance = governance
        self.keys = KeyRing(config.auth, governance.keys if governance else None)
        self.metrics = GatewayMetrics(self.breakers, self.routes, config.workloads)
        if tracing is None and config.tracing.enabled:
            # Imported here: the OpenTelemetry SDK's objects, loaded by a gateway that does not trace,
            # would cost every request (more for the garbage collector to walk).
            from modelyard.gateway.tracing import Tracing

            tracing = Tracing(config.tracing)
        #: None unless ``tracing.enabled`` (or a test's tracer): then requests pay nothing for tracing.
        self.tracing = tracing
        self.recorder = Recorder(ledger, self.metrics, governance, self.tracing)
        if governance is not None:
            self.metrics.add(BudgetGauges(governance, config))
        caching = {n: w.cache for n, w in config.workloads.items() if w.cache is not None}
        self.cache = ResponseCache(caching, config.redis.url if config.redis else None)
        self.tables = Tables(config, self.routes, frozenset(caching))
        self.rng = rng or random.Random()
        runner = AttemptRunner(config.resilience, self.breakers)
        self.executor = Executor(
            runner, self.targets, self.cache, self.recorder, config.resilience.ttft_timeout_s
        )

    def _available(self, target: Target) -> bool:
        return self.breakers[target.public_model].available()

    def admit(self, ctx: RequestContext, meta: RequestMeta, body: JSON, caller: Caller | None) -> RequestPlan:
        """The request's plan; a refusal is recorded (with what admission had decided), then raised as
        the error the client gets."""
        if meta.template_id is not None:
            ctx.template_id, ctx.template_version = meta.template_id, meta.template_version
        if self.tracing is not None:
            self.tracing.start(ctx, meta.traceparent)
        try:
            plan = admit(
                self.tables, meta, body, caller, self._available, self.rng, self.breakers.not_closed == 0
            )
        except Refused as refusal:
            self.recorder.refused(ctx, refusal)
            raise refusal.error from None
        if self.governance is not None:  # awaited by the async step that follows (chat, stream_chat, ...)
            ctx.reserving = partial(self._reserve, ctx, meta, body, caller, plan)
        return plan

    async def _reserve(
        self, ctx: RequestContext, meta: RequestMeta, body: JSON, caller: Caller | None, plan: RequestPlan
    ) -> None:
        """Admission's last step: hold the request's worst-case cost on its budgets and rate limits
        (``ctx.hold``, settled by the recorder), in this event-loop turn's batch (embedded store) or off
        the loop (network store). A refusal's row keeps the plan admission had made; a client gone
        meanwhile gets its row too."""
        assert self.governance is not None
        ctx.reserving = None
        subject = Subject(ctx.tenant, ctx.api_key_id, plan.workload.name)
        candidates, budgets = plan.attempts.candidates, caller.budgets if caller else ()
        try:
            ctx.hold = hold = await reserve_async(
                self.governance, subject, body, meta.kind, candidates, budgets
            )
            send_output_bound(hold, plan.redaction.body)
        except ModelyardError as error:
            route = f"{plan.attempts.describe()}; refused ({error.kind})"
            self.recorder.refused(ctx, Refused(error, plan.facts, route))
            raise
        except asyncio.CancelledError:
            outcome = Outcome(499, "client_cancelled", client_cancelled=True, route=plan.attempts.describe())
            self.recorder.record(ctx, plan.facts, outcome)
            raise

    def chat(self, ctx: RequestContext, plan: RequestPlan) -> Awaitable[ChatResult]:
        # Not ``async``: without a reservation to await first, the executor's coroutine itself is handed
        # back, one coroutine layer fewer on every request.
        if ctx.reserving is not None:
            return self._reserved(ctx.reserving, self.executor.chat, ctx, plan)
        return self.executor.chat(ctx, plan)

    @staticmethod
    async def _reserved(
        reserving: Callable[[], Awaitable[None]],
        step: Callable[[RequestContext, RequestPlan], Awaitable[Done]],
        ctx: RequestContext,
        plan: RequestPlan,
    ) -> Done:
        """``step`` once the budget reservation admission left is held."""
        await reserving()
        return await step(ctx, plan)

    def stream_chat(self, ctx: RequestContext, plan: RequestPlan) -> Awaitable[ClientStream]:
        if ctx.reserving is not None:
            return self._reserved(ctx.reserving, self.executor.stream_chat, ctx, plan)
        return self.executor.stream_chat(ctx, plan)

    def embeddings(self, ctx: RequestContext, plan: RequestPlan) -> Awaitable[EmbeddingResult]:
        if ctx.reserving is not None:
            return self._reserved(ctx.reserving, self.executor.embeddings, ctx, plan)
        return self.executor.embeddings(ctx, plan)

    async def forward(self, ctx: RequestContext, plan: RequestPlan, endpoint: Endpoint) -> bytes:
        """An OpenAI-family endpoint forwarded as it is (gateway/passthrough.py); its raw answer."""
        if ctx.reserving is not None:
            await ctx.reserving()
        return await forward(self.executor.runner, self.recorder, ctx, plan, endpoint)

    async def forward_stream(
        self, ctx: RequestContext, plan: RequestPlan, endpoint: Endpoint
    ) -> ClientStream:
        if ctx.reserving is not None:
            await ctx.reserving()
        return await forward_stream(self.executor.runner, self.recorder, ctx, plan, endpoint)

    async def close(self) -> None:
        background = self.executor.background
        if background:
            await asyncio.wait(background, timeout=10)
        for adapter in self.adapters.values():
            await adapter.close()
        await self.cache.close()
        if self.tracing is not None:
            # Exports what is still batched: a blocking HTTP call, kept off the event loop.
            await asyncio.to_thread(self.tracing.shutdown)

"""The executor: carry out an admitted :class:`RequestPlan` — the cache, the attempts, the stream, the
shadow — and record how it ended.

It decides nothing about where a request may go (admission did, once); it goes there, in the plan's
order, through the attempt runner's retries and fallbacks, and leaves every ending to the recorder.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping
from dataclasses import replace
from time import perf_counter

import orjson

from modelyard.gateway.admission import RequestPlan
from modelyard.gateway.attempts import AttemptRunner, Served
from modelyard.gateway.cached import answer_frames
from modelyard.gateway.metering import Outcome, RequestContext, cost_of, tool_calls_in
from modelyard.gateway.recording import Recorder
from modelyard.gateway.redaction import StreamRestorer, restore_result
from modelyard.gateway.side_calls import judge, mirror
from modelyard.gateway.streaming import ClientStream, Frames, Relay
from modelyard.gateway.targets import Target
from modelyard.gateway.unvalidated import billing_note
from modelyard.providers.base import ChatCall, ChatResult, EmbeddingCall, EmbeddingResult
from modelyard.routing.cache import CachedAnswer, ResponseCache
from modelyard.routing.validators import answer_text, first_failure, requested_schema, schema_violation


class Executor:
    """Runs plans: one per gateway, built at start-up."""

    def __init__(
        self,
        runner: AttemptRunner,
        targets: Mapping[str, Target],
        cache: ResponseCache,
        recorder: Recorder,
        ttft_timeout_s: float | None,
    ) -> None:
        self.runner, self.targets, self.cache, self.recorder = runner, targets, cache, recorder
        self.ttft_timeout_s = ttft_timeout_s
        self.background: set[asyncio.Task[None]] = set()

    # -- chat ------------------------------------------------------------------------------------------

    async def chat(self, ctx: RequestContext, plan: RequestPlan) -> ChatResult:
        outcome = Outcome(200, route=plan.attempts.describe())
        # The optional steps are tested here rather than entered: most requests take none of them.
        if plan.cache_key is not None:
            cached = await self._cached(ctx, plan, outcome)
            if cached is not None:
                return ChatResult(body=cached.body, usage=cached.usage)
        served = await self._complete(ctx, plan, outcome)
        self._finish(ctx, plan, outcome, served)
        if plan.cache_key is not None:
            await self._store(plan, served)
        if plan.attempts.shadow is not None:
            self._launch_shadow(ctx, plan)
        return served.result

    async def stream_chat(self, ctx: RequestContext, plan: RequestPlan) -> ClientStream:
        """Open the stream the client gets. A failure before its first token is raised (the HTTP layer
        answers with a status; retries and fallbacks happen before that); after it, the client gets an
        explicit error event and never ``[DONE]``."""
        outcome = Outcome(200, route=plan.attempts.describe())
        if plan.cache_key is not None:  # tested here: most requests have no cache, and a call costs more
            cached = await self._cached(ctx, plan, outcome)
            if cached is not None:
                return Frames(answer_frames(cached.body, cached.usage, plan.wants_usage))
        if plan.route.validators:
            # A cascade must see the whole answer before accepting it: the client gets it as one stream.
            served = await self._complete(ctx, plan, outcome)
            outcome.ttft_seconds = perf_counter() - ctx.t0
            self._finish(ctx, plan, outcome, served)  # sets result.rejection when validation failed
            result = served.result
            frames = answer_frames(result.body, result.usage, plan.wants_usage, rejection=result.rejection)
            await self._store(plan, served)
            self._launch_shadow(ctx, plan)
            return Frames(frames, result.rejection)
        red = plan.redaction
        relay = Relay(
            ctx,
            red.body,
            outcome,
            self.recorder,
            plan.facts,
            wants_usage=plan.wants_usage,
            log_content=plan.workload.log_content,
            restorer=StreamRestorer(red.vault) if red.vault is not None else None,
            ttft_timeout=self.ttft_timeout_s,
        )
        attempt = relay.open if self.ttft_timeout_s is None else relay.open_in_time
        try:
            await self.runner.run(ctx, plan.attempts, attempt, outcome)
        except BaseException as error:
            self.recorder.failed(ctx, plan.facts, outcome, error)
            raise
        if plan.attempts.shadow is not None:
            self._launch_shadow(ctx, plan)
        return relay

    async def _complete(self, ctx: RequestContext, plan: RequestPlan, outcome: Outcome) -> Served[ChatResult]:
        """The plan's attempts for one whole answer, checked by the route's validators (and a schema the
        request asks for); pseudonyms restored. A failure is recorded, then raised."""
        body = plan.redaction.body
        validators = plan.route.validators
        schema = requested_schema(body) if "response_format" in body else None

        # Not ``async``: it hands over the adapter's own coroutine, one coroutine layer fewer per attempt.
        def call(target: Target) -> Awaitable[ChatResult]:
            return target.adapter.complete(ChatCall(body, target.upstream_model))

        def on_success(target: Target, result: ChatResult, seconds: float) -> None:
            model = result.body.get("model")
            outcome.answered(ctx, target, result.usage, seconds, model if isinstance(model, str) else None)

        check = None
        if schema is not None or validators:

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

            check = accept
        try:
            served = await self.runner.run(ctx, plan.attempts, call, outcome, check, on_success)
        except BaseException as error:
            self.recorder.failed(ctx, plan.facts, outcome, error)
            raise
        vault = plan.redaction.vault
        return served if vault is None else replace(served, result=restore_result(served.result, vault))

    def _finish(
        self, ctx: RequestContext, plan: RequestPlan, outcome: Outcome, served: Served[ChatResult]
    ) -> None:
        result = served.result
        outcome.target, outcome.usage, outcome.finish_reason = (
            served.target,
            result.usage,
            result.finish_reason,
        )
        model = result.body.get("model")
        outcome.upstream_model = model if isinstance(model, str) else None
        outcome.tool_calls = tool_calls_in(result.body)
        if not served.accepted:
            outcome.error_kind = "validation_failed"
            outcome.route = f"{outcome.route}; {billing_note(outcome.attempts)}"
            result.rejection = served.rejection or "failed validation"
        if plan.workload.log_content:
            outcome.prompt = orjson.dumps(plan.redaction.body.get("messages")).decode()
            outcome.completion = orjson.dumps(result.body.get("choices")).decode()
        self.recorder.record(ctx, plan.facts, outcome)

    # -- cache and shadow ------------------------------------------------------------------------------

    async def _cached(self, ctx: RequestContext, plan: RequestPlan, outcome: Outcome) -> CachedAnswer | None:
        """A cached answer to the plan's request, its hit recorded; None on a miss or without a cache."""
        if plan.cache_key is None:
            return None
        cached = await self.cache.get(plan.workload.name, plan.cache_key)
        if cached is None:
            return None
        outcome.cache_hit, outcome.cost_saved_pico_usd = True, cached.cost_pico_usd
        outcome.route = f"cache hit (answered earlier by {cached.served_by})"
        outcome.finish_reason = "stop"
        outcome.tool_calls = tool_calls_in(cached.body)
        self.recorder.record(ctx, plan.facts, outcome)
        return cached

    async def _store(self, plan: RequestPlan, served: Served[ChatResult]) -> None:
        if plan.cache_key is None or not served.accepted:
            return
        cost, _ = cost_of(served.target, served.result.usage)
        answer = CachedAnswer(served.result.body, served.result.usage, cost, served.target.public_model)
        await self.cache.put(plan.workload.name, plan.cache_key, answer)

    def _launch_shadow(self, ctx: RequestContext, plan: RequestPlan) -> None:
        if plan.attempts.shadow is None:
            return
        task = asyncio.get_running_loop().create_task(self._shadow(ctx, plan, plan.attempts.shadow))
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    async def _shadow(self, ctx: RequestContext, plan: RequestPlan, target: Target) -> None:
        """Mirror the request to the shadow target, off the request path; its own row points back."""
        outcome = Outcome(status=200)
        shadow_ctx = await mirror(ctx, target, plan.redaction.body, outcome, plan.workload.log_content)
        facts = plan.facts._replace(model=target.public_model, streamed=False)
        self.recorder.record(shadow_ctx, facts, outcome)

    # -- embeddings ------------------------------------------------------------------------------------

    async def embeddings(self, ctx: RequestContext, plan: RequestPlan) -> EmbeddingResult:
        outcome = Outcome(200, route=plan.attempts.describe())
        inputs = plan.redaction.body

        def call(target: Target) -> Awaitable[EmbeddingResult]:
            return target.adapter.embed(EmbeddingCall(body=inputs, upstream_model=target.upstream_model))

        def on_success(target: Target, result: EmbeddingResult, seconds: float) -> None:
            outcome.answered(ctx, target, result.usage, seconds)

        try:
            served = await self.runner.run(ctx, plan.attempts, call, outcome, on_success=on_success)
        except BaseException as error:
            self.recorder.failed(ctx, plan.facts, outcome, error)
            raise
        outcome.target, outcome.usage = served.target, served.result.usage
        self.recorder.record(ctx, plan.facts, outcome)
        return served.result

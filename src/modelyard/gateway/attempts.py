"""Try a plan's targets: retries with back-off on one target, then fallback to the next.

Only failures before any byte reached the client come here, so every retry is safe. A retryable
failure (429, 5xx, timeout, refused connection) is retried on the same target with exponential back-off
and jitter (tenacity), honouring ``Retry-After`` up to ``max_retry_after_s``; a longer wait moves on to the
next target instead. A client error (400) is returned at once: another provider would refuse it too.
Every attempt is recorded, and feeds its target's circuit breaker.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from time import perf_counter
from typing import Generic, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from modelyard.config.routing import ResilienceConfig
from modelyard.errors import UpstreamError, UpstreamUnavailable
from modelyard.gateway.metering import Outcome, RequestContext, attempt_row
from modelyard.gateway.targets import Target
from modelyard.routing.breaker import Breakers
from modelyard.routing.plan import Plan

R = TypeVar("R")


class Rejected(Exception):
    """An answer arrived but a validator refused it (cascade, or a requested JSON schema)."""

    def __init__(self, reason: str, result: object) -> None:
        super().__init__(reason)
        self.reason = reason
        self.result = result


@dataclass(slots=True)
class Served(Generic[R]):
    target: Target
    result: R
    #: False when every target's answer was rejected and this is the last one, returned anyway.
    accepted: bool = True
    rejection: str | None = None


def falls_back(error: UpstreamError) -> bool:
    """Whether another target may succeed where this one failed."""
    return error.status != 400


def hurts_health(error: UpstreamError) -> bool:
    """Whether a failure counts against the target's circuit breaker (the client's mistakes do not)."""
    return error.status >= 429 or error.code == "upstream_auth_failed"


class AttemptRunner:
    def __init__(self, config: ResilienceConfig, breakers: Breakers) -> None:
        self.config = config
        self.breakers = breakers
        retries = config.retries
        self._backoff = wait_exponential_jitter(
            multiplier=retries.backoff_base_ms / 1000,
            max=retries.backoff_max_ms / 1000,
            jitter=retries.backoff_base_ms / 1000,
        )

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        backoff = float(self._backoff(state))
        if isinstance(error, UpstreamError) and error.retry_after:
            return max(error.retry_after, backoff)
        return backoff

    def _retryable(self, error: BaseException, single_target: bool) -> bool:
        if isinstance(error, Rejected):
            return single_target  # with nowhere to escalate, ask the same model again
        if not isinstance(error, UpstreamError) or not error.retryable:
            return False
        return error.retry_after is None or error.retry_after <= self.config.retries.max_retry_after_s

    @staticmethod
    async def _sleep(outcome: Outcome, seconds: float) -> None:
        outcome.backoff_seconds += seconds
        await asyncio.sleep(seconds)

    async def run(
        self,
        ctx: RequestContext,
        plan: Plan[Target],
        call: Callable[[Target], Awaitable[R]],
        outcome: Outcome,
        accept: Callable[[R], Awaitable[str | None]] | None = None,
        on_success: Callable[[Target, R, float], None] | None = None,
    ) -> Served[R]:
        """The first acceptable result from ``plan``'s targets; raises the last error if none answered.

        ``call`` raises UpstreamError on failure. Failures are recorded here; a success is passed to
        ``on_success(target, result, seconds)``, which records it (only the caller knows its usage). A
        result ``accept`` rejects has its attempt marked ``rejected``.
        """
        last_error: UpstreamError | None = None
        last_rejected: Served[R] | None = None
        notes: list[str] = []
        single = len(plan.candidates) == 1
        for target in plan.candidates:
            if not self.breakers[target.public_model].available():
                notes.append(f"{target.public_model}: circuit open")
                continue
            try:
                try:  # the common case: one plain attempt, no closure and no retry machinery built
                    result = await self._attempt(ctx, target, call, outcome, accept, on_success)
                except (UpstreamError, Rejected) as first:
                    result = await self._retry(ctx, target, call, outcome, accept, on_success, single, first)
                outcome.route = plan.served_by(target) if not notes else _describe(plan, notes, target)
                return Served(target, result)
            except Rejected as rejected:
                notes.append(f"{target.public_model}: rejected ({rejected.reason})")
                last_rejected = Served(target, rejected.result, accepted=False, rejection=rejected.reason)  # type: ignore[arg-type]
            except UpstreamError as error:
                notes.append(f"{target.public_model}: {error.kind}")
                last_error = error
                outcome.target = target
                if not falls_back(error):
                    outcome.route = _describe(plan, notes, None)
                    raise
        outcome.route = _describe(plan, notes, last_rejected.target if last_rejected else None)
        if last_rejected is not None:
            return last_rejected
        if last_error is not None:
            raise last_error
        raise UpstreamUnavailable(
            "no target of this route is available (all circuits open)", provider="gateway", status=503
        )

    async def _retry(
        self,
        ctx: RequestContext,
        target: Target,
        call: Callable[[Target], Awaitable[R]],
        outcome: Outcome,
        accept: Callable[[R], Awaitable[str | None]] | None,
        on_success: Callable[[Target, R, float], None] | None,
        single: bool,
        first: UpstreamError | Rejected,
    ) -> R:
        """After a first attempt failed: tenacity's retries with back-off on the same target, when the
        failure is retryable; else the failure again."""
        if self.config.retries.max_retries == 0 or not self._retryable(first, single):
            raise first
        await self._sleep(outcome, self._first_wait(first))

        async def sleep(seconds: float) -> None:
            await self._sleep(outcome, seconds)

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.config.retries.max_retries),
            wait=self._wait,
            retry=retry_if_exception(lambda error: self._retryable(error, single)),
            sleep=sleep,
            reraise=True,
        )
        async for retry in retrying:
            with retry:
                return await self._attempt(ctx, target, call, outcome, accept, on_success)
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover

    async def _attempt(
        self,
        ctx: RequestContext,
        target: Target,
        call: Callable[[Target], Awaitable[R]],
        outcome: Outcome,
        accept: Callable[[R], Awaitable[str | None]] | None,
        on_success: Callable[[Target, R, float], None] | None,
    ) -> R:
        """One call, recorded and fed to the target's breaker; its answer checked by ``accept`` when there
        is one."""
        breaker = self.breakers[target.public_model]
        breaker.started()
        started = perf_counter()
        try:
            result = await call(target)
        except UpstreamError as error:
            seconds = perf_counter() - started
            outcome.upstream_seconds += seconds
            if hurts_health(error):
                breaker.failed()
            else:
                breaker.succeeded()
            outcome.attempts.append(
                attempt_row(
                    ctx,
                    len(outcome.attempts) + 1,
                    target,
                    status=error.status,
                    error_kind=error.kind,
                    seconds=seconds,
                )
            )
            raise
        except BaseException:
            # Cancelled, or a failure inside the gateway: not the target's fault, but the probe is over.
            breaker.abandoned()
            raise
        breaker.succeeded()
        if on_success is not None:
            on_success(target, result, perf_counter() - started)
        if accept is None:
            return result
        answer_row = outcome.attempts[-1] if outcome.attempts else None  # on_success appended it
        reason = await accept(result)
        if reason is not None:
            if answer_row is not None:
                answer_row.error_kind = "rejected"  # not a judge row the validator may have added
            raise Rejected(reason, result)
        return result

    def _first_wait(self, error: BaseException) -> float:
        base = self.config.retries.backoff_base_ms / 1000
        retry_after = error.retry_after if isinstance(error, UpstreamError) else None
        return max(retry_after or 0.0, base + random.uniform(0, base))


def _describe(plan: Plan[Target], notes: list[str], served_by: Target | None) -> str:
    parts = [plan.describe(), *notes]
    if served_by is not None:
        parts.append(f"served by {served_by.public_model}")
    return "; ".join(parts)

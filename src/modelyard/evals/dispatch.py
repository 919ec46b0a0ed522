"""Every model call of a run, candidates' and judges' alike, goes through one :class:`Dispatcher`.

It holds the run's three limits, so a judge can never overrun what the candidates are held to:

- **concurrency**: at most ``concurrency`` calls in flight (one semaphore for the whole run);
- **rate**: a leaky bucket per provider (``aiolimiter``), taken inside the concurrency slot;
- **retries**: a transient failure (429, 5xx, a timeout, a refused connection: ``UpstreamError.retryable``)
  is tried again with exponential back-off and jitter (tenacity), waiting at least the provider's
  ``Retry-After``. A ``Retry-After`` longer than ``max_retry_after_s`` is not waited for: the case fails
  now (failed calls are not cached, so the next run tries it again).

The back-off sleeps happen *outside* the concurrency slot: a rate-limited provider does not hold slots
that calls to other providers could use.

With a meter (metering.py), every call is recorded in the ledger once it ends, with each of its attempts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping
from dataclasses import dataclass
from time import perf_counter, time
from typing import Any

from aiolimiter import AsyncLimiter
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from modelyard.errors import UpstreamError, UpstreamTimeout
from modelyard.evals.calls import CANDIDATE, CallResult, CallTag, ModelParams, complete, failed
from modelyard.evals.metering import Attempt, EvalMeter, Trail
from modelyard.gateway.targets import Target


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    #: Attempts after the first one, for transient failures only.
    retries: int = 3
    #: First back-off in seconds; it doubles per retry (capped at ``max_s``), plus up to as much jitter.
    backoff_s: float = 0.5
    max_s: float = 20.0
    #: Longest ``Retry-After`` waited for; a longer one fails the case at once.
    max_retry_after_s: float = 60.0


def _limiter(rate: float) -> AsyncLimiter:
    # A bucket of one second's worth of requests (at least one), refilled at ``rate`` per second.
    burst = max(1.0, rate)
    return AsyncLimiter(burst, burst / rate)


class Dispatcher:
    """Sends the run's model calls within its concurrency bound, provider rates and retry policy."""

    def __init__(
        self,
        concurrency: int = 8,
        rates: Mapping[str, float] | None = None,
        retry: RetryPolicy | None = None,
        timeout_s: float | None = None,
        meter: EvalMeter | None = None,
    ) -> None:
        self.slots = asyncio.Semaphore(max(1, concurrency))
        self.limiters = {p: _limiter(r) for p, r in (rates or {}).items() if r > 0}
        self.retry = retry or RetryPolicy()
        self.timeout_s = timeout_s
        self.meter = meter
        #: Extra attempts made after transient failures.
        self.retries = 0

    async def call(
        self, target: Target, messages: list[dict[str, Any]], params: ModelParams, tag: CallTag = CANDIDATE
    ) -> CallResult:
        """The model's answer, or a failed result once the retries are spent (never raises for upstream
        failures), recorded under ``tag`` when the run has a meter. A call abandoned mid-way (the run
        cancelled) is not recorded: whether the provider billed it is unknown."""
        trail = Trail()
        result = await self._call(target, messages, params, trail)
        if self.meter is not None:
            self.meter.record(target, tag, trail, result)
        return result

    async def _call(
        self, target: Target, messages: list[dict[str, Any]], params: ModelParams, trail: Trail
    ) -> CallResult:
        """The first attempt is a plain call: the common case pays for no retry machinery."""
        started = perf_counter()
        try:
            return await self._once(target, messages, params, trail)
        except UpstreamError as first:
            if self.retry.retries <= 0 or not self._retryable(first):
                return failed(first, (perf_counter() - started) * 1000)
            await self._sleep_before(1, first)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.retry.retries),
            wait=self._wait,
            retry=retry_if_exception(self._retryable),
            before_sleep=self._count_retry,
            reraise=True,
        )
        tries = 1
        try:
            async for attempt in retrying:
                with attempt:
                    tries += 1
                    return await self._once(target, messages, params, trail)
        except UpstreamError as error:
            return failed(error, (perf_counter() - started) * 1000, tries)
        raise AssertionError("unreachable: tenacity returns or re-raises")  # pragma: no cover

    async def _once(
        self, target: Target, messages: list[dict[str, Any]], params: ModelParams, trail: Trail
    ) -> CallResult:
        limiter = self.limiters.get(target.provider)
        async with self.slots:
            if limiter is not None:
                await limiter.acquire()
            ts, started = time(), perf_counter()
            try:
                async with asyncio.timeout(self.timeout_s):
                    result = await complete(target, messages, params)
            except TimeoutError:
                error = UpstreamTimeout(
                    f"no answer within {self.timeout_s:g} s", provider=target.provider, code="timeout"
                )
                trail.attempts.append(Attempt(ts, perf_counter() - started, error.status, error.kind))
                raise error from None
            except UpstreamError as error:
                trail.attempts.append(Attempt(ts, perf_counter() - started, error.status, error.kind))
                raise
            trail.attempts.append(Attempt(ts, perf_counter() - started, 200, usage=result.usage))
            return result

    def _retryable(self, error: BaseException) -> bool:
        if not isinstance(error, UpstreamError) or not error.retryable:
            return False
        return error.retry_after is None or error.retry_after <= self.retry.max_retry_after_s

    def delay(self, retry: int, error: BaseException | None) -> float:
        """Before retry number ``retry`` (from 1): exponential back-off plus jitter, at least Retry-After."""
        policy = self.retry
        exponential = min(policy.max_s, policy.backoff_s * 2.0 ** (retry - 1))
        # Jitter spreads the retries of calls that failed together, so they do not collide again.
        backoff = exponential + random.uniform(0, policy.backoff_s)
        retry_after = error.retry_after if isinstance(error, UpstreamError) else None
        return max(retry_after or 0.0, backoff)

    async def _sleep_before(self, retry: int, error: BaseException) -> None:
        self.retries += 1
        await asyncio.sleep(self.delay(retry, error))

    def _wait(self, state: RetryCallState) -> float:
        # Tenacity's attempt n is the (n + 1)th call: the first was made before the retry loop.
        error = state.outcome.exception() if state.outcome else None
        return self.delay(state.attempt_number + 1, error)

    def _count_retry(self, state: RetryCallState) -> None:
        self.retries += 1

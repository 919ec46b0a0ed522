"""Requests and tokens per minute on the ``limits`` package (``governance.rate_limits_in: limits``).

By default (``rate_limits_in: store``) rate limits are fixed-minute budgets in the budget store instead
(``RateLimitConfig.as_budgets``): exact across processes, checked with the budgets in one round trip.

Built on the ``limits`` package (its sliding-window-counter strategy: two fixed-window counters weighted
by how far into the current minute we are, so no 2x burst at a minute boundary, and a token cost is one
increment, not one entry per token as its moving window would store). Storage by URI: ``memory://``
counts in this process (one worker); ``redis://...`` shares the limits across workers and replicas (each
limit checked is one Redis call: a check of key, tenant and workload limits costs a few round trips).
On the embedded path with ``--workers N``, a limit that must hold across processes is a budget in the
SQLite store with ``unit: requests`` or ``tokens`` and a 60-second ``period`` window (a fixed window).

Tokens are counted at admission with the reservation's estimate (prompt bound + output bound), like
OpenAI's own token limits; a request that used more than its estimate is charged the rest when settled.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import storage_from_string
from limits.strategies import SlidingWindowCounterRateLimiter

from modelyard.governance.config import GovernanceConfig, RateLimitConfig
from modelyard.governance.model import EACH, RateLimited, Scope, Subject


@dataclass(frozen=True, slots=True)
class _Check:
    item: RateLimitItem
    ids: tuple[str, ...]
    cost: int
    label: str
    scope: Scope
    subject: str


class RateLimiter:
    def __init__(
        self,
        limits: tuple[RateLimitConfig, ...],
        storage_uri: str = "memory://",
        *,
        key_prefix: str = "myd:rl",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._limits = limits
        options = {"key_prefix": key_prefix} if storage_uri.startswith("redis") else {}
        self._storage = storage_from_string(storage_uri, **options)
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._clock = clock  # only turns the library's reset time into seconds to wait

    @classmethod
    def from_config(cls, config: GovernanceConfig, storage_uri: str = "memory://") -> RateLimiter:
        return cls(config.rate_limits, storage_uri)

    def admit(self, subject: Subject, tokens: int) -> None:
        """Count one request of ``tokens`` (estimated) against every limit that applies, or raise
        :class:`RateLimited` with the longest wait among the limits it would break, counting nothing."""
        checks = self._checks(subject, tokens)
        blocked = [c for c in checks if not self._limiter.test(c.item, *c.ids, cost=c.cost)]
        if blocked:
            waits = [(self._wait(c), c) for c in blocked]
            wait, worst = max(waits, key=lambda pair: pair[0])
            raise RateLimited(worst.label, worst.scope, worst.subject, wait)
        for c in checks:
            self._limiter.hit(c.item, *c.ids, cost=c.cost)

    def charge(self, subject: Subject, extra_tokens: int) -> None:
        """Tokens used beyond the admission estimate: counted, never refused (the call is over)."""
        if extra_tokens <= 0:
            return
        for c in self._checks(subject, extra_tokens):
            if c.label.endswith("tokens/min"):
                self._limiter.hit(c.item, *c.ids, cost=min(c.cost, c.item.amount))

    def reset(self) -> None:
        self._storage.reset()

    def _checks(self, subject: Subject, tokens: int) -> list[_Check]:
        checks = []
        for i, limit in enumerate(self._limits):
            value = subject.of(limit.scope)
            if value is None or (limit.subject not in (EACH, value)):
                continue
            ids = (str(i), limit.scope, value)
            if limit.requests_per_minute is not None:
                rpm = RateLimitItemPerMinute(limit.requests_per_minute, namespace="req")
                checks.append(
                    _Check(rpm, ids, 1, f"{limit.requests_per_minute} requests/min", limit.scope, value)
                )
            if limit.tokens_per_minute is not None:
                tpm = RateLimitItemPerMinute(limit.tokens_per_minute, namespace="tok")
                # A single request larger than the whole minute's tokens could never pass: it is
                # counted as the whole minute, so it waits for an empty window instead of failing forever.
                cost = min(tokens, limit.tokens_per_minute)
                checks.append(
                    _Check(tpm, ids, cost, f"{limit.tokens_per_minute} tokens/min", limit.scope, value)
                )
        return checks

    def _wait(self, check: _Check) -> int:
        stats = self._limiter.get_window_stats(check.item, *check.ids)
        return max(1, min(60, int(stats.reset_time - self._clock() + 0.999)))

"""A circuit breaker per target: stop sending traffic to a target that keeps failing, probe it later.

States: *closed* (traffic flows; failures are counted in a sliding window), *open* (after ``failures``
failures within ``window_s``: the target is skipped for ``cooldown_s``), *half-open* (one probe request
is let through; success closes the circuit, failure opens it again). Time comes from an injected clock,
so the state machine is tested from tables without sleeping. Written here because the maintained
breaker libraries wrap a call (sync or Tornado) instead of exposing the state a router needs to *plan*.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from modelyard.config.routing import BreakerConfig

State = Literal["closed", "open", "half_open"]


@dataclass(slots=True)
class CircuitBreaker:
    config: BreakerConfig
    clock: Callable[[], float] = time.monotonic
    state: State = "closed"
    opened_at: float = 0.0
    failures: deque[float] = field(default_factory=deque)
    probing: bool = False
    #: Every transition, for metrics and tests: (time, new state).
    transitions: list[tuple[float, State]] = field(default_factory=list)

    def available(self) -> bool:
        """May a request be sent now? Moves open → half-open once the cool-down has passed."""
        if self.state == "open" and self.clock() - self.opened_at >= self.config.cooldown_s:
            self._move("half_open")
        if self.state == "half_open":
            return not self.probing
        return self.state == "closed"

    def started(self) -> None:
        """A request was sent; in half-open it is the one probe."""
        if self.state == "half_open":
            self.probing = True

    def abandoned(self) -> None:
        """A request ended without a verdict on the target's health (the client went away, or the gateway
        failed around the call): in half-open, the next request may probe. Without this the probe slot
        stayed taken and the target was skipped for good."""
        self.probing = False

    def succeeded(self) -> None:
        self.probing = False
        if self.state != "closed":
            self.failures.clear()
            self._move("closed")

    def failed(self) -> None:
        now = self.clock()
        self.probing = False
        if self.state == "half_open":
            self._open(now)
            return
        self.failures.append(now)
        while self.failures and now - self.failures[0] > self.config.window_s:
            self.failures.popleft()
        if self.state == "closed" and len(self.failures) >= self.config.failures:
            self._open(now)

    def _open(self, now: float) -> None:
        self.opened_at = now
        self.failures.clear()
        self._move("open")

    def _move(self, state: State) -> None:
        self.state = state
        self.transitions.append((self.clock(), state))


class Breakers:
    """One breaker per target name, created on first use."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.clock = clock
        self._by_target: dict[str, CircuitBreaker] = {}

    def __getitem__(self, target: str) -> CircuitBreaker:
        breaker = self._by_target.get(target)
        if breaker is None:
            breaker = self._by_target[target] = CircuitBreaker(self.config, self.clock)
        return breaker

    def states(self) -> dict[str, State]:
        return {name: b.state for name, b in self._by_target.items()}

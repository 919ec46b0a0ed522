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
    #: Told of every transition (old state, new state): :class:`Breakers` counts the circuits not closed.
    on_move: Callable[[State, State], None] | None = None

    def available(self) -> bool:
        """May a request be sent now? Moves open → half-open once the cool-down has passed."""
        if self.state == "closed":  # the usual answer first: this runs for every candidate of every request
            return True
        if self.state == "open" and self.clock() - self.opened_at >= self.config.cooldown_s:
            self._move("half_open")
        if self.state == "half_open":
            return not self.probing
        return False  # open, and cooling down

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
        if self.on_move is not None:
            self.on_move(self.state, state)
        self.state = state
        self.transitions.append((self.clock(), state))


class Breakers(dict[str, CircuitBreaker]):
    """One breaker per target name, created on first use. A dict, so that the look-up a request makes
    several times (planning, the attempt, its outcome) is the dict's own, not a Python call."""

    def __init__(self, config: BreakerConfig, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.config = config
        self.clock = clock
        #: How many circuits are not closed: while none is, planning need not ask each target's breaker.
        self.not_closed = 0

    def __missing__(self, target: str) -> CircuitBreaker:
        breaker = self[target] = CircuitBreaker(self.config, self.clock, on_move=self._moved)
        return breaker

    def _moved(self, old: State, new: State) -> None:
        if (old == "closed") != (new == "closed"):
            self.not_closed += 1 if old == "closed" else -1

    def states(self) -> dict[str, State]:
        return {name: b.state for name, b in self.items()}

"""The governance engine the gateway calls: ``reserve`` at admission, ``settle`` when the outcome is
known (success, error, client cancel, cut stream: the settled amount may be 0), sweeping what crashed
workers left, and firing alerts. It owns no I/O of its own beyond the store and the alert sinks."""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable, Sequence

from modelyard.governance.alerts import Alert, AlertSink, crossed
from modelyard.governance.budgets import lines_for
from modelyard.governance.config import RATE_PREFIX, BudgetConfig, GovernanceConfig
from modelyard.governance.estimate import Estimate
from modelyard.governance.model import (
    Actual,
    BudgetExceeded,
    BudgetStatus,
    CounterState,
    RateLimited,
    Reservation,
    Subject,
)
from modelyard.governance.store import BudgetStore

Clock = Callable[[], float]


class Governor:
    def __init__(
        self,
        config: GovernanceConfig,
        store: BudgetStore,
        *,
        clock: Clock = time.time,
        sinks: Sequence[AlertSink] = (),
    ) -> None:
        self.config = config
        self.store = store
        self._clock = clock
        self._sinks = tuple(sinks)
        # Sweep often enough that an abandoned reservation lives at most ~1.25 × its TTL.
        self._sweep_every = min(60.0, config.reservation_ttl_s / 4)
        self._last_sweep = float("-inf")
        #: (counter, threshold) this process knows are fired: no store round trip to ask again.
        self._fired: set[tuple[str, int]] = set()

    def reserve(
        self, subject: Subject, estimate: Estimate, extra_budgets: Sequence[BudgetConfig] = ()
    ) -> Reservation:
        """Hold ``estimate`` on every budget that applies (the config's and ``extra_budgets``, e.g. a
        runtime key's), or raise :class:`BudgetExceeded`."""
        reservation = self.prepare(subject, estimate, extra_budgets)
        if not reservation.lines:
            return reservation
        return self.conclude(reservation, self.store.reserve(reservation))

    def prepare(
        self, subject: Subject, estimate: Estimate, extra_budgets: Sequence[BudgetConfig] = ()
    ) -> Reservation:
        """The reservation :meth:`reserve` would hold (sweeping first when due), not yet held: hold it
        with the store, then pass the store's answer to :meth:`conclude`."""
        now = self._clock()
        self.sweep_if_due(now)
        return Reservation(
            secrets.token_hex(12),
            lines_for(self.config, subject, estimate, now, extra_budgets),
            now + self.config.reservation_ttl_s,
        )

    def conclude(self, reservation: Reservation, refused: int | None) -> Reservation:
        """The held reservation, or the refusal the store answered (the index of the line refused)."""
        if refused is None:
            return reservation
        now = self._clock()
        line = reservation.lines[refused]
        if line.budget.startswith(RATE_PREFIX):
            per_minute = "requests/min" if line.unit == "requests" else "tokens/min"
            wait = max(1, math.ceil(line.window.end - now))
            raise RateLimited(f"{line.limit} {per_minute}", line.scope, line.subject, wait)
        raise BudgetExceeded(line, self.store.state(line.counter), now)

    def settle(self, reservation: Reservation, actual: Actual) -> list[CounterState]:
        """Replace the hold by what the request used. Idempotent: a second call changes nothing."""
        if not reservation.lines:
            return []
        states = self.store.settle(reservation.id, actual)
        if states and self._sinks:
            self._alert(reservation, states)
        return states

    def settle_many(self, settlements: Sequence[tuple[Reservation, Actual]]) -> None:
        """Settle a batch at once (the recorder's, off the request path): one transaction on SQLite, one
        pipeline on Redis. Same result as settling each in turn."""
        held = [(r, a) for r, a in settlements if r.lines]
        if not held:
            return
        results = self.store.settle_many([(r.id, a) for r, a in held])
        if self._sinks:
            for (reservation, _), states in zip(held, results, strict=True):
                if states:
                    self._alert(reservation, states)

    def status(self, subject: Subject, extra_budgets: Sequence[BudgetConfig] = ()) -> list[BudgetStatus]:
        """Every budget that applies to ``subject`` in its current window, with what is spent, held and
        left: what ``GET /v1/usage`` shows a tenant and ``/metrics`` exports. One store read per budget."""
        now = self._clock()
        out = []
        for line in lines_for(self.config, subject, Estimate(0, 0, 0), now, extra_budgets):
            state = self.store.state(line.counter)
            spent, reserved = (state.spent, state.reserved) if state else (0, 0)
            out.append(BudgetStatus(line, spent, reserved))
        return out

    def sweep_if_due(self, now: float) -> int:
        if now - self._last_sweep < self._sweep_every:
            return 0
        self._last_sweep = now
        return self.store.sweep(now, charge=self.config.on_expiry == "charge")

    def _alert(self, reservation: Reservation, states: list[CounterState]) -> None:
        by_counter = {line.counter: line for line in reservation.lines}
        now = self._clock()
        for state in states:
            line = by_counter.get(state.counter)
            if line is None:
                continue
            for threshold in crossed(self.config.alerts.thresholds, state):
                if (state.counter, threshold) in self._fired:
                    continue
                if len(self._fired) > 100_000:
                    self._fired.clear()  # old windows' entries; the store still answers for them
                self._fired.add((state.counter, threshold))
                if self.store.claim_alert(state.counter, threshold, now):
                    alert = Alert(line, threshold, state.spent, now)
                    for sink in self._sinks:
                        sink.fire(alert)

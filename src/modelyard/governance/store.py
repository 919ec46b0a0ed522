"""The one contract every budget store meets, and the in-process store (one worker, and tests).

A store holds counters (budget × subject × window) and reservations. Its three operations are atomic
on their own, whatever the backend:

- ``reserve``: hold every line's amount, or none of them. A hard line is refused when
  ``spent + reserved + amount > limit``; a soft line always passes (it only counts, for alerts).
- ``settle``: replace a reservation by what the request really used (possibly 0), exactly once; a
  second settle of the same reservation, or one after it was swept, changes nothing.
- ``sweep``: drop reservations past their expiry (a worker that died mid-request never settles),
  releasing them, or counting them as spent with ``charge``.

Backends: :mod:`.store_mapped` (embedded, the default: a file every ``--workers`` process of one
machine maps), :mod:`.store_sqlite` (embedded, the same reach, a transaction per operation),
:mod:`.store_postgres` (one conditional statement) and :mod:`.store_redis` (one Lua script).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from modelyard.governance.model import Actual, CounterState, Line, Reservation


class BudgetStore(Protocol):
    def reserve(self, reservation: Reservation) -> int | None:
        """Hold every line, or none: ``None`` when held, else the index of the first line refused."""
        ...

    def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
        """``reserve`` each in turn, in one transaction where the store has them (the embedded store's
        batch of one event-loop turn): the same answers as reserving one by one, in this order."""
        ...

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        """Settle to ``actual``; the counters it touched, after. Empty when nothing was held any more."""
        ...

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        """Several settles at once (a batch of the recorder): one transaction or one pipeline."""
        ...

    def sweep(self, now: float, *, charge: bool = False) -> int:
        """Drop reservations that expired before ``now``; how many were dropped."""
        ...

    def state(self, counter: str) -> CounterState | None: ...

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        """True for the one caller, across every process, that gets to fire this threshold."""
        ...

    def close(self) -> None: ...


def oversized(lines: Sequence[Line]) -> int | None:
    """The first hard line that no counter state could ever admit (checked before touching a store)."""
    for i, line in enumerate(lines):
        if line.hard and line.amount > line.limit:
            return i
    return None


@dataclass(slots=True)
class _Counter:
    limit: int
    spent: int = 0
    reserved: int = 0


@dataclass
class MemoryBudgetStore:
    """Counters in this process only: right for a single worker and for tests, wrong for ``--workers``."""

    _counters: dict[str, _Counter] = field(default_factory=dict)
    _held: dict[str, tuple[Reservation, float]] = field(default_factory=dict)
    _alerts: set[tuple[str, int]] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def reserve(self, reservation: Reservation) -> int | None:
        refused = oversized(reservation.lines)
        if refused is not None:
            return refused
        with self._lock:
            for i, line in enumerate(reservation.lines):
                c = self._counters.get(line.counter)
                if line.hard and c is not None and c.spent + c.reserved + line.amount > line.limit:
                    return i
            for line in reservation.lines:
                c = self._counters.setdefault(line.counter, _Counter(line.limit))
                c.limit = line.limit
                c.reserved += line.amount
            self._held[reservation.id] = (reservation, reservation.expires_at)
        return None

    def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
        return [self.reserve(r) for r in reservations]

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        with self._lock:
            held = self._held.pop(reservation_id, None)
            if held is None:
                return []
            return [self._release(line, actual.amount(line.unit)) for line in held[0].lines]

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        return [self.settle(rid, actual) for rid, actual in settlements]

    def sweep(self, now: float, *, charge: bool = False) -> int:
        with self._lock:
            expired = [rid for rid, (_, expires_at) in self._held.items() if expires_at < now]
            for rid in expired:
                reservation, _ = self._held.pop(rid)
                for line in reservation.lines:
                    self._release(line, line.amount if charge else 0)
            return len(expired)

    def state(self, counter: str) -> CounterState | None:
        with self._lock:
            c = self._counters.get(counter)
            return None if c is None else CounterState(counter, c.limit, c.spent, c.reserved)

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        with self._lock:
            if (counter, threshold) in self._alerts:
                return False
            self._alerts.add((counter, threshold))
            return True

    def close(self) -> None:
        pass

    def _release(self, line: Line, spent: int) -> CounterState:
        c = self._counters[line.counter]
        c.reserved -= line.amount
        c.spent += spent
        return CounterState(line.counter, c.limit, c.spent, c.reserved)

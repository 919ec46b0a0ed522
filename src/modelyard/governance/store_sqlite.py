"""Budget counters in a SQLite file: exact across every ``--workers`` process of one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock serialises reservations from
all processes, and each counter's test-and-add is one conditional upsert (``... DO UPDATE ... WHERE
spent + reserved + amount <= limit``). WAL with ``synchronous=OFF``: a commit survives a process crash
(what ``--workers`` needs) without an fsync; an OS crash or power cut may lose the last instants of counts.
Use its own file, not the ledger's: the ledger writer's batches would make reservations wait.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache

from modelyard.governance.model import Actual, CounterState, Reservation, Unit
from modelyard.governance.store import oversized
from modelyard.ledger import migrate
from modelyard.ledger.sqlite_store import SQLiteStore

_SETTLE = (
    "UPDATE gov_counters SET reserved = gov_counters.reserved - r.amount, spent = gov_counters.spent +"
    " (CASE r.unit WHEN 'usd' THEN ? WHEN 'tokens' THEN ? ELSE ? END)"
    " FROM gov_reservations AS r WHERE r.reservation = ? AND gov_counters.counter = r.counter"
    " RETURNING gov_counters.counter, limit_amount, spent, reserved"
)


@lru_cache(maxsize=16)
def _upsert(n: int) -> str:
    """The conditional upsert of ``n`` counters (a hard one takes the amount only if it fits)."""
    return (
        "INSERT INTO gov_counters (counter, unit, limit_amount, hard, spent, reserved, window_end) VALUES "
        + ", ".join(["(?, ?, ?, ?, 0, ?, ?)"] * n)
        + _ON_CONFLICT
    )


@lru_cache(maxsize=16)
def _hold(n: int) -> str:
    return (
        "INSERT INTO gov_reservations (reservation, counter, unit, amount, expires_at) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?)"] * n)
    )


_ON_CONFLICT = (
    " ON CONFLICT (counter) DO UPDATE SET"
    " reserved = gov_counters.reserved + excluded.reserved, limit_amount = excluded.limit_amount,"
    " hard = excluded.hard"
    " WHERE NOT excluded.hard OR gov_counters.spent + gov_counters.reserved + excluded.reserved"
    " <= excluded.limit_amount RETURNING counter"
)
#: What a dropped reservation line counts as spent, from its unit and the amount it held.
_Spent = Callable[[Unit, int], int]

_RELEASE = (
    "UPDATE gov_counters SET reserved = reserved - ?, spent = spent + ? WHERE counter = ?"
    " RETURNING counter, limit_amount, spent, reserved"
)


class SQLiteBudgetStore:
    def __init__(self, path: str, *, busy_timeout_s: float = 10.0) -> None:
        if path == ":memory:":
            # One connection's private database (tests, benchmarks): the migrations run on it directly.
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            for migration in migrate.migrations("sqlite"):
                for statement in migration.statements():
                    self._db.execute(statement)
        else:
            # The ledger's migrator creates the governance tables (migration 0003) with its own locking.
            SQLiteStore(path).close()
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        # OFF: a commit is in the OS's hands when it returns, so it survives a crashed or killed worker
        # (what --workers needs); only an OS crash or power cut can lose the last counts. NORMAL would
        # fsync at every WAL checkpoint, which measured ~2x the cost of a reservation here.
        self._db.execute("PRAGMA synchronous=OFF")
        self._lock = threading.Lock()

    def reserve(self, reservation: Reservation) -> int | None:
        refused = oversized(reservation.lines)
        if refused is not None:
            return refused
        lines = reservation.lines
        n = len(lines)
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                # One multi-row conditional upsert: it returns the counters that had room.
                upsert_params: list[object] = []
                hold_params: list[object] = []
                for line in lines:
                    upsert_params += (
                        line.counter,
                        line.unit,
                        line.limit,
                        line.hard,
                        line.amount,
                        line.window.end,
                    )
                    hold_params += (
                        reservation.id,
                        line.counter,
                        line.unit,
                        line.amount,
                        reservation.expires_at,
                    )
                held = db.execute(_upsert(n), upsert_params).fetchall()
                if len(held) < n:
                    db.execute("ROLLBACK")
                    taken = {counter for (counter,) in held}
                    return next(i for i, line in enumerate(lines) if line.counter not in taken)
                db.execute(_hold(n), hold_params)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return None

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        return self.settle_many([(reservation_id, actual)])[0]

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        """Settle several reservations in one transaction: the recorder's batch, off the request path,
        pays one commit for all of them."""
        db = self._db
        out = []
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                for reservation_id, actual in settlements:
                    # A reservation holds one line per counter, so UPDATE ... FROM meets each counter once.
                    rows = db.execute(
                        _SETTLE, (actual.cost_pico, actual.tokens, actual.requests, reservation_id)
                    ).fetchall()
                    db.execute("DELETE FROM gov_reservations WHERE reservation = ?", (reservation_id,))
                    out.append([CounterState(*row) for row in rows])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return out

    def sweep(self, now: float, *, charge: bool = False) -> int:
        held: set[str] = set()
        self._drop("expires_at < ?", (now,), lambda unit, amount: amount if charge else 0, held)
        return len(held)

    def state(self, counter: str) -> CounterState | None:
        with self._lock:
            row = self._db.execute(
                "SELECT counter, limit_amount, spent, reserved FROM gov_counters WHERE counter = ?",
                (counter,),
            ).fetchone()
        return None if row is None else CounterState(*row)

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        with self._lock:
            row = self._db.execute(
                "INSERT INTO gov_alerts (counter, threshold, fired_at) VALUES (?, ?, ?)"
                " ON CONFLICT DO NOTHING RETURNING 1",
                (counter, threshold, now),
            ).fetchone()
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop(
        self, where: str, params: tuple[object, ...], spent: _Spent, dropped: set[str]
    ) -> list[CounterState]:
        """Delete the reservations ``where`` matches (their ids land in ``dropped``) and move each of
        their lines from reserved to spent."""
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                held = db.execute(
                    f"DELETE FROM gov_reservations WHERE {where} RETURNING reservation, counter, unit, amount",
                    params,
                ).fetchall()
                states = [
                    CounterState(*db.execute(_RELEASE, (amount, spent(unit, amount), counter)).fetchone())
                    for _, counter, unit, amount in held
                ]
                dropped.update(rid for rid, *_ in held)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return states

"""Budget counters in a SQLite file: exact across every ``--workers`` process of one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock serialises reservations from
all processes, and each counter's test-and-add is one conditional upsert (``... DO UPDATE ... WHERE
spent + reserved + amount <= limit``). WAL with ``synchronous=NORMAL``: a commit survives a process crash
(what ``--workers`` needs) without an fsync per request; a power cut may lose the last instants of counts.
Use its own file, not the ledger's: the ledger writer's batches would make reservations wait.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable

from modelyard.governance.model import Actual, CounterState, Reservation, Unit
from modelyard.governance.store import oversized
from modelyard.ledger import migrate
from modelyard.ledger.sqlite_store import SQLiteStore

_UPSERT = (
    "INSERT INTO gov_counters (counter, unit, limit_amount, hard, spent, reserved, window_end)"
    " VALUES (?, ?, ?, ?, 0, ?, ?) ON CONFLICT (counter) DO UPDATE SET"
    " reserved = gov_counters.reserved + excluded.reserved, limit_amount = excluded.limit_amount,"
    " hard = excluded.hard"
    " WHERE NOT excluded.hard OR gov_counters.spent + gov_counters.reserved + excluded.reserved"
    " <= excluded.limit_amount RETURNING 1"
)
_HOLD = "INSERT INTO gov_reservations (reservation, counter, unit, amount, expires_at) VALUES (?, ?, ?, ?, ?)"
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
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._lock = threading.Lock()

    def reserve(self, reservation: Reservation) -> int | None:
        refused = oversized(reservation.lines)
        if refused is not None:
            return refused
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                for i, line in enumerate(reservation.lines):
                    row = db.execute(
                        _UPSERT,
                        (line.counter, line.unit, line.limit, line.hard, line.amount, line.window.end),
                    ).fetchone()
                    if row is None:
                        db.execute("ROLLBACK")
                        return i
                db.executemany(
                    _HOLD,
                    [
                        (reservation.id, line.counter, line.unit, line.amount, reservation.expires_at)
                        for line in reservation.lines
                    ],
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return None

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        return self._drop(
            "reservation = ?", (reservation_id,), lambda unit, amount: actual.amount(unit), set()
        )

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

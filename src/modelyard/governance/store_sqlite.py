"""Budget counters in a SQLite file: exact across every ``--workers`` process of one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock serialises reservations from
all processes. A reservation is one multi-row conditional upsert of its counters (``... DO UPDATE ...
WHERE spent + reserved + amount <= limit RETURNING counter``, rolled back unless every counter came back)
and one row in ``gov_holds`` (its lines as JSON, swept after ``expires_at``). A settle deletes that row and
applies its lines in one ``UPDATE ... FROM json_each``.

WAL with ``synchronous=OFF``: a commit is in the OS's hands when it returns, so it survives a crashed or
killed worker (what ``--workers`` needs); only an OS crash or power cut can lose the last counts. Use a
file of its own, not the ledger's: the ledger writer's batches would make reservations wait.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from functools import lru_cache

import orjson

from modelyard.governance.model import Actual, CounterState, Reservation
from modelyard.governance.store import oversized
from modelyard.ledger import migrate
from modelyard.ledger.sqlite_store import SQLiteStore

_ON_CONFLICT = (
    " ON CONFLICT (counter) DO UPDATE SET"
    " reserved = gov_counters.reserved + excluded.reserved, limit_amount = excluded.limit_amount,"
    " hard = excluded.hard"
    " WHERE NOT excluded.hard OR gov_counters.spent + gov_counters.reserved + excluded.reserved"
    " <= excluded.limit_amount RETURNING counter"
)


@lru_cache(maxsize=16)
def _upsert(n: int) -> str:
    """The conditional upsert of ``n`` counters (a hard one takes the amount only if it fits)."""
    return (
        "INSERT INTO gov_counters (counter, unit, limit_amount, hard, spent, reserved, window_end) VALUES "
        + ", ".join(["(?, ?, ?, ?, 0, ?, ?)"] * n)
        + _ON_CONFLICT
    )


_HOLD = "INSERT INTO gov_holds (reservation, lines, expires_at) VALUES (?, ?, ?)"

#: Apply a hold's lines (JSON [[counter, unit, amount], ...]): release each amount, add what was spent.
#: A hold has one line per counter, so UPDATE ... FROM meets each counter once.
_APPLY = (
    "UPDATE gov_counters SET reserved = gov_counters.reserved - (l.value ->> 2),"
    " spent = gov_counters.spent + (CASE l.value ->> 1 WHEN 'usd' THEN ? WHEN 'tokens' THEN ? ELSE ? END)"
    " FROM json_each(?) AS l WHERE gov_counters.counter = l.value ->> 0"
    " RETURNING gov_counters.counter, limit_amount, spent, reserved"
)
#: The same for a swept hold: spend all it held (``charge``) or nothing.
_APPLY_EXPIRED = (
    "UPDATE gov_counters SET reserved = gov_counters.reserved - (l.value ->> 2),"
    " spent = gov_counters.spent + ? * (l.value ->> 2)"
    " FROM json_each(?) AS l WHERE gov_counters.counter = l.value ->> 0"
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
            # The ledger's migrator creates the governance tables (0003, 0004) with its own locking.
            SQLiteStore(path).close()
            self._db = sqlite3.connect(
                path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s
            )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")
        self._lock = threading.Lock()

    def reserve(self, reservation: Reservation) -> int | None:
        refused = oversized(reservation.lines)
        if refused is not None:
            return refused
        lines = reservation.lines
        params: list[object] = []
        for line in lines:
            params += (line.counter, line.unit, line.limit, line.hard, line.amount, line.window.end)
        hold = orjson.dumps([(line.counter, line.unit, line.amount) for line in lines])
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                taken = db.execute(_upsert(len(lines)), params).fetchall()
                if len(taken) < len(lines):
                    db.execute("ROLLBACK")
                    names = {counter for (counter,) in taken}
                    return next(i for i, line in enumerate(lines) if line.counter not in names)
                db.execute(_HOLD, (reservation.id, hold, reservation.expires_at))
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
        out: list[list[CounterState]] = []
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                for reservation_id, actual in settlements:
                    row = db.execute(
                        "DELETE FROM gov_holds WHERE reservation = ? RETURNING lines", (reservation_id,)
                    ).fetchone()
                    if row is None:  # settled already, or swept: nothing is held any more
                        out.append([])
                        continue
                    params = (actual.cost_pico, actual.tokens, actual.requests, row[0])
                    out.append([CounterState(*r) for r in db.execute(_APPLY, params).fetchall()])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return out

    def sweep(self, now: float, *, charge: bool = False) -> int:
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                expired = db.execute(
                    "DELETE FROM gov_holds WHERE expires_at < ? RETURNING lines", (now,)
                ).fetchall()
                for (lines,) in expired:
                    db.execute(_APPLY_EXPIRED, (1 if charge else 0, lines))
                # Old windows nobody holds anything on any more: a month of history is plenty.
                db.execute(
                    "DELETE FROM gov_counters WHERE window_end < ? AND reserved = 0", (now - 35 * 86400,)
                )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return len(expired)

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

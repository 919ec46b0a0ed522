"""Budget counters in a SQLite file: exact across every ``--workers`` process of one machine.

Each operation is one ``BEGIN IMMEDIATE`` transaction: SQLite's write lock serialises reservations from
all processes. A reservation is one multi-row conditional upsert of its counters (``... DO UPDATE ...
WHERE spent + reserved + amount <= limit RETURNING counter``, rolled back unless every counter came back)
and one row in ``gov_holds`` (its lines as JSON, swept after ``expires_at``). A settle deletes that row and
applies its lines in one ``UPDATE ... FROM json_each``.

The gateway sends them in batches, one per turn of its event loop (``governance/settler.py``): a batch of
reservations is one upsert of each counter's total when every hard total fits (else one savepoint per
reservation), a batch of settles one ``DELETE ... RETURNING`` and one update of each counter's net change.
Per request that leaves the Python and the row work, not the commit's.

A reservation or a settlement alone in its batch (requests one at a time) takes a shorter path, since
its commit is not shared and the statements around it are most of its cost (bench/budget_embedded.py
``--instructions``): a reservation needs no savepoint (nothing else in its transaction to keep) and
counts the counters that took the amount (``rowcount``) instead of returning them — ``RETURNING`` makes
SQLite build a temporary table, zeroed page by page; only a refusal goes the savepoint path, to name the
budget refused. A settlement updates its counters straight from its hold's lines in SQL (nothing parsed
or built in Python), then deletes the hold.

WAL with ``synchronous=OFF``: a commit is in the OS's hands when it returns, so it survives a crashed or
killed worker (what ``--workers`` needs); only an OS crash or power cut can lose the last counts. Use a
file of its own, not the ledger's: the ledger writer's batches would make reservations wait.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from functools import lru_cache

import orjson

from modelyard.governance.model import Actual, CounterState, Line, Reservation
from modelyard.governance.store import oversized
from modelyard.ledger import migrate
from modelyard.ledger.sqlite_store import SQLiteStore, enter_wal

_ON_CONFLICT = (
    " ON CONFLICT (counter) DO UPDATE SET"
    " reserved = gov_counters.reserved + excluded.reserved, limit_amount = excluded.limit_amount,"
    " hard = excluded.hard"
    " WHERE NOT excluded.hard OR gov_counters.spent + gov_counters.reserved + excluded.reserved"
    " <= excluded.limit_amount"
)


@lru_cache(maxsize=32)
def _upsert(n: int, returning: bool = True) -> str:
    """The conditional upsert of ``n`` counters (a hard one takes the amount only if it fits), returning
    the counters that took it; without ``returning``, its ``rowcount`` says how many did."""
    return (
        "INSERT INTO gov_counters (counter, unit, limit_amount, hard, spent, reserved, window_end) VALUES "
        + ", ".join(["(?, ?, ?, ?, 0, ?, ?)"] * n)
        + _ON_CONFLICT
        + (" RETURNING counter" if returning else "")
    )


_HOLD = "INSERT INTO gov_holds (reservation, lines, expires_at) VALUES (?, ?, ?)"

#: Apply a batch's net change per counter (JSON [[counter, released, spent], ...]), each counter once.
_APPLY_TOTALS = (
    "UPDATE gov_counters SET reserved = gov_counters.reserved - (d.value ->> 1),"
    " spent = gov_counters.spent + (d.value ->> 2)"
    " FROM json_each(?) AS d WHERE gov_counters.counter = d.value ->> 0"
    " RETURNING gov_counters.counter, limit_amount, spent, reserved"
)
#: One settlement (params: usd, tokens, requests, reservation): each counter of its hold releases the
#: amount held and spends what was used in its unit. A hold's counters are distinct (one line per budget,
#: budget names unique: ``lines_for``), as ``UPDATE ... FROM`` needs: it applies one match per row.
_SETTLE_ONE = (
    "UPDATE gov_counters SET reserved = gov_counters.reserved - (l.value ->> 2),"
    " spent = gov_counters.spent + CASE l.value ->> 1 WHEN 'usd' THEN ?1 WHEN 'tokens' THEN ?2 ELSE ?3 END"
    " FROM gov_holds AS h, json_each(h.lines) AS l"
    " WHERE h.reservation = ?4 AND gov_counters.counter = l.value ->> 0"
    " RETURNING gov_counters.counter, limit_amount, spent, reserved"
)
_DELETE_ONE = "DELETE FROM gov_holds WHERE reservation = ?"
#: Holds deleted per statement (well under SQLite's limit on bound variables).
_CHUNK = 500


@lru_cache(maxsize=64)
def _delete_holds(n: int) -> str:
    return f"DELETE FROM gov_holds WHERE reservation IN ({', '.join(['?'] * n)}) RETURNING reservation, lines"


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
        self._busy_timeout_s = busy_timeout_s
        enter_wal(self._db, within_s=busy_timeout_s)
        self._db.execute("PRAGMA synchronous=OFF")
        # From here on _when_free waits for a lock, not SQLite's busy handler: that one sleeps 1, 2, 5,
        # 10 ms... between tries while a sibling worker holds the write lock for ~0.1 ms, and the event
        # loop would stall that long.
        self._db.execute("PRAGMA busy_timeout = 0")
        self._lock = threading.Lock()

    def _begin(self) -> None:
        self._when_free("BEGIN IMMEDIATE", ())

    def _when_free(self, sql: str, params: tuple[object, ...]) -> sqlite3.Cursor:
        """Run ``sql``, retried while another process holds the lock it needs: first after 20 µs,
        doubling up to 1 ms, for at most ``busy_timeout_s``."""
        delay, deadline = 20e-6, 0.0
        while True:
            try:
                return self._db.execute(sql, params)
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                    raise
                now = time.monotonic()
                if not deadline:
                    deadline = now + self._busy_timeout_s
                elif now > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 1e-3)

    def reserve(self, reservation: Reservation) -> int | None:
        return self.reserve_many([reservation])[0]

    def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
        """Every reservation in one ``BEGIN IMMEDIATE`` transaction, with the answers of reserving them one
        by one: first as one upsert of each counter's total (when every hard total fits, every one of
        them fits in any order), else each in a savepoint of its own, rolled back alone when refused."""
        out: list[int | None] = [oversized(r.lines) for r in reservations]
        todo = [i for i, r in enumerate(reservations) if out[i] is None and r.lines]
        if not todo:
            return out
        db = self._db
        with self._lock:
            if len(todo) == 1 and self._reserve_alone(reservations[todo[0]]):
                return out
            self._begin()
            try:
                if len(todo) == 1 or not self._reserve_together(db, [reservations[i] for i in todo]):
                    for i in todo:
                        out[i] = self._reserve_one(db, reservations[i])
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return out

    def _reserve_alone(self, reservation: Reservation) -> bool:
        """Hold one reservation in a transaction of its own; False (and nothing changed) if a hard
        counter has no room for it."""
        db, lines = self._db, reservation.lines
        params: list[object] = []
        for line in lines:
            params += (line.counter, line.unit, line.limit, line.hard, line.amount, line.window.end)
        self._begin()
        try:
            if db.execute(_upsert(len(lines), returning=False), params).rowcount < len(lines):
                db.execute("ROLLBACK")
                return False
            hold = orjson.dumps([(line.counter, line.unit, line.amount) for line in lines])
            db.execute(_HOLD, (reservation.id, hold, reservation.expires_at))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return True

    @staticmethod
    def _reserve_together(db: sqlite3.Connection, reservations: list[Reservation]) -> bool:
        """Hold all of them with one upsert of each counter's total and one insert of their holds; False
        (and nothing changed) if some hard counter has no room for its total."""
        totals: dict[str, int] = {}
        lines: dict[str, Line] = {}
        for reservation in reservations:
            for line in reservation.lines:
                totals[line.counter] = totals.get(line.counter, 0) + line.amount
                lines[line.counter] = line
        if any(line.hard and totals[counter] > line.limit for counter, line in lines.items()):
            return False  # a new counter's insert is not conditional: never let a total through it
        params: list[object] = []
        for counter, x in lines.items():
            params += (counter, x.unit, x.limit, x.hard, totals[counter], x.window.end)
        db.execute("SAVEPOINT together")
        if db.execute(_upsert(len(totals), returning=False), params).rowcount < len(totals):
            db.execute("ROLLBACK TO together")
            db.execute("RELEASE together")
            return False
        holds = [
            (r.id, orjson.dumps([(x.counter, x.unit, x.amount) for x in r.lines]), r.expires_at)
            for r in reservations
        ]
        db.executemany(_HOLD, holds)
        db.execute("RELEASE together")
        return True

    @staticmethod
    def _reserve_one(db: sqlite3.Connection, reservation: Reservation) -> int | None:
        lines = reservation.lines
        params: list[object] = []
        for line in lines:
            params += (line.counter, line.unit, line.limit, line.hard, line.amount, line.window.end)
        db.execute("SAVEPOINT hold")
        taken = db.execute(_upsert(len(lines)), params).fetchall()
        if len(taken) < len(lines):
            db.execute("ROLLBACK TO hold")
            db.execute("RELEASE hold")
            names = {counter for (counter,) in taken}
            return next(i for i, line in enumerate(lines) if line.counter not in names)
        hold = orjson.dumps([(line.counter, line.unit, line.amount) for line in lines])
        db.execute(_HOLD, (reservation.id, hold, reservation.expires_at))
        db.execute("RELEASE hold")
        return None

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        return self.settle_many([(reservation_id, actual)])[0]

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        """Settle several reservations in one transaction: the recorder's batch, off the request path,
        pays one commit — and two statements — for all of them: their holds deleted at once, each
        counter's net change applied at once. Each settlement's states are its counters after the batch."""
        db = self._db
        if len(settlements) == 1:
            return [self._settle_alone(*settlements[0])]
        held: dict[str, bytes] = {}
        with self._lock:
            self._begin()
            try:
                ids = list(dict.fromkeys(rid for rid, _ in settlements))
                for start in range(0, len(ids), _CHUNK):
                    chunk = ids[start : start + _CHUNK]
                    held.update(db.execute(_delete_holds(len(chunk)), chunk).fetchall())
                deltas: dict[str, list[int]] = {}
                touched: list[list[str]] = []
                for reservation_id, actual in settlements:
                    lines = held.pop(reservation_id, None)  # a second settle of one hold finds nothing
                    counters = []
                    if lines is not None:  # else settled already, or swept: nothing is held any more
                        for counter, unit, amount in orjson.loads(lines):
                            delta = deltas.setdefault(counter, [0, 0])
                            delta[0] += amount
                            delta[1] += actual.amount(unit)
                            counters.append(counter)
                    touched.append(counters)
                states: dict[str, CounterState] = {}
                if deltas:
                    applied = orjson.dumps([(c, r, s) for c, (r, s) in deltas.items()])
                    for row in db.execute(_APPLY_TOTALS, (applied,)).fetchall():
                        states[row[0]] = CounterState(*row)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return [[states[c] for c in counters if c in states] for counters in touched]

    def _settle_alone(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        """One settlement in a transaction of its own: its counters updated straight from its hold's
        lines (no JSON parsed or built here), then the hold deleted."""
        db = self._db
        with self._lock:
            self._begin()
            try:
                params = (actual.cost_pico, actual.tokens, actual.requests, reservation_id)
                rows = db.execute(_SETTLE_ONE, params).fetchall()
                db.execute(_DELETE_ONE, (reservation_id,))
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return [CounterState(*row) for row in rows]

    def sweep(self, now: float, *, charge: bool = False) -> int:
        db = self._db
        with self._lock:
            self._begin()
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
            row = self._when_free(
                "SELECT counter, limit_amount, spent, reserved FROM gov_counters WHERE counter = ?",
                (counter,),
            ).fetchone()
        return None if row is None else CounterState(*row)

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        with self._lock:
            self._begin()
            try:
                row = self._db.execute(
                    "INSERT INTO gov_alerts (counter, threshold, fired_at) VALUES (?, ?, ?)"
                    " ON CONFLICT DO NOTHING RETURNING 1",
                    (counter, threshold, now),
                ).fetchone()
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return row is not None

    def close(self) -> None:
        with self._lock:
            self._db.close()

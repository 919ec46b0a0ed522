"""Budget counters in PostgreSQL: exact across replicas, each operation one statement in autocommit.

``reserve`` is a single statement: a conditional multi-row upsert of the counters (``DO UPDATE ... WHERE
spent + reserved + amount <= limit``), the reservation's row, and a final division that fails when any
counter refused. A statement is atomic on its own, so a failing one leaves nothing behind: one round trip,
all lines or none. Lines arrive sorted by counter, so concurrent reservations lock rows in one order and
cannot deadlock each other; a settle's join may still meet one, and PostgreSQL's detector breaks it:
that statement is retried.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import TupleRow

from modelyard.governance.model import Actual, CounterState, Reservation
from modelyard.governance.store import oversized
from modelyard.ledger.postgres_store import PostgresStore

_RESERVE = """
WITH lines (counter, unit, limit_amount, hard, amount, window_end) AS (
    SELECT * FROM unnest(%(counter)s::text[], %(unit)s::text[], %(limit)s::bigint[], %(hard)s::boolean[],
                         %(amount)s::bigint[], %(window_end)s::double precision[])
),
held AS (
    INSERT INTO gov_counters AS c (counter, unit, limit_amount, hard, spent, reserved, window_end)
    SELECT counter, unit, limit_amount, hard, 0, amount, window_end FROM lines ORDER BY counter
    ON CONFLICT (counter) DO UPDATE SET reserved = c.reserved + excluded.reserved,
        limit_amount = excluded.limit_amount, hard = excluded.hard
    WHERE NOT excluded.hard OR c.spent + c.reserved + excluded.reserved <= excluded.limit_amount
    RETURNING 1
),
hold AS (
    INSERT INTO gov_holds (reservation, counters, units, amounts, expires_at)
    VALUES (%(id)s::text, %(counter)s::text[], %(unit)s::text[], %(amount)s::bigint[],
            %(expires_at)s::double precision)
)
SELECT 1 / (CASE WHEN (SELECT count(*) FROM held) = %(n)s::bigint THEN 1 ELSE 0 END)
"""

_DROP = """
WITH dropped AS (
    DELETE FROM gov_holds WHERE {where} RETURNING reservation, counters, units, amounts
), lines AS (
    SELECT d.reservation, l.counter, l.unit, l.amount
    FROM dropped d, unnest(d.counters, d.units, d.amounts) AS l (counter, unit, amount)
), per_counter AS (
    SELECT counter, sum(amount) AS amount,
           sum(CASE WHEN %(charge)s::boolean IS NULL THEN (CASE unit WHEN 'usd' THEN %(usd)s::bigint
               WHEN 'tokens' THEN %(tokens)s::bigint ELSE %(requests)s::bigint END)
               WHEN %(charge)s::boolean THEN amount ELSE 0 END) AS spent
    FROM lines GROUP BY counter
)
UPDATE gov_counters c SET reserved = c.reserved - p.amount, spent = c.spent + p.spent
FROM per_counter p WHERE c.counter = p.counter
RETURNING c.counter, c.limit_amount, c.spent, c.reserved, (SELECT count(*) FROM dropped)
"""


class PostgresBudgetStore:
    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        PostgresStore(url, connect_timeout=connect_timeout).close()  # applies migration 0003 under its lock
        self._url = url
        self._timeout = max(1, round(connect_timeout))
        self._conn: psycopg.Connection[TupleRow] | None = None
        self._lock = threading.Lock()

    def reserve(self, reservation: Reservation) -> int | None:
        refused = oversized(reservation.lines)
        if refused is not None:
            return refused
        lines = reservation.lines
        params: dict[str, Any] = {
            "counter": [x.counter for x in lines],
            "unit": [x.unit for x in lines],
            "limit": [x.limit for x in lines],
            "hard": [x.hard for x in lines],
            "amount": [x.amount for x in lines],
            "window_end": [x.window.end for x in lines],
            "id": reservation.id,
            "expires_at": reservation.expires_at,
            "n": len(lines),
        }
        try:
            self._execute(_RESERVE, params)
        except errors.DivisionByZero:
            return self._refused_line(reservation)
        return None

    def reserve_many(self, reservations: Sequence[Reservation]) -> list[int | None]:
        return [self.reserve(r) for r in reservations]  # one round trip each: the gateway never batches these

    def settle(self, reservation_id: str, actual: Actual) -> list[CounterState]:
        params = {"rid": reservation_id, "charge": None, "usd": actual.cost_pico}
        params |= {"tokens": actual.tokens, "requests": actual.requests}
        return self._states(self._execute(_DROP.format(where="reservation = %(rid)s::text"), params))

    def settle_many(self, settlements: Sequence[tuple[str, Actual]]) -> list[list[CounterState]]:
        # Each settle is its own atomic statement; a batch needs no transaction around them.
        return [self.settle(rid, actual) for rid, actual in settlements]

    def sweep(self, now: float, *, charge: bool = False) -> int:
        params = {"now": now, "charge": charge, "usd": 0, "tokens": 0, "requests": 0}
        rows = self._execute(_DROP.format(where="expires_at < %(now)s::double precision"), params)
        # Old windows nobody holds anything on any more: a month of history is plenty for /v1/usage.
        self._execute(
            "DELETE FROM gov_counters WHERE window_end < %(old)s AND reserved = 0", {"old": now - 35 * 86400}
        )
        return int(rows[0][4]) if rows else 0

    def state(self, counter: str) -> CounterState | None:
        rows = self._execute(
            "SELECT counter, limit_amount, spent, reserved FROM gov_counters WHERE counter = %(c)s",
            {"c": counter},
        )
        return self._states(rows)[0] if rows else None

    def claim_alert(self, counter: str, threshold: int, now: float) -> bool:
        rows = self._execute(
            "INSERT INTO gov_alerts (counter, threshold, fired_at) VALUES (%(c)s, %(t)s, %(now)s)"
            " ON CONFLICT DO NOTHING RETURNING 1",
            {"c": counter, "t": threshold, "now": now},
        )
        return bool(rows)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _refused_line(self, reservation: Reservation) -> int:
        """Which line refused: read back after the fact (the refusal path only, so one more trip is fine)."""
        for i, line in enumerate(reservation.lines):
            state = self.state(line.counter)
            if line.hard and state is not None and state.spent + state.reserved + line.amount > line.limit:
                return i
        # The counter moved between the refusal and this read: name the first hard line.
        return next(i for i, line in enumerate(reservation.lines) if line.hard)

    @staticmethod
    def _states(rows: list[TupleRow]) -> list[CounterState]:
        return [CounterState(str(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in rows]

    def _execute(self, sql: str, params: dict[str, Any]) -> list[TupleRow]:
        for attempt in range(5):
            with self._lock:
                conn = self._connection()
                try:
                    cur = conn.execute(sql.encode(), params, prepare=True)
                    return cur.fetchall() if cur.description else []
                except errors.DeadlockDetected:
                    if attempt == 4:
                        raise
                except psycopg.OperationalError:
                    conn.close()
                    self._conn = None
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> psycopg.Connection[TupleRow]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self._url, autocommit=True, connect_timeout=self._timeout)
        return self._conn

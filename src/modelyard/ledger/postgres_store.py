"""The scaled-out ledger: PostgreSQL through psycopg 3.

Several gateways may write to one database. Inserts are ``ON CONFLICT DO NOTHING`` so a replayed spool
never duplicates a row; migrations take an advisory lock so two gateways starting together apply each
file once. A broken connection (database restarted) is reopened on the next call, which lets the writer
simply retry a failed batch. Tables live in the connection's ``search_path`` (by default ``public``):
point a URL at another schema with ``?options=-csearch_path%3Dmyschema``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg

from modelyard.ledger import migrate
from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow, Values
from modelyard.ledger.series import Series, SeriesQuery, postgres_bucket, series_in_database
from modelyard.ledger.sql import (
    DEFAULT_BATCH_ROWS,
    EVERYTHING,
    LedgerTable,
    RequestFilter,
    RowsRejected,
    attempt_from_db,
    attempt_values,
    count_rows_sql,
    insert_sql,
    request_from_db,
    request_values,
    select_attempts_sql,
    select_requests_sql,
    select_rows_sql,
)
from modelyard.ledger.summary import GroupKey, SummaryRow
from modelyard.ledger.summary_sql import summarise_in_database

_INSERT_REQUEST = insert_sql("requests", REQUEST_COLUMNS, "%s")
_INSERT_ATTEMPT = insert_sql("attempts", ATTEMPT_COLUMNS, "%s")
#: Arbitrary constant naming "modelyard ledger migrations" for pg_advisory_xact_lock.
_MIGRATION_LOCK = 0x6D6F64656C79


class PostgresStore:
    """A :class:`~modelyard.ledger.store.LedgerStore` on PostgreSQL."""

    def __init__(self, url: str, *, connect_timeout: float = 5.0) -> None:
        self.url = url
        self._connect_timeout = connect_timeout
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply the missing migrations in one transaction. Returns the versions applied."""
        with self._transaction() as conn:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute(migrate.SCHEMA_MIGRATIONS_DDL)
            applied = {int(v) for (v,) in conn.execute("SELECT version FROM schema_migrations")}
            todo = migrate.pending("postgres", applied)
            for migration in todo:
                for statement in migration.statements():
                    conn.execute(statement.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (%s, %s)",
                    (migration.version, time.time()),
                )
        return [m.version for m in todo]

    def applied_versions(self) -> list[int]:
        with self._transaction() as conn:
            rows = conn.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()
        return [int(v) for (v,) in rows]

    def insert(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> int:
        return self.insert_values(request_values(requests), attempt_values(attempts))

    def insert_values(self, requests: Sequence[Values], attempts: Sequence[Values]) -> int:
        try:
            with self._transaction() as conn, conn.cursor() as cursor:
                cursor.executemany(_INSERT_REQUEST, requests)
                new = cursor.rowcount
                cursor.executemany(_INSERT_ATTEMPT, attempts)
        except (psycopg.IntegrityError, psycopg.DataError) as exc:
            raise RowsRejected(str(exc).splitlines()[0]) from exc
        return max(new, 0)

    def query(
        self, where: RequestFilter = EVERYTHING, *, limit: int | None = None, newest_first: bool = True
    ) -> list[RequestRow]:
        where_sql, params = where.where("%s")
        if limit is not None:
            params.append(limit)
        sql = select_requests_sql(where_sql, limit, newest_first, "%s")
        with self._transaction() as conn:
            return [request_from_db(values) for values in conn.execute(sql.encode(), params)]

    def query_attempts(self, where: RequestFilter = EVERYTHING) -> list[AttemptRow]:
        where_sql, params = where.where("%s")
        with self._transaction() as conn:
            return [attempt_from_db(v) for v in conn.execute(select_attempts_sql(where_sql).encode(), params)]

    def summary(
        self, group_by: Sequence[GroupKey] = ("workload", "model"), where: RequestFilter = EVERYTHING
    ) -> list[SummaryRow]:
        def run(sql: str, params: Sequence[Any]) -> list[Any]:
            with self._transaction() as conn:
                return conn.execute(sql.encode(), params).fetchall()  # one row per group

        return summarise_in_database(run, group_by, where, "%s")

    def series(self, query: SeriesQuery) -> Series:
        def run(sql: str, params: Sequence[Any]) -> list[Any]:
            with self._transaction() as conn:
                return conn.execute(sql.encode(), params).fetchall()  # one row per group and bucket

        return series_in_database(run, query, "%s", postgres_bucket)

    def iter_rows(
        self, table: LedgerTable, where: RequestFilter = EVERYTHING, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        """Streams through a server-side (named) cursor on a connection of its own: the server holds the
        result and sends ``batch_size`` rows per round trip, and the store's connection stays free."""
        where_sql, params = where.where("%s")
        sql = select_rows_sql(table, where_sql, "%s").encode()
        timeout = max(1, round(self._connect_timeout))
        # Not autocommit: a named cursor lives in a transaction (read-only, so one consistent snapshot).
        with psycopg.connect(self.url, connect_timeout=timeout) as conn:
            conn.read_only = True
            with conn.cursor(name="modelyard_export") as cursor:
                cursor.execute(sql, params)
                while batch := cursor.fetchmany(batch_size):
                    yield batch

    def count(self, table: LedgerTable, where: RequestFilter = EVERYTHING) -> int:
        where_sql, params = where.where("%s")
        with self._transaction() as conn:
            row = conn.execute(count_rows_sql(table, where_sql).encode(), params).fetchone()
        return int(row[0]) if row else 0

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        with self._lock:
            conn = self._connection()
            try:
                with conn.transaction():
                    yield conn
            except psycopg.OperationalError:
                # The server went away: drop the connection so the next call reconnects.
                conn.close()
                self._conn = None
                raise

    def _connection(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, round(self._connect_timeout))
            )
        return self._conn

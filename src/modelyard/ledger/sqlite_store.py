"""The embedded ledger: one SQLite file, in WAL mode so the CLI can read while the gateway writes."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Generator, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any

from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_random_exponential

from modelyard.ledger import migrate
from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow, Values
from modelyard.ledger.series import Series, SeriesQuery, series_in_database, sqlite_bucket
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

# Adapters for the two values a ledger row holds that are not exactly str, int or float: None and bool.
# Without one, Python's sqlite3 module meets such a value by looking it up as an attribute of its
# protocol type, and that miss formats an AttributeError message and clears it again before the value
# is bound as NULL or an int: ~3-5k instructions a value, a third of what storing a request's rows cost
# the ingester (bench/ledger_ingest_counts.py: 181k -> 129k per request row). A registered adapter is
# found in a dict first. ``{}.get`` maps None to None (bound as NULL) in C, with no Python frame; ``int``
# maps a bool to the 0/1 SQLite stores either way. Process-wide and idempotent; stored values unchanged.
_NOTHING: dict[None, None] = {}
sqlite3.register_adapter(type(None), _NOTHING.get)
sqlite3.register_adapter(bool, int)


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def enter_wal(db: sqlite3.Connection, *, within_s: float) -> None:
    """Put the file in WAL mode, retrying while sibling processes do the same.

    Several processes opening one fresh file at once (``serve --workers N``, a process pool) each take a
    shared lock to read the header and then want the exclusive one to switch the journal. SQLite sees
    that as a deadlock and answers "database is locked" at once, without its busy handler, so the
    connection's timeout does not help: one of them must let go and try again.
    """
    for attempt in Retrying(
        retry=retry_if_exception(_locked),
        stop=stop_after_delay(within_s),
        wait=wait_random_exponential(multiplier=0.005, max=0.2),
        reraise=True,
    ):
        with attempt:
            db.execute("PRAGMA journal_mode=WAL")


_INSERT_REQUEST = insert_sql("requests", REQUEST_COLUMNS, "?")
_INSERT_ATTEMPT = insert_sql("attempts", ATTEMPT_COLUMNS, "?")


class SQLiteStore:
    """A :class:`~modelyard.ledger.store.LedgerStore` on a SQLite file (or ``":memory:"``).

    The connection is shared by the writer's worker threads and guarded by a lock; transactions are
    explicit (``isolation_level=None``) so a batch and a migration each commit exactly once.
    """

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
        # WAL: readers never block the writer. synchronous=NORMAL: a commit survives a process crash
        # (the spool covers the rest) without an fsync per batch.
        enter_wal(self._db, within_s=10.0)
        self._db.execute("PRAGMA synchronous=NORMAL")
        self.migrate()

    def migrate(self) -> list[int]:
        """Apply the missing migrations in one transaction. Returns the versions applied."""
        with self._write() as db:
            db.execute(migrate.SCHEMA_MIGRATIONS_DDL)
            applied = {v for (v,) in db.execute("SELECT version FROM schema_migrations")}
            todo = migrate.pending("sqlite", applied)
            for migration in todo:
                for statement in migration.statements():
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (migration.version, time.time()),
                )
        return [m.version for m in todo]

    def applied_versions(self) -> list[int]:
        with self._lock:
            return [v for (v,) in self._db.execute("SELECT version FROM schema_migrations ORDER BY version")]

    def insert(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> int:
        return self.insert_values(request_values(requests), attempt_values(attempts))

    def insert_values(self, requests: Sequence[Values], attempts: Sequence[Values]) -> int:
        try:
            with self._write() as db:
                new = db.executemany(_INSERT_REQUEST, requests).rowcount
                db.executemany(_INSERT_ATTEMPT, attempts)
        except (sqlite3.IntegrityError, OverflowError) as exc:  # a NOT NULL broken; an int beyond 64 bits
            raise RowsRejected(str(exc)) from exc
        return new

    def query(
        self, where: RequestFilter = EVERYTHING, *, limit: int | None = None, newest_first: bool = True
    ) -> list[RequestRow]:
        where_sql, params = where.where("?")
        if limit is not None:
            params.append(limit)
        with self._lock:
            cursor = self._db.execute(select_requests_sql(where_sql, limit, newest_first, "?"), params)
            return [request_from_db(values) for values in cursor]

    def query_attempts(self, where: RequestFilter = EVERYTHING) -> list[AttemptRow]:
        where_sql, params = where.where("?")
        with self._lock:
            return [attempt_from_db(v) for v in self._db.execute(select_attempts_sql(where_sql), params)]

    def summary(
        self, group_by: Sequence[GroupKey] = ("workload", "model"), where: RequestFilter = EVERYTHING
    ) -> list[SummaryRow]:
        def run(sql: str, params: Sequence[Any]) -> list[Any]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()  # one row per group, never per request

        return summarise_in_database(run, group_by, where, "?")

    def series(self, query: SeriesQuery) -> Series:
        def run(sql: str, params: Sequence[Any]) -> list[Any]:
            with self._lock:
                return self._db.execute(sql, params).fetchall()  # one row per group and bucket

        return series_in_database(run, query, "?", sqlite_bucket)

    def iter_rows(
        self, table: LedgerTable, where: RequestFilter = EVERYTHING, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        where_sql, params = where.where("?")
        with self._reader() as (db, lock):
            cursor = db.execute(select_rows_sql(table, where_sql, "?"), params)
            try:
                while True:
                    with lock:
                        batch = cursor.fetchmany(batch_size)
                    if not batch:
                        return
                    yield batch
            finally:
                cursor.close()

    def count(self, table: LedgerTable, where: RequestFilter = EVERYTHING) -> int:
        where_sql, params = where.where("?")
        with self._lock:
            (count,) = self._db.execute(count_rows_sql(table, where_sql), params).fetchone()
        return int(count)

    @contextmanager
    def _reader(self) -> Iterator[tuple[sqlite3.Connection, AbstractContextManager[Any]]]:
        """A connection for a long read, and the lock to take around each use of it.

        A file gets a read-only connection of its own: its one statement reads one WAL snapshot however
        long the export takes, and never holds up the writer's connection. An in-memory database has
        only the shared connection, taken batch by batch.
        """
        if self.path == ":memory:":
            yield self._db, self._lock
            return
        db = sqlite3.connect(Path(self.path).resolve().as_uri() + "?mode=ro", uri=True, timeout=10.0)
        try:
            yield db, nullcontext()
        finally:
            db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction. IMMEDIATE takes the write lock up front, so a second process (another
        gateway, or two starting at once and migrating) waits for us instead of failing mid-way."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

"""The one storage contract of the ledger, and :func:`open_store` that picks a backend from a URL.

Two backends implement :class:`LedgerStore`: SQLite (embedded default, ``sqlite:///path.db``) and
PostgreSQL (scaled out, ``postgresql://...``). Both are synchronous: the writer calls them from a worker
thread, never on the event loop, and the CLI calls them directly. The SQL they share is built here from
the row schema, so a column added to :mod:`modelyard.ledger.schema` (and a migration) reaches both.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any, Protocol

from modelyard.ledger.schema import AttemptRow, RequestRow, Values
from modelyard.ledger.series import Series, SeriesQuery
from modelyard.ledger.sql import (
    DEFAULT_BATCH_ROWS,
    EVERYTHING,
    SUMMARY_COLUMNS,
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
    select_summary_sql,
)
from modelyard.ledger.summary import GroupKey, SummaryRow

# The shared names are re-exported: importers of the contract find them here as before.
__all__ = [
    "DEFAULT_BATCH_ROWS",
    "EVERYTHING",
    "SUMMARY_COLUMNS",
    "LedgerStore",
    "LedgerTable",
    "RequestFilter",
    "RowsRejected",
    "attempt_from_db",
    "attempt_values",
    "count_rows_sql",
    "insert_sql",
    "open_store",
    "request_from_db",
    "request_values",
    "select_attempts_sql",
    "select_requests_sql",
    "select_rows_sql",
    "select_summary_sql",
    "sqlite_path",
]


class LedgerStore(Protocol):
    """Where ledger rows live. Writes are idempotent: replaying rows already stored changes nothing."""

    def insert(self, requests: Sequence[RequestRow], attempts: Sequence[AttemptRow]) -> int:
        """Store rows in one transaction, skipping any already present. Returns how many requests were new.

        Raises :class:`RowsRejected` if a row breaks a constraint; the driver's own errors otherwise.
        """
        ...

    def insert_values(self, requests: Sequence[Values], attempts: Sequence[Values]) -> int:
        """:meth:`insert` for rows given as their column values (``REQUEST_COLUMNS``/``ATTEMPT_COLUMNS``
        order), as the spool holds them."""
        ...

    def query(
        self, where: RequestFilter = EVERYTHING, *, limit: int | None = None, newest_first: bool = True
    ) -> list[RequestRow]:
        """Requests matching ``where``, ordered by time."""
        ...

    def query_attempts(self, where: RequestFilter = EVERYTHING) -> list[AttemptRow]:
        """Attempts of the requests matching ``where``, oldest first."""
        ...

    def summary(
        self, group_by: Sequence[GroupKey] = ("workload", "model"), where: RequestFilter = EVERYTHING
    ) -> list[SummaryRow]:
        """Per-group figures (see :class:`~modelyard.ledger.summary.SummaryRow`), computed in the database."""
        ...

    def series(self, query: SeriesQuery) -> Series:
        """Figures per time bucket and group (see :mod:`modelyard.ledger.series`), computed in the
        database; raises ``ValueError`` when the query is outside its bounds."""
        ...

    def iter_rows(
        self, table: LedgerTable, where: RequestFilter = EVERYTHING, *, batch_size: int = DEFAULT_BATCH_ROWS
    ) -> Generator[list[tuple[Any, ...]], None, None]:
        """The rows of ``table`` for the requests matching ``where``, oldest first, in batches of at most
        ``batch_size``, read from a database cursor as they are consumed (memory stays one batch).

        Rows are tuples of :data:`REQUEST_COLUMNS` or :data:`ATTEMPT_COLUMNS` as the driver returns them
        (SQLite booleans are 0/1). Close the iterator (or exhaust it) to release the cursor.
        """
        ...

    def count(self, table: LedgerTable, where: RequestFilter = EVERYTHING) -> int:
        """How many rows :meth:`iter_rows` would yield."""
        ...

    def close(self) -> None: ...


def open_store(url: str) -> LedgerStore:
    """Open (and migrate) the store ``url`` names: ``sqlite:///path.db`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        from modelyard.ledger.sqlite_store import SQLiteStore

        return SQLiteStore(sqlite_path(url))
    if url.startswith(("postgresql://", "postgres://")):
        from modelyard.ledger.postgres_store import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unsupported ledger URL {url!r}: use sqlite:///path.db or postgresql://user@host/db")


def sqlite_path(url: str) -> str:
    """The file of a ``sqlite:///`` URL: ``sqlite:///rel.db`` is relative, ``sqlite:////abs.db`` absolute."""
    return url.removeprefix("sqlite:///")

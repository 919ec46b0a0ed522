"""What both ledger stores share: the request filter, and the SQL built from the row schema.

A column added to :mod:`modelyard.ledger.schema` (and a migration) reaches both backends through here.
Kept apart from :mod:`modelyard.ledger.store` (the contract and :func:`~modelyard.ledger.store.open_store`,
which imports the backends) so that a backend importing this never imports itself back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any, Literal

from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow

#: Columns :func:`modelyard.ledger.summary.summarise` needs, in the order it expects them.
SUMMARY_COLUMNS = (
    "workload",
    "model",
    "provider",
    "purpose",
    "status",
    "error_kind",
    "input_tokens",
    "output_tokens",
    "cost_pico_usd",
    "latency_ms",
    "ttft_ms",
)


@dataclass(frozen=True, slots=True)
class RequestFilter:
    """Which requests to read. ``since`` is inclusive and ``until`` exclusive, both unix seconds."""

    since: float | None = None
    until: float | None = None
    workload: str | None = None
    model: str | None = None
    status: int | None = None
    tenant: str | None = None
    #: ``answer``, ``shadow``, ``eval`` or ``judge`` (see ``RequestRow.purpose``).
    purpose: str | None = None
    #: The eval run whose calls to read (``RequestRow.eval_run_id``).
    eval_run_id: str | None = None
    #: The prompt template (``RequestRow.template_id``), and one version of it.
    template_id: str | None = None
    template_version: str | None = None
    #: One OpenTelemetry trace (``RequestRow.trace_id``, 32 hex digits).
    trace_id: str | None = None

    def where(self, placeholder: str) -> tuple[str, list[Any]]:
        """A ``WHERE`` clause (or ``""``) and its parameters, for a driver's placeholder style."""
        tests: list[str] = []
        params: list[Any] = []
        for column, op, value in (
            ("ts", ">=", self.since),
            ("ts", "<", self.until),
            ("workload", "=", self.workload),
            ("model", "=", self.model),
            ("status", "=", self.status),
            ("tenant", "=", self.tenant),
            ("purpose", "=", self.purpose),
            ("eval_run_id", "=", self.eval_run_id),
            ("template_id", "=", self.template_id),
            ("template_version", "=", self.template_version),
            ("trace_id", "=", self.trace_id),
        ):
            if value is not None:
                tests.append(f"{column} {op} {placeholder}")
                params.append(value)
        return (" WHERE " + " AND ".join(tests) if tests else ""), params


class RowsRejected(Exception):
    """The database refused the rows themselves (a constraint or type violation): retrying cannot help."""


#: The default filter: every request.
EVERYTHING = RequestFilter()

#: Rows per batch when a table is streamed out (export): big enough to amortise the per-batch work,
#: small enough that a batch of Python tuples stays a few tens of MB.
DEFAULT_BATCH_ROWS = 10_000

LedgerTable = Literal["requests", "attempts"]


def _bool_columns(cls: type) -> frozenset[str]:
    # The row modules use postponed annotations, so field types are strings.
    return frozenset(f.name for f in fields(cls) if f.type in ("bool", bool))


REQUEST_BOOLS = _bool_columns(RequestRow)
ATTEMPT_BOOLS = _bool_columns(AttemptRow)


def insert_sql(table: str, columns: Sequence[str], placeholder: str) -> str:
    """An idempotent ``INSERT`` of one row: a row whose key is already stored is skipped.

    ``ON CONFLICT DO NOTHING`` (SQLite ≥ 3.24 and PostgreSQL) rather than SQLite's ``INSERT OR IGNORE``,
    which would also silently drop rows that break a ``NOT NULL`` constraint.
    """
    marks = ", ".join([placeholder] * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


_REQUEST_VALUES = attrgetter(*REQUEST_COLUMNS)
_ATTEMPT_VALUES = attrgetter(*ATTEMPT_COLUMNS)


def request_values(rows: Iterable[RequestRow]) -> list[tuple[Any, ...]]:
    return [_REQUEST_VALUES(row) for row in rows]


def attempt_values(rows: Iterable[AttemptRow]) -> list[tuple[Any, ...]]:
    return [_ATTEMPT_VALUES(row) for row in rows]


def request_from_db(values: Sequence[Any]) -> RequestRow:
    """A :class:`RequestRow` from a ``SELECT`` of :data:`REQUEST_COLUMNS` (SQLite booleans are 0/1)."""
    data = dict(zip(REQUEST_COLUMNS, values, strict=True))
    for name in REQUEST_BOOLS:
        data[name] = bool(data[name])
    return RequestRow(**data)


def attempt_from_db(values: Sequence[Any]) -> AttemptRow:
    data = dict(zip(ATTEMPT_COLUMNS, values, strict=True))
    for name in ATTEMPT_BOOLS:
        data[name] = bool(data[name])
    return AttemptRow(**data)


def select_requests_sql(where_sql: str, limit: int | None, newest_first: bool, placeholder: str) -> str:
    order = "DESC" if newest_first else "ASC"
    sql = f"SELECT {', '.join(REQUEST_COLUMNS)} FROM requests{where_sql}"
    sql += f" ORDER BY ts {order}, request_id {order}"
    return sql + (f" LIMIT {placeholder}" if limit is not None else "")


def select_attempts_sql(where_sql: str) -> str:
    columns = ", ".join(f"a.{c}" for c in ATTEMPT_COLUMNS)
    inner = f"SELECT request_id FROM requests{where_sql}"
    order = "ORDER BY a.ts, a.request_id, a.attempt"
    return f"SELECT {columns} FROM attempts a WHERE a.request_id IN ({inner}) {order}"


def select_rows_sql(table: LedgerTable, where_sql: str, placeholder: str) -> str:
    """The rows :meth:`LedgerStore.iter_rows` streams, oldest first."""
    if table == "requests":
        return select_requests_sql(where_sql, None, False, placeholder)
    return select_attempts_sql(where_sql)


def count_rows_sql(table: LedgerTable, where_sql: str) -> str:
    if table == "requests":
        return f"SELECT COUNT(*) FROM requests{where_sql}"
    return f"SELECT COUNT(*) FROM attempts WHERE request_id IN (SELECT request_id FROM requests{where_sql})"


def select_summary_sql(where_sql: str) -> str:
    return f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM requests{where_sql}"

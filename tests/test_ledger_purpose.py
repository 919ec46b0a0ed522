"""Migration 0005 (requests.purpose, requests.eval_run_id) on a ledger that already holds rows, on SQLite and
PostgreSQL; the purpose filter and grouping of the stores; spool lines written before the columns existed."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import orjson
import psycopg

from modelyard.ledger import migrate, spool
from modelyard.ledger.schema import REQUEST_COLUMNS
from modelyard.ledger.store import RequestFilter, open_store, sqlite_path
from tests.ledger_support import attempt, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name

#: The requests columns a ledger had before 0005 (schema version 2): every column up to ``shadow_of``.
V2_COLUMNS = REQUEST_COLUMNS[: REQUEST_COLUMNS.index("shadow_of") + 1]


def _ledger_at_version_4(url: str, rows: list[tuple[Any, ...]]) -> None:
    """A database migrated to 0004 only, holding ``rows`` (values of :data:`V2_COLUMNS`)."""
    sqlite = url.startswith("sqlite")
    dialect: migrate.Dialect = "sqlite" if sqlite else "postgres"
    mark = "?" if sqlite else "%s"
    conn: Any = sqlite3.connect(sqlite_path(url)) if sqlite else psycopg.connect(url)
    with conn:
        conn.execute(migrate.SCHEMA_MIGRATIONS_DDL)
        for migration in migrate.migrations(dialect)[:4]:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO schema_migrations VALUES ({mark}, {mark})", (migration.version, time.time())
            )
        insert = (
            f"INSERT INTO requests ({', '.join(V2_COLUMNS)}) VALUES ({', '.join([mark] * len(V2_COLUMNS))})"
        )
        for row in rows:
            conn.execute(insert, row)
    conn.close()


def _v2(row: Any) -> tuple[Any, ...]:
    return tuple(getattr(row, c) for c in V2_COLUMNS)


def test_0005_adds_purpose_to_stored_rows_and_marks_old_shadows(store_url: str) -> None:
    answer, mirrored = request(1), request(2, request_id="r1-shadow", shadow_of="r1")
    _ledger_at_version_4(store_url, [_v2(answer), _v2(mirrored)])
    store = open_store(store_url)  # applies 0005 to the rows already there
    assert 5 in store.applied_versions()  # type: ignore[attr-defined]
    rows = {r.request_id: r for r in store.query()}
    assert (rows["r1"].purpose, rows["r1"].eval_run_id) == ("answer", None)
    assert (rows["r1-shadow"].purpose, rows["r1-shadow"].eval_run_id) == ("shadow", None)
    store.close()


def test_purpose_filters_and_groups_requests(store_url: str) -> None:
    store = open_store(store_url)
    store.insert(
        [
            request(1),
            request(2, purpose="eval", eval_run_id="20261203T120000Z"),
            request(3, purpose="eval", eval_run_id="20261203T120000Z", cost_pico_usd=None, priced=False),
            request(4, purpose="judge", eval_run_id="20261203T120000Z", model="judge"),
        ],
        [attempt(1), attempt(2, purpose="eval"), attempt(4, purpose="judge")],
    )
    eval_only = store.query(RequestFilter(purpose="eval"), newest_first=False)
    assert [(r.request_id, r.eval_run_id) for r in eval_only] == [
        ("r2", "20261203T120000Z"),
        ("r3", "20261203T120000Z"),
    ]
    groups = {g.purpose: g for g in store.summary(("purpose",))}
    assert {p: (g.requests, g.unpriced) for p, g in groups.items()} == {
        "answer": (1, 0),
        "eval": (2, 1),
        "judge": (1, 0),
    }
    assert [g.requests for g in store.summary(("workload",), RequestFilter(purpose="answer"))] == [1]
    store.close()


def test_a_spool_line_of_schema_2_is_stored_as_an_answer(tmp_path: Any) -> None:
    """A segment left by a modelyard from before 0005 (a crash before an upgrade) replays: its requests
    are answers, with no eval run."""
    row = request(1)
    line = orjson.dumps([2, list(_v2(row)), []])
    _version, values, _ = spool.decode_values(line)
    assert values is not None
    decoded = dict(zip(REQUEST_COLUMNS, values, strict=True))
    assert (decoded["purpose"], decoded["eval_run_id"], decoded["request_id"]) == ("answer", None, "r1")

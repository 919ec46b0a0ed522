"""Shared by the ledger tests: row builders and a ``store_url`` fixture over SQLite and real PostgreSQL.

PostgreSQL tests run in a fresh schema per test (through libpq's ``options=-csearch_path=...``), dropped
afterwards, so parallel runs on the shared server never see each other's tables.
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from modelyard.ledger import migrate
from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.ledger.store import sqlite_path

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def request(i: int, **overrides: Any) -> RequestRow:
    """A successful, priced chat request ``r<i>`` at ``ts = 1_700_000_000 + i``."""
    fields: dict[str, Any] = dict(
        request_id=f"r{i}",
        ts=1_700_000_000.0 + i,
        endpoint="chat",
        workload="support",
        data_class="internal",
        tenant=None,
        api_key_id="key-1",
        model="gpt-x",
        provider="openai",
        provider_kind="openai",
        upstream_model="gpt-x-2025",
        status=200,
        error_kind=None,
        streamed=i % 2 == 0,
        input_tokens=100 + i,
        output_tokens=10 + i,
        cost_pico_usd=1_000_000 * (i + 1),
        priced=True,
        price_version="2025-06",
        latency_ms=100.0 + i,
        ttft_ms=20.0 + i,
        attempts=1,
    )
    fields.update(overrides)
    return RequestRow(**fields)


def attempt(i: int, n: int = 1, **overrides: Any) -> AttemptRow:
    fields: dict[str, Any] = dict(
        request_id=f"r{i}",
        attempt=n,
        ts=1_700_000_000.0 + i,
        provider="openai",
        provider_kind="openai",
        upstream_model="gpt-x-2025",
        status=200,
        error_kind=None,
        latency_ms=90.0 + i,
        input_tokens=100 + i,
        output_tokens=10 + i,
        cost_pico_usd=1_000_000 * (i + 1),
        priced=True,
    )
    fields.update(overrides)
    return AttemptRow(**fields)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose tables land in a fresh schema of the test database, dropped after the test."""
    schema = f"ledger_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_URL}: {exc}")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}".encode())
        try:
            yield f"{PG_URL}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on an SQLite file and on the real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_url"))


def ledger_before(store_url: str, version: int, columns: Sequence[str], row: RequestRow) -> None:
    """A ledger at ``store_url`` migrated up to ``version`` and no further, holding ``row`` in the request
    columns that version had: the starting point of a test that a later migration keeps the rows."""
    sqlite = store_url.startswith("sqlite")
    dialect: migrate.Dialect = "sqlite" if sqlite else "postgres"
    mark = "?" if sqlite else "%s"
    conn: Any = sqlite3.connect(sqlite_path(store_url)) if sqlite else psycopg.connect(store_url)
    with conn:
        conn.execute(migrate.SCHEMA_MIGRATIONS_DDL)
        for migration in migrate.migrations(dialect)[:version]:
            for statement in migration.statements():
                conn.execute(statement)
            conn.execute(
                f"INSERT INTO schema_migrations VALUES ({mark}, {mark})", (migration.version, time.time())
            )
        conn.execute(
            f"INSERT INTO requests ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
            tuple(getattr(row, c) for c in columns),
        )
    conn.close()

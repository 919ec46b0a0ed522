"""The stores: migrations, idempotent inserts, filters and exact summaries, on SQLite and PostgreSQL."""

from __future__ import annotations

import statistics
from decimal import Decimal

import psycopg
import pytest

from modelyard.ledger import migrate
from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS
from modelyard.ledger.sqlite_store import SQLiteStore
from modelyard.ledger.store import EVERYTHING, RequestFilter, open_store
from modelyard.ledger.summary import percentile, summarise
from tests.ledger_support import attempt, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name


def _columns(store_url: str, table: str) -> list[str]:
    store = open_store(store_url)  # creates the tables
    if isinstance(store, SQLiteStore):
        names = [row[1] for row in store._db.execute(f"PRAGMA table_info({table})")]
        store.close()
        return names
    store.close()
    with psycopg.connect(store_url) as conn:
        query = "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
        query += " AND table_schema = current_schema() ORDER BY ordinal_position"
        return [name for (name,) in conn.execute(query.encode(), (table,))]


def test_migrations_apply_once_and_reopening_applies_nothing(store_url: str) -> None:
    every = [
        m.version for m in migrate.migrations("sqlite" if store_url.startswith("sqlite") else "postgres")
    ]
    first = open_store(store_url)
    assert first.applied_versions() == every  # type: ignore[attr-defined]
    assert first.migrate() == []  # type: ignore[attr-defined]
    first.close()
    second = open_store(store_url)
    assert second.applied_versions() == every  # type: ignore[attr-defined]
    second.close()


def test_tables_have_exactly_the_row_schema_columns(store_url: str) -> None:
    """The migration and the dataclasses are one contract: a column added to one must reach the other."""
    assert _columns(store_url, "requests") == list(REQUEST_COLUMNS)
    assert _columns(store_url, "attempts") == list(ATTEMPT_COLUMNS)


def test_both_dialects_ship_the_same_migration_numbers() -> None:
    assert [m.name for m in migrate.migrations("sqlite")] == [m.name for m in migrate.migrations("postgres")]


def test_rows_round_trip_with_every_field(store_url: str) -> None:
    row = request(
        1,
        tenant="acme",
        streamed=True,
        usage_estimated=True,
        client_cancelled=True,
        cost_pico_usd=None,
        priced=False,
        prompt='[{"role":"user"}]',
        upstream_latency_ms=80.25,
        overhead_ms=0.5,
    )
    store = open_store(store_url)
    store.insert([row], [attempt(1, 1, status=429, error_kind="rate_limit_exceeded"), attempt(1, 2)])
    assert store.query() == [row]
    attempts = store.query_attempts()
    assert [(a.attempt, a.status, a.error_kind) for a in attempts] == [
        (1, 429, "rate_limit_exceeded"),
        (2, 200, None),
    ]
    assert attempts[0] == attempt(1, 1, status=429, error_kind="rate_limit_exceeded")
    store.close()


def test_insert_is_idempotent_so_replays_never_duplicate(store_url: str) -> None:
    store = open_store(store_url)
    assert store.insert([request(1), request(2)], [attempt(1), attempt(2)]) == 2
    assert store.insert([request(1), request(2)], [attempt(1), attempt(2)]) == 0
    # A replay overlapping what is stored adds only the new rows.
    assert store.insert([request(2), request(3)], [attempt(2), attempt(3)]) == 1
    assert sorted(r.request_id for r in store.query()) == ["r1", "r2", "r3"]
    assert len(store.query_attempts()) == 3
    store.close()


def test_query_filters_order_and_limit(store_url: str) -> None:
    store = open_store(store_url)
    rows = [
        request(0),
        request(1, workload="batch"),
        request(2, model="claude-y"),
        request(3, status=429, error_kind="rate_limit_exceeded"),
        request(4),
    ]
    store.insert(rows, [])

    def ids(where: RequestFilter = EVERYTHING, **kwargs: object) -> list[str]:
        return [r.request_id for r in store.query(where, **kwargs)]  # type: ignore[arg-type]

    assert ids() == ["r4", "r3", "r2", "r1", "r0"]
    assert ids(newest_first=False, limit=2) == ["r0", "r1"]
    assert ids(limit=2) == ["r4", "r3"]
    assert ids(RequestFilter(since=1_700_000_001, until=1_700_000_003)) == ["r2", "r1"]
    assert ids(RequestFilter(workload="batch")) == ["r1"]
    assert ids(RequestFilter(model="claude-y")) == ["r2"]
    assert ids(RequestFilter(status=429)) == ["r3"]
    assert ids(RequestFilter(workload="support", model="gpt-x", status=200)) == ["r4", "r0"]
    assert [a.request_id for a in store.query_attempts(RequestFilter(workload="batch"))] == []
    store.close()


def test_summary_figures_are_exact(store_url: str) -> None:
    # Twenty successful requests with latencies 101..120 ms; three errors; two unpriced; one group
    # entirely unpriced. Costs near the BIGINT limit: their sum overflows 64 bits, and must stay exact.
    big = 9_000_000_000_000_000_001
    rows = [request(i, latency_ms=100.0 + i, ttft_ms=float(i)) for i in range(1, 21)]
    rows[0].cost_pico_usd = big
    rows[1].cost_pico_usd = big
    rows[2].cost_pico_usd, rows[2].priced = None, False
    rows[3].cost_pico_usd, rows[3].priced = None, False
    rows.append(
        request(21, status=502, error_kind="upstream_unavailable", latency_ms=5.0, cost_pico_usd=None)
    )
    rows.append(request(22, status=200, error_kind="upstream_stream_cut", latency_ms=7.0))
    rows.append(request(23, status=400, error_kind="invalid_request", latency_ms=1.0))
    rows.append(request(24, workload="batch", model="local-llama", cost_pico_usd=None, priced=False))
    store = open_store(store_url)
    store.insert(rows, [])
    [batch, support] = store.summary(("workload", "model"))
    store.close()

    priced = [r.cost_pico_usd for r in rows[:23] if r.cost_pico_usd is not None]
    assert support.workload == "support" and support.model == "gpt-x" and support.provider is None
    assert support.requests == 23
    assert support.errors == 3
    assert support.error_rate == pytest.approx(3 / 23)
    assert support.input_tokens == sum(r.input_tokens for r in rows[:23])
    assert support.output_tokens == sum(r.output_tokens for r in rows[:23])
    assert support.cost_usd == Decimal(sum(priced)) / Decimal(10**12)
    assert support.cost_usd == Decimal("18000000.000000000002") + Decimal(sum(priced[2:])) / Decimal(10**12)
    assert support.unpriced == 3
    # Percentiles over the 20 successful requests only (errors are excluded), as statistics computes them.
    cuts = statistics.quantiles([100.0 + i for i in range(1, 21)], n=20, method="inclusive")
    assert (support.latency_p50_ms, support.latency_p95_ms) == (110.5, cuts[18]) == (110.5, 119.05)
    assert support.ttft_p50_ms == 10.5

    assert (batch.workload, batch.model, batch.requests, batch.unpriced) == ("batch", "local-llama", 1, 1)
    assert batch.cost_usd is None  # all unpriced: no cost, never $0
    assert batch.to_dict()["cost_usd"] is None


def test_summary_groupings_and_filters(store_url: str) -> None:
    store = open_store(store_url)
    store.insert(
        [request(1), request(2, model="claude-y", provider="anthropic"), request(3, workload=None)], []
    )
    [total] = store.summary(())
    assert (total.requests, total.cost_usd) == (3, Decimal("0.000009"))  # 2 + 3 + 4 micro-dollars
    assert [(g.provider, g.requests) for g in store.summary(("provider",))] == [
        ("anthropic", 1),
        ("openai", 2),
    ]
    # A request with no workload is a group of its own, listed last.
    assert [(g.workload, g.requests) for g in store.summary(("workload",))] == [("support", 2), (None, 1)]
    [only] = store.summary(("model",), RequestFilter(model="claude-y"))
    assert (only.model, only.requests, only.cost_usd) == ("claude-y", 1, Decimal("0.000003"))
    assert store.summary(("model",), RequestFilter(since=2_000_000_000)) == []
    store.close()


@pytest.mark.parametrize(
    ("values", "pct", "expected"),
    [
        ([], 50, None),
        ([42.0], 95, 42.0),
        ([1.0, 2.0], 50, 1.5),
        ([1.0, 2.0, 3.0, 4.0], 95, 3.85),
        ([5.0, 1.0, 3.0], 50, 3.0),
    ],
)
def test_percentile(values: list[float], pct: int, expected: float | None) -> None:
    assert percentile(values, pct) == (pytest.approx(expected) if expected is not None else None)


def test_summarise_rejects_unknown_group() -> None:
    with pytest.raises(ValueError, match="allowed: workload, model, provider"):
        summarise([], ("tenant",))  # type: ignore[arg-type]


def test_open_store_rejects_unknown_url() -> None:
    with pytest.raises(ValueError, match=r"sqlite:///path\.db or postgresql://"):
        open_store("mysql://localhost/x")


def test_none_and_bools_bind_as_null_and_integers_with_the_adapters() -> None:
    """sqlite_store registers process-wide adapters for None and bool (a cost, not a meaning, change):
    every sqlite3 connection in the process still stores NULL and 0/1 for them."""
    import sqlite3

    import modelyard.ledger.sqlite_store  # noqa: F401  (registers the adapters)

    db = sqlite3.connect(":memory:")
    row = db.execute(
        "SELECT typeof(?), typeof(?), ?, ?, ? IS NULL", (True, None, True, False, None)
    ).fetchone()
    assert row == ("integer", "null", 1, 0, 1)

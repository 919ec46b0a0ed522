"""Big-ledger reading on SQLite and PostgreSQL: rows streamed in batches from a cursor, summaries computed
in SQL that agree to the last digit with the Python reference (:func:`summarise`), exact cost strings."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from modelyard.ledger.export import export_batches, usd_decimal, usd_text
from modelyard.ledger.schema import REQUEST_COLUMNS, RequestRow
from modelyard.ledger.store import EVERYTHING, SUMMARY_COLUMNS, RequestFilter, open_store
from modelyard.ledger.summary import GroupKey, pico_to_usd, summarise
from modelyard.ledger.summary import usd_text as decimal_text
from tests.ledger_support import attempt, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name


def random_rows(count: int, seed: int = 7) -> list[RequestRow]:
    """Requests over a few groups (one with no workload), with errors, unpriced rows, missing ttfts,
    tied latencies and costs whose per-group sums overflow 64 bits."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        status = rng.choice([200] * 8 + [429, 502])
        rows.append(
            request(
                i,
                workload=rng.choice(["support", "batch", None]),
                model=rng.choice(["gpt-x", "claude-y"]),
                provider=rng.choice(["openai", "anthropic"]),
                status=status,
                error_kind=None if status == 200 and rng.random() > 0.05 else "upstream_stream_cut",
                input_tokens=rng.randrange(0, 5000),
                output_tokens=rng.randrange(0, 900),
                cost_pico_usd=rng.choice([None, rng.randrange(0, 10**9), 4 * 10**18 + i]),
                latency_ms=float(rng.randrange(1, 40)) if i % 3 else rng.uniform(1, 5000),
                ttft_ms=None if rng.random() < 0.2 else rng.uniform(1, 900),
            )
        )
    return rows


@pytest.mark.parametrize(
    "group_by", [("workload", "model"), ("provider",), ("model", "workload", "provider"), ()]
)
def test_sql_summary_equals_the_python_reference(store_url: str, group_by: tuple[GroupKey, ...]) -> None:
    rows = random_rows(400)
    store = open_store(store_url)
    store.insert(rows, [])
    for where in (EVERYTHING, RequestFilter(since=1_700_000_100, status=200), RequestFilter(model="gpt-x")):
        reference_rows = [
            tuple(getattr(r, c) for c in SUMMARY_COLUMNS)
            for r in rows
            if (where.since is None or r.ts >= where.since)
            and (where.status is None or r.status == where.status)
            and (where.model is None or r.model == where.model)
        ]
        assert store.summary(group_by, where) == summarise(reference_rows, group_by)
    store.close()


def test_summary_of_an_empty_ledger_is_empty(store_url: str) -> None:
    store = open_store(store_url)
    assert store.summary(()) == []
    assert store.summary(("workload",)) == []
    store.close()


def test_rows_stream_in_batches_at_the_boundaries(store_url: str) -> None:
    store = open_store(store_url)
    store.insert([request(i) for i in reversed(range(10))], [attempt(i, n) for i in range(4) for n in (2, 1)])
    batches = list(store.iter_rows("requests", batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 3, 1]
    assert [row[0] for b in batches for row in b] == [f"r{i}" for i in range(10)]  # oldest first
    assert len(batches[0][0]) == len(REQUEST_COLUMNS)
    assert [len(b) for b in store.iter_rows("requests", batch_size=5)] == [5, 5]
    attempts = [row[:2] for b in store.iter_rows("attempts", batch_size=3) for row in b]
    assert attempts == [(f"r{i}", n) for i in range(4) for n in (1, 2)]
    selected = RequestFilter(since=1_700_000_002, until=1_700_000_004)
    assert [row[:2] for b in store.iter_rows("attempts", selected) for row in b] == [
        ("r2", 1),
        ("r2", 2),
        ("r3", 1),
        ("r3", 2),
    ]
    assert (store.count("requests"), store.count("attempts"), store.count("attempts", selected)) == (10, 8, 4)
    assert list(store.iter_rows("requests", RequestFilter(since=2_000_000_000))) == []
    store.close()


def test_the_store_stays_usable_while_rows_stream(store_url: str) -> None:
    """The stream reads on a connection of its own: the store answers (and writes) mid-stream."""
    store = open_store(store_url)
    store.insert([request(i) for i in range(6)], [])
    stream = store.iter_rows("requests", batch_size=2)
    first = next(stream)
    store.insert([request(6)], [])
    assert store.count("requests") == 7
    rest = [row for batch in stream for row in batch]
    assert [row[0] for row in first + rest][:6] == [f"r{i}" for i in range(6)]
    stream = store.iter_rows("requests", batch_size=2)
    next(stream)
    stream.close()  # abandoned half-way: the cursor and its connection are released
    assert store.count("requests") == 7
    store.close()


@pytest.mark.parametrize(
    "pico", [0, 1, -1, 999_999_999_999, 10**12, -(10**12) - 5, 2_500_000_001, 2**63 - 1, -(2**63)]
)
def test_cost_strings_and_decimals_are_exact(pico: int) -> None:
    expected = pico_to_usd(pico)
    assert usd_text(pa.array([pico, None], pa.int64())).to_pylist() == [decimal_text(expected), None]
    assert usd_decimal(pa.array([pico, None], pa.int64())).to_pylist() == [expected, None]
    assert "E" not in decimal_text(expected)


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_a_failed_export_leaves_no_file(tmp_path: Path, fmt: str) -> None:
    def batches():  # type: ignore[no-untyped-def]
        yield [tuple(getattr(request(1), c) for c in REQUEST_COLUMNS)]
        raise ConnectionError("the database went away")

    out = tmp_path / f"out.{fmt}"
    with pytest.raises(ConnectionError):
        export_batches(batches(), RequestRow, out, fmt)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_usd_decimal_keeps_sums_exact() -> None:
    costs = [2_500_000_001, 1_500_000_000, 9_000_000_000_000_000_001]
    total = sum(usd_decimal(pa.array(costs, pa.int64())).to_pylist(), Decimal(0))
    assert total == pico_to_usd(sum(costs))


def test_summary_of_thousands_of_groups_spans_several_rank_queries(store_url: str) -> None:
    """4,500 groups of two need 9,000 (group, position) pairs: more than one query's parameters hold."""
    rows = [request(i, workload=f"w{i // 2}", latency_ms=float(i % 7), ttft_ms=float(i)) for i in range(9000)]
    store = open_store(store_url)
    store.insert(rows, [])
    reference = summarise([tuple(getattr(r, c) for c in SUMMARY_COLUMNS) for r in rows], ("workload",))
    assert store.summary(("workload",)) == reference
    assert len(reference) == 4500
    store.close()

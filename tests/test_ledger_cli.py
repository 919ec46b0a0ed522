"""``modelyard ledger list|summary|export`` through click's runner, on a real SQLite or PostgreSQL ledger."""

from __future__ import annotations

import csv
import json
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from modelyard.cli.ledger import ledger_group
from modelyard.ledger.export import arrow_schema
from modelyard.ledger.schema import ATTEMPT_COLUMNS, REQUEST_COLUMNS, AttemptRow, RequestRow
from modelyard.ledger.store import open_store
from tests.ledger_support import attempt, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name


@pytest.fixture
def ledger_url(store_url: str) -> str:
    """A ledger with three priced requests, one error, and one unpriced request in another workload."""
    store = open_store(store_url)
    store.insert(
        [
            request(1, cost_pico_usd=1_500_000_000),
            request(2, cost_pico_usd=2_500_000_001),
            request(3, status=429, error_kind="rate_limit_exceeded", cost_pico_usd=None, priced=False),
            request(4, workload="batch", model="llama-local", cost_pico_usd=None, priced=False),
        ],
        [attempt(1), attempt(2), attempt(3, 1, status=429), attempt(3, 2, status=429)],
    )
    store.close()
    return store_url


def run(*args: str) -> str:
    result = CliRunner().invoke(ledger_group, list(args), env={"COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_list_shows_newest_first_with_filters(ledger_url: str) -> None:
    out = run("list", "--db", ledger_url)
    assert out.index("r4") < out.index("r3") < out.index("r1")
    assert "429 rate_limit_exceeded" in out
    assert "$0.001500" in out and "unpriced" in out
    out = run("list", "--db", ledger_url, "--workload", "support", "--status", "200", "--limit", "1")
    assert "r2" in out and "r1" not in out and "r4" not in out


def test_list_json_is_one_row_per_line(ledger_url: str) -> None:
    lines = run(
        "list", "--db", ledger_url, "--json", "--since", "1700000002", "--until", "1700000004"
    ).splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["request_id"] for r in rows] == ["r3", "r2"]
    assert list(rows[0]) == list(REQUEST_COLUMNS)


def test_summary_table_flags_unpriced_and_shows_exact_cost(ledger_url: str) -> None:
    out = run("summary", "--db", ledger_url)
    support = next(line for line in out.splitlines() if "support" in line)
    assert "$0.004000" in support  # 0.0015 + 0.002500000001, shown to six places
    assert "+1 unpriced" in support
    assert "1 (33.3%)" in support
    batch = next(line for line in out.splitlines() if "batch" in line)
    assert "unpriced (1)" in batch and "$0" not in batch


def test_summary_json_has_exact_decimal_costs(ledger_url: str) -> None:
    groups = [
        json.loads(line)
        for line in run("summary", "--db", ledger_url, "--json", "--by", "workload").splitlines()
    ]
    by_workload = {g["workload"]: g for g in groups}
    assert Decimal(by_workload["support"]["cost_usd"]) == Decimal("0.004000000001")
    assert by_workload["support"]["unpriced"] == 1
    assert by_workload["support"]["errors"] == 1
    assert by_workload["batch"]["cost_usd"] is None
    assert by_workload["support"]["model"] is None  # not grouped by model


def test_export_parquet_is_readable_by_pyarrow(ledger_url: str, tmp_path: Path) -> None:
    out = tmp_path / "requests.parquet"
    run("export", "--db", ledger_url, "--format", "parquet", "--output", str(out))
    table = pq.read_table(out)
    assert table.column_names == [*REQUEST_COLUMNS, "cost_usd"]
    rows = table.to_pylist()
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3", "r4"]  # oldest first
    assert rows[1]["cost_pico_usd"] == 2_500_000_001
    assert rows[1]["cost_usd"] == Decimal("0.002500000001")  # decimal128(38, 12): exact, not a float
    assert rows[2]["cost_usd"] is None and rows[2]["priced"] is False
    assert str(table.schema.field("streamed").type) == "bool"


def test_export_csv_and_jsonl(ledger_url: str, tmp_path: Path) -> None:
    run(
        "export",
        "--db",
        ledger_url,
        "--format",
        "csv",
        "--output",
        str(tmp_path / "r.csv"),
        "--model",
        "gpt-x",
    )
    with open(tmp_path / "r.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [r["request_id"] for r in rows] == ["r1", "r2", "r3"]
    assert rows[0]["cost_usd"] == "0.001500000000" and rows[2]["cost_usd"] == ""
    assert rows[0]["streamed"] == "false" and rows[1]["streamed"] == "true"

    run(
        "export",
        "--db",
        ledger_url,
        "--format",
        "jsonl",
        "--output",
        str(tmp_path / "a.jsonl"),
        "--table",
        "attempts",
    )
    attempts = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [(a["request_id"], a["attempt"]) for a in attempts] == [("r1", 1), ("r2", 1), ("r3", 1), ("r3", 2)]
    assert attempts[0]["cost_usd"] == "0.000002000000"


def test_the_config_file_names_the_database(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'data' / 'ledger.db'}")
    store.insert([request(7)], [])
    store.close()
    config = tmp_path / "modelyard.yaml"
    config.write_text(
        "providers: {openai: {kind: openai, base_url: 'https://api.openai.com/v1'}}\n"
        "models: {gpt-x: {provider: openai}}\n"
        "ledger: {url: 'sqlite:///data/ledger.db'}\n"  # relative to the config file
    )
    assert "r7" in run("list", "--config", str(config))


def test_helpful_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(ledger_group, ["list"])
    assert result.exit_code == 2 and "--db sqlite:///modelyard.db, or --config" in result.output
    result = runner.invoke(ledger_group, ["list", "--db", f"sqlite:///{tmp_path / 'none.db'}"])
    assert result.exit_code == 1 and "no ledger database at" in result.output
    assert not (tmp_path / "none.db").exists()  # reading never creates a database
    result = runner.invoke(ledger_group, ["list", "--db", "x", "--since", "yesterday"])
    assert result.exit_code == 2 and "is not a time" in result.output


@pytest.fixture
def ten_url(store_url: str) -> str:
    """Ten requests r0..r9 stored newest first (so the export's order is the query's, not the insert's)."""
    store = open_store(store_url)
    rows = [request(i, cost_pico_usd=None if i == 4 else 10**12 * i + 7, priced=i != 4) for i in range(10)]
    store.insert(rows[::-1], [attempt(i) for i in range(10)])
    store.close()
    return store_url


def _export(url: str, out: Path, fmt: str, *args: str) -> str:
    return run("export", "--db", url, "--format", fmt, "--output", str(out), *args)


def test_export_across_batch_boundaries_writes_every_row_once(ten_url: str, tmp_path: Path) -> None:
    """Batches of 3 over 10 rows (3+3+3+1) write the same file as one batch."""
    for fmt in ("parquet", "csv", "jsonl"):
        small, whole = tmp_path / f"small.{fmt}", tmp_path / f"whole.{fmt}"
        assert "wrote 10 requests" in _export(ten_url, small, fmt, "--batch-size", "3")
        _export(ten_url, whole, fmt)
        if fmt == "parquet":
            assert pq.read_table(small).equals(pq.read_table(whole))
            assert pq.read_table(small).column("request_id").to_pylist() == [f"r{i}" for i in range(10)]
            # Batches are gathered into large row groups, not written one small group each.
            assert pq.ParquetFile(small).num_row_groups == 1
        else:
            assert small.read_bytes() == whole.read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "small.jsonl").read_text().splitlines()]
    assert [r["request_id"] for r in rows] == [f"r{i}" for i in range(10)]
    assert rows[9]["cost_usd"] == "9.000000000007" and rows[4]["cost_usd"] is None


def test_the_three_formats_carry_the_same_values(ten_url: str, tmp_path: Path) -> None:
    for fmt in ("parquet", "csv", "jsonl"):
        _export(ten_url, tmp_path / f"r.{fmt}", fmt, "--batch-size", "4")
    parquet = pq.read_table(tmp_path / "r.parquet").to_pylist()
    jsonl = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    with open(tmp_path / "r.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    for p, j, c in zip(parquet, jsonl, rows, strict=True):
        assert list(j) == list(c) == list(p) == [*REQUEST_COLUMNS, "cost_usd"]
        assert j["streamed"] is p["streamed"] and c["streamed"] == ("true" if p["streamed"] else "false")
        assert j["cost_pico_usd"] == p["cost_pico_usd"] and j["ts"] == p["ts"] == float(c["ts"])
        assert (j["cost_usd"] is None) == (p["cost_usd"] is None) == (c["cost_usd"] == "")
        if p["cost_usd"] is not None:
            assert Decimal(j["cost_usd"]) == Decimal(c["cost_usd"]) == p["cost_usd"]
        assert j["tenant"] is None and c["tenant"] == ""  # NULL: JSON null, empty CSV field


def test_export_of_an_empty_ledger_is_a_valid_empty_file(store_url: str, tmp_path: Path) -> None:
    open_store(store_url).close()  # the tables, no rows
    for fmt in ("parquet", "csv", "jsonl"):
        out = tmp_path / f"empty.{fmt}"
        assert "wrote 0 requests" in _export(store_url, out, fmt)
        if fmt == "parquet":
            table = pq.read_table(out)
            assert table.num_rows == 0 and table.schema.equals(arrow_schema(RequestRow))
        elif fmt == "csv":
            assert out.read_text().splitlines() == [
                ",".join(f'"{c}"' for c in (*REQUEST_COLUMNS, "cost_usd"))
            ]
        else:
            assert out.read_bytes() == b""
    assert run("summary", "--db", store_url, "--json") == ""


def test_parquet_schema_is_explicit(ledger_url: str, tmp_path: Path) -> None:
    """Column types come from the row schema, never from inference (an all-NULL column stays string)."""
    _export(ledger_url, tmp_path / "r.parquet", "parquet")
    _export(ledger_url, tmp_path / "a.parquet", "parquet", "--table", "attempts")
    requests = pq.read_schema(tmp_path / "r.parquet")
    types = {field.name: str(field.type) for field in requests}
    assert types["request_id"] == types["tenant"] == types["prompt"] == "string"  # tenant: all NULL
    assert types["ts"] == types["latency_ms"] == types["ttft_ms"] == "double"
    assert types["status"] == types["input_tokens"] == types["cost_pico_usd"] == "int64"
    assert types["streamed"] == types["priced"] == types["cache_hit"] == "bool"
    assert types["cost_usd"] == "decimal128(38, 12)"
    assert requests.names == [*REQUEST_COLUMNS, "cost_usd"]
    attempts = pq.read_schema(tmp_path / "a.parquet")
    assert attempts.equals(arrow_schema(AttemptRow))
    assert attempts.names == [*ATTEMPT_COLUMNS, "cost_usd"]


def test_export_to_standard_output_and_with_a_progress_bar(ten_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        ledger_group, ["export", "--db", ten_url, "--format", "jsonl", "--output", "-", "--batch-size", "3"]
    )
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["request_id"] for line in result.stdout.splitlines()] == [
        f"r{i}" for i in range(10)
    ]
    assert "wrote 10 requests to standard output" in result.stderr
    out = tmp_path / "a.csv"
    assert "wrote 10 attempts" in _export(ten_url, out, "csv", "--table", "attempts", "--progress")
    assert len(out.read_text().splitlines()) == 11

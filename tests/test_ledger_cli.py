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
from modelyard.ledger.schema import REQUEST_COLUMNS
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
    assert rows[1]["cost_usd"] == "0.002500000001"
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

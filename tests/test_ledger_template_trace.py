"""Migration 0006 (row schema 4): a request's prompt template, tool calls and trace id, stored on SQLite
and PostgreSQL, filterable, added to a ledger that already holds rows, and read back from an older spool."""

from __future__ import annotations

from typing import Any

import orjson
from click.testing import CliRunner

from modelyard.cli.main import cli
from modelyard.ledger import spool
from modelyard.ledger.schema import REQUEST_COLUMNS
from modelyard.ledger.store import RequestFilter, open_store
from tests.ledger_support import attempt, ledger_before, pg_url, request, store_url

__all__ = ["pg_url", "store_url"]  # fixtures used by name

TRACE = "0af7651916cd43dd8448eb211c80319c"
#: The requests columns of schema 3 (migrations up to 0005): every column up to ``eval_run_id``.
V3_COLUMNS = REQUEST_COLUMNS[: REQUEST_COLUMNS.index("eval_run_id") + 1]


def _rows() -> list[Any]:
    return [
        request(1, template_id="triage", template_version="v1", tool_calls=0, trace_id=TRACE),
        request(2, template_id="triage", template_version="v2", tool_calls=2),
        request(3),
    ]


def test_template_tool_calls_and_trace_id_are_stored_and_filtered(store_url: str) -> None:
    store = open_store(store_url)
    store.insert(_rows(), [attempt(1), attempt(2), attempt(3)])
    by_id = {r.request_id: r for r in store.query()}
    assert (by_id["r1"].template_id, by_id["r1"].template_version, by_id["r1"].tool_calls) == (
        "triage",
        "v1",
        0,
    )
    assert (by_id["r1"].trace_id, by_id["r2"].tool_calls, by_id["r3"].tool_calls) == (TRACE, 2, None)
    ids = lambda f: sorted(r.request_id for r in store.query(f))  # noqa: E731
    assert ids(RequestFilter(template_id="triage")) == ["r1", "r2"]
    assert ids(RequestFilter(template_id="triage", template_version="v2")) == ["r2"]
    assert ids(RequestFilter(trace_id=TRACE)) == ["r1"]
    store.close()


def test_0006_adds_the_columns_to_a_ledger_holding_rows(store_url: str) -> None:
    ledger_before(store_url, 5, V3_COLUMNS, request(1))
    store = open_store(store_url)  # applies 0006 to the row already there
    assert 6 in store.applied_versions()  # type: ignore[attr-defined]
    (row,) = store.query()
    assert (row.request_id, row.template_id, row.template_version, row.tool_calls, row.trace_id) == (
        "r1",
        None,
        None,
        None,
        None,
    )
    store.close()


def test_a_spool_line_of_schema_3_replays_without_the_new_columns() -> None:
    row = request(1)
    line = orjson.dumps([3, [getattr(row, c) for c in V3_COLUMNS], []])
    _version, values, _ = spool.decode_values(line)
    assert values is not None
    decoded = dict(zip(REQUEST_COLUMNS, values, strict=True))
    assert decoded["request_id"] == "r1"
    assert [decoded[c] for c in ("template_id", "template_version", "tool_calls", "trace_id")] == [None] * 4


def test_ledger_cli_filters_by_template_and_trace(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = open_store(url)
    store.insert(_rows(), [])
    store.close()
    runner = CliRunner()

    def listed(*args: str) -> list[str]:
        result = runner.invoke(cli, ["ledger", "list", "--db", url, "--json", *args])
        assert result.exit_code == 0, result.output
        return sorted(orjson.loads(line)["request_id"] for line in result.output.splitlines())

    assert listed("--template", "triage") == ["r1", "r2"]
    assert listed("--template", "triage@v1") == ["r1"]
    assert listed("--trace", TRACE.upper()) == ["r1"]
    table = runner.invoke(cli, ["ledger", "list", "--db", url], env={"COLUMNS": "250"})
    assert table.exit_code == 0 and "triage@v2" in table.output and "tools" in table.output

"""Traffic files, read and aggregated by DuckDB (the embedded columnar engine) without loading them into Python.

- a JSONL file of calls, one object per line (the documented call format, ``docs/decide.md``);
- LiteLLM's spend-log CSV export (:mod:`.litellm_spend`, which uses :func:`aggregate_in_duckdb`);
- the gateway ledger's own export, ``modelyard ledger export --format parquet`` (or ``jsonl``): the fast
  path for large ledgers, since DuckDB scans Parquet columns in parallel.

Errors name the file, the line (or row, or column) and what to do.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
from collections.abc import Callable
from pathlib import Path

import duckdb

from modelyard.economics.aggregate import (
    NOT_QUALITY,
    Traffic,
    build_traffic,
    hist_sql,
    hour_sql,
    quality_calls,
    quality_sql,
)
from modelyard.errors import ConfigError

#: The workload of a row that names none (an untagged LiteLLM request, a JSONL line without ``workload``,
#: usage without a project): a real workload, named in the report, never a dropped row.
DEFAULT_WORKLOAD = "untagged"

#: The JSONL call format: field → DuckDB type. ``ts`` is unix seconds or an ISO-8601 time.
JSONL_COLUMNS = {
    "ts": "VARCHAR",
    "workload": "VARCHAR",
    "model": "VARCHAR",
    "provider": "VARCHAR",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "latency_ms": "DOUBLE",
    "ttft_ms": "DOUBLE",
    "status": "INTEGER",
    "data_class": "VARCHAR",
    "cost_usd": "DOUBLE",
    "weight": "BIGINT",
}
#: Fields every JSONL line needs; ``workload`` may be absent (the line goes to the default workload).
JSONL_REQUIRED = ("ts", "model", "input_tokens", "output_tokens", "latency_ms")

#: Builds the temporary ``requests`` table on a connection and returns the notes to report.
Prepare = Callable[[duckdb.DuckDBPyConnection], list[str]]


def read_jsonl(path: str | Path, default_workload: str = DEFAULT_WORKLOAD) -> Traffic:
    """Aggregate a JSONL file of calls (fields: :data:`JSONL_COLUMNS`; required: :data:`JSONL_REQUIRED`)."""
    path = Path(path)
    cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in JSONL_COLUMNS.items()) + "}"
    scan = f"read_json({sql_text(str(path))}, format='newline_delimited', columns={cols})"

    def prepare(con: duckdb.DuckDBPyConnection) -> list[str]:
        con.execute(f"""
            CREATE TEMP TABLE requests AS
            SELECT row_number() OVER () AS line,
                   COALESCE(TRY_CAST(ts AS DOUBLE), epoch(TRY_CAST(ts AS TIMESTAMPTZ))) AS ts, 'chat' AS endpoint,
                   COALESCE(NULLIF(trim(workload), ''), {sql_text(default_workload)}) AS workload,
                   NULLIF(trim(workload), '') IS NULL AS untagged,
                   data_class, model, provider AS provider_kind, COALESCE(status, 200) AS status,
                   input_tokens, output_tokens, COALESCE(cached_input_tokens, 0) AS cached_input_tokens,
                   latency_ms, ttft_ms, CAST(ROUND(cost_usd * 1e12) AS BIGINT) AS cost_pico_usd,
                   COALESCE(weight, 1) AS weight
            FROM {scan}""")
        _absent_everywhere(con, path, JSONL_REQUIRED)
        check_rows(con, path, JSONL_REQUIRED, "line", "a JSONL line")
        untagged, total = con.execute(
            "SELECT count(*) FILTER (WHERE untagged), count(*) FROM requests"
        ).fetchone() or (0, 0)
        if untagged:
            return [
                f"{untagged:,} of {total:,} lines name no workload: counted as workload '{default_workload}'"
            ]
        return []

    return aggregate_in_duckdb(path, "JSONL", prepare)


def sql_text(value: str) -> str:
    """A SQL string literal (views and DDL take no parameters)."""
    return "'" + value.replace("'", "''") + "'"


def aggregate_in_duckdb(path: Path, kind: str, prepare: Prepare) -> Traffic:
    """Run ``prepare`` (which builds ``requests``) and the shared aggregate queries in one DuckDB connection.

    Timestamps without a zone are read as UTC (LiteLLM's Postgres stores them so), whatever the machine's zone.
    """
    if not path.is_file():
        raise ConfigError(f"traffic file {path} does not exist")
    con = duckdb.connect()
    try:
        con.execute("SET TimeZone = 'UTC'")
        notes = prepare(con)
        traffic = build_traffic(
            str(path), con.execute(hour_sql("duckdb")).fetchall(), con.execute(hist_sql("duckdb")).fetchall()
        )
    except duckdb.Error as exc:
        where = _first_bad_json_line(path) if kind == "JSONL" else None
        if where is not None:
            raise ConfigError(
                f"{path}: line {where[0]}: not valid JSON ({where[1]}); fix or remove that line"
            ) from None
        raise ConfigError(f"{path}: not a valid {kind} file: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    if not notes:
        return traffic
    return dataclasses.replace(traffic, source=f"{traffic.source} ({'; '.join(notes)})", notes=tuple(notes))


def _first_bad_json_line(path: Path) -> tuple[int, str] | None:
    """Only on the error path: DuckDB's own line numbers are not reliable, so find the line ourselves."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                json.loads(line)
            except json.JSONDecodeError as exc:
                return number, exc.msg
    return None


def _absent_everywhere(con: duckdb.DuckDBPyConnection, path: Path, required: tuple[str, ...]) -> None:
    """A required field missing from every row is a file of another shape: say so once, with what was found."""
    counts = con.execute(
        "SELECT " + ", ".join(f"count({f})" for f in required) + " FROM requests"
    ).fetchone() or tuple(0 for _ in required)
    absent = [f for f, n in zip(required, counts, strict=True) if n == 0]
    if absent and con.execute("SELECT count(*) FROM requests").fetchone() != (0,):
        found = _fields_found(con, path)
        raise ConfigError(
            f"{path}: field(s) {', '.join(absent)} missing from every line: not a JSONL file of calls "
            f"(needs {', '.join(required)}; found: {', '.join(found) or 'none'})"
        )


def _fields_found(con: duckdb.DuckDBPyConnection, path: Path) -> list[str]:
    try:
        scan = f"read_json({sql_text(str(path))}, format='newline_delimited')"
        return [d[0] for d in con.execute(f"SELECT * FROM {scan} LIMIT 0").description]
    except duckdb.Error:
        return []


def check_rows(
    con: duckdb.DuckDBPyConnection, path: Path, required: tuple[str, ...], unit: str, what: str
) -> None:
    """Name the first row with a missing or unreadable required field; nothing is silently assumed."""
    for field in required:
        row = con.execute(f"SELECT min(line) FROM requests WHERE {field} IS NULL").fetchone()
        if row is not None and row[0] is not None:
            raise ConfigError(
                f"{path}: {unit} {row[0]}: field '{field}' is missing or not readable "
                f"({what} needs {', '.join(required)}); fix or remove that {unit}"
            )
    bad = con.execute(
        "SELECT min(line) FROM requests WHERE input_tokens < 0 OR output_tokens < 0 OR weight < 1"
    ).fetchone()
    if bad is not None and bad[0] is not None:
        raise ConfigError(
            f"{path}: {unit} {bad[0]}: token counts must not be negative and weight must be ≥ 1"
        )


#: The ledger columns (``ledger/schema.py: RequestRow``) a profile reads, with their DuckDB types.
LEDGER_COLUMNS = {
    "ts": "DOUBLE",
    "endpoint": "VARCHAR",
    "workload": "VARCHAR",
    "data_class": "VARCHAR",
    "model": "VARCHAR",
    "provider_kind": "VARCHAR",
    "status": "INTEGER",
    "input_tokens": "BIGINT",
    "output_tokens": "BIGINT",
    "cached_input_tokens": "BIGINT",
    "latency_ms": "DOUBLE",
    "ttft_ms": "DOUBLE",
    "cost_pico_usd": "BIGINT",
}


def is_ledger_export(first_record: dict[str, object]) -> bool:
    """A JSON object from ``modelyard ledger export`` rather than the call format."""
    return "request_id" in first_record and "endpoint" in first_record and "provider_kind" in first_record


def read_ledger_export(path: str | Path) -> Traffic:
    """Aggregate a ledger export (Parquet, or JSONL) in place: DuckDB scans only the columns used."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"traffic file {path} does not exist")
    quoted = "'" + str(path).replace("'", "''") + "'"
    if path.suffix.lower() == ".parquet":
        scan = f"read_parquet({quoted})"
    else:
        wanted = {**LEDGER_COLUMNS, "purpose": "VARCHAR"}  # NULL in an export from before migration 0005
        cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in wanted.items()) + "}"
        scan = f"read_json({quoted}, format='newline_delimited', columns={cols})"
    con = duckdb.connect()
    try:
        present = {d[0] for d in con.execute(f"SELECT * FROM {scan} LIMIT 0").description}
        if missing := [c for c in LEDGER_COLUMNS if c not in present]:
            raise ConfigError(
                f"{path}: column(s) {', '.join(missing)} missing: not a ledger export; write one with "
                "`modelyard ledger export --format parquet --output FILE`, or use the JSONL call format"
            )
        # Eval runs' calls (exports from migration 0005 on) are totalled apart, not counted as traffic.
        purpose = "COALESCE(purpose, 'answer')" if "purpose" in present else "'answer'"
        columns = ", ".join(LEDGER_COLUMNS)
        con.execute(f"CREATE VIEW scanned AS SELECT {columns}, {purpose} AS purpose, 1 AS weight FROM {scan}")
        con.execute(f"CREATE VIEW requests AS SELECT * FROM scanned WHERE true{NOT_QUALITY}")
        quality = quality_calls(con.execute(quality_sql(table="scanned")).fetchone())
        return build_traffic(
            str(path),
            con.execute(hour_sql("duckdb")).fetchall(),
            con.execute(hist_sql("duckdb")).fetchall(),
            quality,
        )
    except duckdb.Error as exc:
        raise ConfigError(f"{path}: not a readable ledger export: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()


def first_record(path: Path) -> dict[str, object] | None:
    """The first JSON object of a JSONL file (to tell the call format from a ledger export), if any."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    return record if isinstance(record, dict) else None
    except (OSError, ValueError):
        return None  # the full reader reports the problem with its line number
    return None

"""Traffic files, read and aggregated by DuckDB (the embedded columnar engine) without loading them into Python.

- a JSONL file of calls, one object per line (the documented call format, ``docs/decide.md``);
- LiteLLM's spend-log CSV export (``LiteLLM_SpendLogs`` columns);
- the gateway ledger's own export, ``modelyard ledger export --format parquet`` (or ``jsonl``): the fast
  path for large ledgers, since DuckDB scans Parquet columns in parallel.

Errors name the file, the line (or column) and what to do.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import duckdb

from modelyard.economics.aggregate import Traffic, build_traffic, hist_sql, hour_sql
from modelyard.errors import ConfigError

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
_REQUIRED = ("ts", "workload", "model", "input_tokens", "output_tokens", "latency_ms")


def read_jsonl(path: str | Path) -> Traffic:
    """Aggregate a JSONL file of calls (fields: :data:`JSONL_COLUMNS`; required: ``_REQUIRED``)."""
    cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in JSONL_COLUMNS.items()) + "}"
    scan = f"read_json(?, format='newline_delimited', columns={cols})"
    normalise = """
        SELECT row_number() OVER () AS line,
               COALESCE(TRY_CAST(ts AS DOUBLE), epoch(TRY_CAST(ts AS TIMESTAMPTZ))) AS ts, 'chat' AS endpoint,
               workload, data_class, model, provider AS provider_kind, COALESCE(status, 200) AS status,
               input_tokens, output_tokens, COALESCE(cached_input_tokens, 0) AS cached_input_tokens,
               latency_ms, ttft_ms, CAST(ROUND(cost_usd * 1e12) AS BIGINT) AS cost_pico_usd,
               COALESCE(weight, 1) AS weight
        FROM scan"""
    return _via_duckdb(path, scan, normalise, "JSONL")


_FIRST_TAG = "NULLIF(string_split(regexp_replace(request_tags, '[\\[\\]\" ]', '', 'g'), ',')[1], '')"


#: Columns a LiteLLM export may lack (older versions, trimmed exports); read as NULL when absent.
_LITELLM_OPTIONAL = frozenset(
    {"completionStartTime", "status", "request_tags", "model_group", "team_id", "custom_llm_provider"}
)


def read_litellm_csv(path: str | Path, workload_from: str = "request_tag") -> Traffic:
    """Aggregate a LiteLLM spend-log export (CSV of ``LiteLLM_SpendLogs``). ``spend`` is LiteLLM's cost."""
    workload = {
        # request_tags is a JSON array as text ('["tag"]'): its first tag names the workload.
        "request_tag": _FIRST_TAG,
        "model_group": "model_group",
        "team_id": "team_id",
        "user": '"user"',
        "api_key": "api_key",
        "model": "model",
    }[workload_from]
    scan = "read_csv(?, header=true, all_varchar=true)"
    start = 'epoch(TRY_CAST("startTime" AS TIMESTAMPTZ))'
    ttft = f'(epoch(TRY_CAST("completionStartTime" AS TIMESTAMPTZ)) - {start}) * 1000'
    normalise = f"""
        SELECT row_number() OVER () + 1 AS line, epoch(TRY_CAST("startTime" AS TIMESTAMPTZ)) AS ts,
               'chat' AS endpoint, {workload} AS workload, NULL AS data_class, model,
               custom_llm_provider AS provider_kind,
               CASE WHEN lower(COALESCE(status, 'success')) = 'failure' THEN 500 ELSE 200 END AS status,
               TRY_CAST(prompt_tokens AS BIGINT) AS input_tokens,
               TRY_CAST(completion_tokens AS BIGINT) AS output_tokens, 0 AS cached_input_tokens,
               (epoch(TRY_CAST("endTime" AS TIMESTAMPTZ)) - {start}) * 1000 AS latency_ms,
               {ttft} AS ttft_ms,
               CAST(ROUND(TRY_CAST(spend AS DOUBLE) * 1e12) AS BIGINT) AS cost_pico_usd, 1 AS weight
        FROM scan"""
    return _via_duckdb(path, scan, normalise, "LiteLLM spend-log CSV", optional=_LITELLM_OPTIONAL)


def _via_duckdb(
    path: str | Path, scan: str, normalise: str, kind: str, optional: frozenset[str] = frozenset()
) -> Traffic:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"traffic file {path} does not exist")
    con = duckdb.connect()
    try:
        scan = scan.replace("?", "'" + str(path).replace("'", "''") + "'")  # views take no parameters
        con.execute(f"CREATE VIEW scan AS SELECT * FROM {scan}")
        present = {d[0] for d in con.execute("SELECT * FROM scan LIMIT 0").description}
        if missing := sorted(optional - present):
            nulls = ", ".join(f'NULL AS "{col}"' for col in missing)
            con.execute(f"CREATE OR REPLACE VIEW scan AS SELECT *, {nulls} FROM {scan}")
        con.execute(f"CREATE TEMP TABLE requests AS {normalise}")
        _check_required(con, path, kind)
        return build_traffic(
            str(path),
            con.execute(hour_sql("duckdb")).fetchall(),
            con.execute(hist_sql("duckdb")).fetchall(),
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


def _check_required(con: duckdb.DuckDBPyConnection, path: Path, kind: str) -> None:
    """Name the first line with a missing or unreadable required field; nothing is silently assumed."""
    for field in _REQUIRED:
        row = con.execute(f"SELECT min(line) FROM requests WHERE {field} IS NULL").fetchone()
        if row is not None and row[0] is not None:
            raise ConfigError(
                f"{path}: line {row[0]}: field '{field}' is missing or not readable "
                f"(a {kind} row needs {', '.join(_REQUIRED)}); fix or remove that line"
            )
    bad = con.execute(
        "SELECT min(line) FROM requests WHERE input_tokens < 0 OR output_tokens < 0 OR weight < 1"
    ).fetchone()
    if bad is not None and bad[0] is not None:
        raise ConfigError(f"{path}: line {bad[0]}: token counts must not be negative and weight must be ≥ 1")


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
        cols = "{" + ", ".join(f"'{k}': '{v}'" for k, v in LEDGER_COLUMNS.items()) + "}"
        scan = f"read_json({quoted}, format='newline_delimited', columns={cols})"
    con = duckdb.connect()
    try:
        present = {d[0] for d in con.execute(f"SELECT * FROM {scan} LIMIT 0").description}
        if missing := [c for c in LEDGER_COLUMNS if c not in present]:
            raise ConfigError(
                f"{path}: column(s) {', '.join(missing)} missing: not a ledger export; write one with "
                "`modelyard ledger export --format parquet --output FILE`, or use the JSONL call format"
            )
        con.execute(f"CREATE VIEW requests AS SELECT {', '.join(LEDGER_COLUMNS)}, 1 AS weight FROM {scan}")
        return build_traffic(
            str(path), con.execute(hour_sql("duckdb")).fetchall(), con.execute(hist_sql("duckdb")).fetchall()
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

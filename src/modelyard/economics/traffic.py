"""Read traffic and aggregate it where it lives: one pass in SQL, a few thousand rows back to Python.

Sources (see ``docs/decide.md``):

- the gateway's ledger by URL: ``sqlite:///path.db`` (queried by SQLite itself) or ``postgresql://...``;
- a JSONL file of calls, one object per line (read by DuckDB, the embedded columnar engine);
- LiteLLM's spend-log CSV export (``LiteLLM_SpendLogs`` columns), also through DuckDB.

Every source is normalised to the ledger's ``requests`` columns, then the same two aggregate queries run:
hourly totals per (workload, data class, model, provider kind), and a log-bucketed latency histogram.
"""

from __future__ import annotations

import gzip
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from modelyard.errors import ConfigError

#: Latency histogram buckets: bucket b holds latencies in [e^(b/8) − 1, e^((b+1)/8) − 1) ms (13% wide).
BUCKETS_PER_E = 8


@dataclass(frozen=True, slots=True)
class HourRow:
    """Totals of one hour for one (workload, data class, model, provider kind)."""

    workload: str
    data_class: str | None
    model: str
    provider_kind: str | None
    hour: int  # unix seconds of the hour's start
    requests: int
    errors: int
    input_tokens: int
    cached_input_tokens: int
    output_tokens: int
    latency_ms_sum: float
    cost_pico_usd: int  # of the priced requests
    unpriced: int


@dataclass(frozen=True, slots=True)
class HistRow:
    workload: str
    latency_bucket: int
    ttft_bucket: int | None
    count: int


@dataclass(frozen=True, slots=True)
class Traffic:
    source: str
    hours: list[HourRow]
    histogram: list[HistRow]


_FLOOR = {
    "sqlite": "CAST(({x}) AS INTEGER)",  # truncates; every operand here is non-negative
    "duckdb": "CAST(FLOOR({x}) AS BIGINT)",
    "postgres": "CAST(FLOOR({x}) AS BIGINT)",
}


def _hour_sql(dialect: str) -> str:
    hour = _FLOOR[dialect].format(x="ts / 3600") + " * 3600"
    w = "weight" if dialect == "duckdb" else "1"  # a sampled JSONL row stands for `weight` identical calls
    return f"""
        SELECT COALESCE(workload, '(none)'), data_class, model, provider_kind, {hour} AS hour,
               SUM({w}), SUM(CASE WHEN status >= 400 THEN {w} ELSE 0 END),
               SUM(input_tokens * {w}), SUM(cached_input_tokens * {w}), SUM(output_tokens * {w}),
               SUM(latency_ms * {w}), COALESCE(SUM(cost_pico_usd * {w}), 0),
               SUM(CASE WHEN cost_pico_usd IS NULL THEN {w} ELSE 0 END)
        FROM requests WHERE endpoint = 'chat'
        GROUP BY 1, 2, 3, 4, 5"""


def _hist_sql(dialect: str) -> str:
    floor = _FLOOR[dialect]
    lat = floor.format(x=f"ln(latency_ms + 1) * {BUCKETS_PER_E}")
    ttft = (
        f"CASE WHEN ttft_ms IS NULL THEN NULL ELSE {floor.format(x=f'ln(ttft_ms + 1) * {BUCKETS_PER_E}')} END"
    )
    w = "weight" if dialect == "duckdb" else "1"
    return f"""
        SELECT COALESCE(workload, '(none)'), {lat}, {ttft}, SUM({w})
        FROM requests WHERE endpoint = 'chat' AND status < 400
        GROUP BY 1, 2, 3"""


def _build(source: str, hour_rows: list[Any], hist_rows: list[Any]) -> Traffic:
    hours = [
        HourRow(
            str(r[0]),
            r[1],
            str(r[2]),
            r[3],
            int(r[4]),
            int(r[5]),
            int(r[6]),
            int(r[7] or 0),
            int(r[8] or 0),
            int(r[9] or 0),
            float(r[10] or 0),
            int(r[11] or 0),
            int(r[12] or 0),
        )
        for r in hour_rows
    ]
    hist = [HistRow(str(r[0]), int(r[1]), None if r[2] is None else int(r[2]), int(r[3])) for r in hist_rows]
    if not hours:
        raise ConfigError(f"{source}: no chat requests found; nothing to decide on")
    return Traffic(source=source, hours=hours, histogram=hist)


def read_ledger(url: str) -> Traffic:
    """Aggregate the ``requests`` table of a ledger database (SQLite file or PostgreSQL)."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        if not Path(path).is_file():
            raise ConfigError(
                f"ledger database {path} does not exist; run the gateway first or pass --traffic"
            )
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return _build(
                url,
                conn.execute(_hour_sql("sqlite")).fetchall(),
                conn.execute(_hist_sql("sqlite")).fetchall(),
            )
        except sqlite3.Error as exc:
            raise ConfigError(f"{path}: cannot read the ledger's requests table: {exc}") from None
        finally:
            conn.close()
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(url) as pg:
            hours = pg.execute(_hour_sql("postgres")).fetchall()
            hist = pg.execute(_hist_sql("postgres")).fetchall()
        return _build(url.split("@")[-1], hours, hist)
    raise ConfigError(f"unsupported ledger URL '{url}'; use sqlite:///path.db or postgresql://...")


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
        return _build(
            str(path),
            con.execute(_hour_sql("duckdb")).fetchall(),
            con.execute(_hist_sql("duckdb")).fetchall(),
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


def read_traffic(spec: str, *, litellm_workload_from: str = "request_tag") -> Traffic:
    """Dispatch on the spec: a ledger URL, ``*.jsonl``, or ``*.csv`` (LiteLLM spend logs)."""
    if "://" in spec:
        return read_ledger(spec)
    suffix = Path(spec.removesuffix(".gz")).suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return read_jsonl(spec)
    if suffix == ".csv":
        return read_litellm_csv(spec, litellm_workload_from)
    if suffix in (".db", ".sqlite", ".sqlite3"):
        return read_ledger(f"sqlite:///{spec}")
    raise ConfigError(
        f"cannot tell what traffic '{spec}' is: give a ledger URL (sqlite:///x.db, postgresql://...), "
        "a .jsonl file of calls, or a LiteLLM spend-log .csv"
    )

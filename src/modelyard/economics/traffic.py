"""Read traffic and aggregate it where it lives: one pass in SQL, a few thousand rows back to Python.

Sources (see ``docs/decide.md``):

- the gateway's ledger by URL: ``sqlite:///path.db`` (queried by SQLite itself, in parallel over row
  ranges) or ``postgresql://...``;
- files read by DuckDB (:mod:`.files`): a JSONL file of calls, LiteLLM's spend-log CSV, the ledger's
  Parquet/JSONL export; and OpenAI's usage export (:mod:`.openai_usage`).

Every source ends as the same :class:`~.aggregate.Traffic` (hourly totals and a latency histogram). A
ledger's eval and judge calls (``purpose``, from migration 0005) are left out of it and totalled apart; a
ledger from before that migration has none.
"""

from __future__ import annotations

import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from modelyard.economics.aggregate import (
    BUCKETS_PER_E,
    NOT_QUALITY,
    HistRow,
    HourRow,
    Traffic,
    build_traffic,
    hist_sql,
    hour_sql,
    quality_calls,
    quality_sql,
)
from modelyard.economics.files import (
    DEFAULT_WORKLOAD,
    first_record,
    is_ledger_export,
    read_jsonl,
    read_ledger_export,
)
from modelyard.economics.litellm_spend import read_litellm_csv
from modelyard.economics.openai_usage import is_openai_usage, read_openai_usage
from modelyard.errors import ConfigError

__all__ = ["BUCKETS_PER_E", "HistRow", "HourRow", "Traffic", "read_ledger", "read_traffic"]

#: Rows per SQLite worker below which splitting the scan costs more than it saves.
MIN_ROWS_PER_WORKER = 500_000


def read_ledger(url: str, workers: int | None = None, rows_per_worker: int = MIN_ROWS_PER_WORKER) -> Traffic:
    """Aggregate the ``requests`` table of a ledger database (SQLite file or PostgreSQL).

    SQLite scans are split over up to ``workers`` threads (default: one per core), each taking at least
    ``rows_per_worker`` rows."""
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return _read_sqlite(url, path, workers or os.cpu_count() or 1, rows_per_worker)
    if url.startswith(("postgresql://", "postgres://")):
        import psycopg

        with psycopg.connect(url) as pg:
            has_purpose = pg.execute(_PG_HAS_PURPOSE).fetchone() is not None
            where = NOT_QUALITY if has_purpose else ""
            hours = pg.execute(hour_sql("postgres", where, error_kind=True)).fetchall()
            hist = pg.execute(hist_sql("postgres", where, error_kind=True)).fetchall()
            quality = quality_calls(pg.execute(quality_sql()).fetchone()) if has_purpose else None
        return build_traffic(url.split("@")[-1], hours, hist, quality)
    raise ConfigError(f"unsupported ledger URL '{url}'; use sqlite:///path.db or postgresql://...")


#: A ledger migrated to 0005 or later has ``requests.purpose`` (the table the connection's search path finds).
_PG_HAS_PURPOSE = (
    "SELECT 1 FROM information_schema.columns WHERE table_name = 'requests' AND column_name = 'purpose'"
    " AND table_schema = current_schema()"
)


def _read_sqlite(url: str, path: str, workers: int, rows_per_worker: int) -> Traffic:
    """SQLite runs one query on one core: split the table into rowid ranges, one connection per thread
    (the sqlite3 module releases the GIL while SQLite works), then add up the partial groups."""
    if not Path(path).is_file():
        raise ConfigError(f"ledger database {path} does not exist; run the gateway first or pass --traffic")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            lo, hi = conn.execute("SELECT min(rowid), max(rowid) FROM requests").fetchone()
            has_purpose = any(r[1] == "purpose" for r in conn.execute("PRAGMA table_info(requests)"))
            quality = quality_calls(conn.execute(quality_sql()).fetchone()) if has_purpose else None
        finally:
            conn.close()
        if lo is None:
            raise ConfigError(f"{url}: no chat requests found; nothing to decide on")
        n = max(1, min(workers, (hi - lo + 1) // max(rows_per_worker, 1)))
        step = (hi - lo + n) // n
        ranges = [(lo + i * step, min(lo + (i + 1) * step - 1, hi)) for i in range(n)]
        with ThreadPoolExecutor(n) as pool:
            parts = list(pool.map(lambda r: _sqlite_range(path, r[0], r[1], has_purpose), ranges))
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: cannot read the ledger's requests table: {exc}") from None
    hours, hist = _add_up([p[0] for p in parts], 5), _add_up([p[1] for p in parts], 3)
    return build_traffic(url, hours, hist, quality)


def _sqlite_range(path: str, first: int, last: int, has_purpose: bool) -> tuple[list[Any], list[Any]]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA temp_store = MEMORY")  # the GROUP BY sorter stays off the disk
        where = f" AND rowid BETWEEN {int(first)} AND {int(last)}" + (NOT_QUALITY if has_purpose else "")
        return (
            conn.execute(hour_sql("sqlite", where, error_kind=True)).fetchall(),
            conn.execute(hist_sql("sqlite", where, error_kind=True)).fetchall(),
        )
    finally:
        conn.close()


def _add_up(parts: list[list[Any]], keys: int) -> list[tuple[Any, ...]]:
    """Merge partial GROUP BY results: rows with equal first ``keys`` columns have their sums added."""
    if len(parts) == 1:
        return [tuple(r) for r in parts[0]]
    acc: dict[tuple[Any, ...], list[Any]] = {}
    for rows in parts:
        for r in rows:
            key = tuple(r[:keys])
            if key in acc:
                acc[key] = [a + (b or 0) for a, b in zip(acc[key], r[keys:], strict=True)]
            else:
                acc[key] = [v or 0 for v in r[keys:]]
    return [(*k, *v) for k, v in acc.items()]


def read_traffic(
    spec: str,
    *,
    litellm_workload_from: str = "request_tag",
    openai_workload_from: str = "project",
    openai_names: dict[str, str] | None = None,
    workload_from: str | None = None,
    default_workload: str = DEFAULT_WORKLOAD,
) -> Traffic:
    """Dispatch on the spec: a ledger URL, a ledger export, a JSONL of calls, or a usage export.

    ``*_workload_from`` say which field names the workload in imports that have none; ``workload_from`` (the
    CLI's ``--workload-from``) overrides them for whichever import the spec is. ``openai_names`` maps OpenAI
    project or API-key ids to workload names. Rows that name no workload go to ``default_workload``."""
    if "://" in spec:
        _no_override(spec, workload_from)
        return read_ledger(spec)
    path = Path(spec)
    suffix = Path(spec.removesuffix(".gz")).suffix.lower()
    if suffix == ".parquet":
        _no_override(spec, workload_from)
        return read_ledger_export(path)
    if suffix in (".jsonl", ".ndjson"):
        _no_override(spec, workload_from)
        first = first_record(path) if path.is_file() else None
        if first and is_ledger_export(first):
            return read_ledger_export(path)
        return read_jsonl(spec, default_workload)
    if suffix in (".json", ".csv") and is_openai_usage(path):
        return read_openai_usage(path, workload_from or openai_workload_from, openai_names, default_workload)
    if suffix == ".csv":
        return read_litellm_csv(spec, workload_from or litellm_workload_from, default_workload)
    if suffix in (".db", ".sqlite", ".sqlite3"):
        _no_override(spec, workload_from)
        return read_ledger(f"sqlite:///{spec}")
    raise ConfigError(
        f"cannot tell what traffic '{spec}' is: give a ledger URL (sqlite:///x.db, postgresql://...), a ledger "
        "export (.parquet), a .jsonl file of calls, a LiteLLM spend-log .csv or an OpenAI usage export"
    )


def _no_override(spec: str, workload_from: str | None) -> None:
    if workload_from is not None:
        raise ConfigError(
            f"--workload-from applies to LiteLLM spend logs and OpenAI usage exports; {spec} names the workload "
            "of every call itself"
        )

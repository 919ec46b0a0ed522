"""What every traffic source is reduced to: hourly totals and a latency histogram, computed in SQL.

Each source (:mod:`.traffic` for ledger databases, :mod:`.files` for files read by DuckDB) is normalised to
the ledger's ``requests`` columns, then the same two aggregate queries run where the data lives: hourly
totals per (workload, data class, model, provider kind), and a log-bucketed latency histogram. A few
thousand rows come back to Python, whatever the number of calls.

Calls an eval run made (``purpose`` ``eval`` or ``judge`` in the ledger) are not traffic: a source that has
the column leaves them out of both queries (:data:`NOT_QUALITY`) and totals them apart
(:func:`quality_sql`), so the report can say what measuring quality cost without swelling a workload.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelyard.errors import ConfigError
from modelyard.ledger.schema import QUALITY_PURPOSES

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


_QUALITY_LIST = ", ".join(f"'{p}'" for p in QUALITY_PURPOSES)
#: Appended to a ledger source's ``where``: eval runs' calls are not workload volume.
NOT_QUALITY = f" AND purpose NOT IN ({_QUALITY_LIST})"


def quality_sql(where: str = "", table: str = "requests") -> str:
    """Eval runs' calls: how many, their priced cost (pico-USD) and how many were unpriced. (``purpose <>
    'answer'`` lets the ledger's partial index answer it without a scan.)"""
    return f"""
        SELECT COUNT(*), COALESCE(SUM(cost_pico_usd), 0),
               COALESCE(SUM(CASE WHEN cost_pico_usd IS NULL THEN 1 ELSE 0 END), 0)
        FROM {table} WHERE purpose <> 'answer' AND purpose IN ({_QUALITY_LIST}){where}"""


@dataclass(frozen=True, slots=True)
class QualityCalls:
    """What eval runs spent, as a ledger recorded it: left out of every workload's volume."""

    calls: int
    cost_pico_usd: int  # of the priced calls
    unpriced: int


def quality_calls(row: Any) -> QualityCalls | None:
    """From :func:`quality_sql`'s row; None when there were none."""
    calls, cost, unpriced = (int(v or 0) for v in row) if row is not None else (0, 0, 0)
    return QualityCalls(calls, cost, unpriced) if calls else None


@dataclass(frozen=True, slots=True)
class Traffic:
    source: str
    hours: list[HourRow]
    histogram: list[HistRow]
    #: What an import did that a reader must know (rows sent to the default workload, rows left out), one
    #: sentence each, for the report's first screen.
    notes: tuple[str, ...] = ()
    #: Eval and judge calls found in a ledger source and left out of the volumes above (None: none).
    quality: QualityCalls | None = None


_FLOOR = {
    "sqlite": "CAST(({x}) AS INTEGER)",  # truncates; every operand here is non-negative
    "duckdb": "CAST(FLOOR({x}) AS BIGINT)",
    "postgres": "CAST(FLOOR({x}) AS BIGINT)",
}


def _failed(error_kind: bool) -> str:
    """A failed call: an error status, or — in the ledger, which records it — an answer that began with 200
    and was then cut (``error_kind`` set: the client got a status of 200 and an error event)."""
    return "(status >= 400 OR error_kind IS NOT NULL)" if error_kind else "status >= 400"


def hour_sql(dialect: str, where: str = "", error_kind: bool = False) -> str:
    """Hourly totals per (workload, data class, model, provider kind); ``where`` narrows the scan;
    ``error_kind``: the source has the ledger's ``error_kind`` column."""
    hour = _FLOOR[dialect].format(x="ts / 3600") + " * 3600"
    w = "weight" if dialect == "duckdb" else "1"  # a sampled JSONL row stands for `weight` identical calls
    return f"""
        SELECT COALESCE(workload, '(none)'), data_class, model, provider_kind, {hour} AS hour,
               SUM({w}), SUM(CASE WHEN {_failed(error_kind)} THEN {w} ELSE 0 END),
               SUM(input_tokens * {w}), SUM(cached_input_tokens * {w}), SUM(output_tokens * {w}),
               SUM(latency_ms * {w}), COALESCE(SUM(cost_pico_usd * {w}), 0),
               SUM(CASE WHEN cost_pico_usd IS NULL THEN {w} ELSE 0 END)
        FROM requests WHERE endpoint = 'chat'{where}
        GROUP BY 1, 2, 3, 4, 5"""


def hist_sql(dialect: str, where: str = "", error_kind: bool = False) -> str:
    """Latency histogram of successful calls per workload; ``where`` narrows the scan."""
    floor = _FLOOR[dialect]
    lat = floor.format(x=f"ln(latency_ms + 1) * {BUCKETS_PER_E}")
    ttft = (
        f"CASE WHEN ttft_ms IS NULL THEN NULL ELSE {floor.format(x=f'ln(ttft_ms + 1) * {BUCKETS_PER_E}')} END"
    )
    w = "weight" if dialect == "duckdb" else "1"
    return f"""
        SELECT COALESCE(workload, '(none)'), {lat}, {ttft}, SUM({w})
        FROM requests WHERE endpoint = 'chat' AND NOT {_failed(error_kind)}{where}
        GROUP BY 1, 2, 3"""


def build_traffic(
    source: str, hour_rows: list[Any], hist_rows: list[Any], quality: QualityCalls | None = None
) -> Traffic:
    """Typed rows from the two aggregate queries; an error when there is no chat traffic at all."""
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
        left_out = f" ({quality.calls} eval and judge calls left out)" if quality else ""
        raise ConfigError(f"{source}: no chat requests found{left_out}; nothing to decide on")
    return Traffic(source=source, hours=hours, histogram=hist, quality=quality)

"""Ledger rows to files other tools read: JSON Lines, CSV and Parquet.

Every format carries every column of the row schema, in schema order, plus ``cost_usd``: the cost as
a decimal string in dollars (``"0.000123000000"``), empty/null when unpriced. It is there so readers
that cannot divide integers exactly (spreadsheets, pandas) do not have to; ``cost_pico_usd`` stays the
exact integer. Booleans are JSON/Parquet booleans and ``true``/``false`` in CSV; NULL is JSON ``null``,
a Parquet null and an empty CSV field.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, Literal

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.ledger.summary import pico_to_usd, usd_text

ExportFormat = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv", "parquet")

# Row field annotations are strings (postponed annotations); this maps each to its Arrow type.
_ARROW_TYPES = {
    "str": pa.string(),
    "str | None": pa.string(),
    "int": pa.int64(),
    "int | None": pa.int64(),
    "float": pa.float64(),
    "float | None": pa.float64(),
    "bool": pa.bool_(),
}


def export_requests(rows: Sequence[RequestRow], path: str | Path, fmt: ExportFormat) -> int:
    """Write request rows to ``path`` in ``fmt``. Returns how many were written."""
    return _export([_record(row) for row in rows], RequestRow, path, fmt)


def export_attempts(rows: Sequence[AttemptRow], path: str | Path, fmt: ExportFormat) -> int:
    """Write attempt rows to ``path`` in ``fmt``. Returns how many were written."""
    return _export([_record(row) for row in rows], AttemptRow, path, fmt)


def _export(
    records: list[dict[str, Any]],
    row_type: type[RequestRow] | type[AttemptRow],
    path: str | Path,
    fmt: ExportFormat,
) -> int:
    if fmt == "jsonl":
        with open(path, "wb") as file:
            for record in records:
                file.write(orjson.dumps(record) + b"\n")
    elif fmt == "csv":
        columns = [*(f.name for f in fields(row_type)), "cost_usd"]
        with open(path, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(columns)
            for record in records:
                writer.writerow([_csv_cell(record[c]) for c in columns])
    elif fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(records, schema=arrow_schema(row_type)), path)
    else:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    return len(records)


def arrow_schema(row_type: type[RequestRow] | type[AttemptRow]) -> Any:
    """The Parquet schema of a row type, plus the ``cost_usd`` string column."""
    columns = [pa.field(f.name, _ARROW_TYPES[str(f.type)]) for f in fields(row_type)]
    return pa.schema([*columns, pa.field("cost_usd", pa.string())])


def _record(row: RequestRow | AttemptRow) -> dict[str, Any]:
    record = row.to_dict()
    cost = row.cost_pico_usd
    record["cost_usd"] = None if cost is None else usd_text(pico_to_usd(cost))
    return record


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value

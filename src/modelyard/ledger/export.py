"""Ledger rows to files other tools read: JSON Lines, CSV and Parquet, streamed batch by batch.

Rows arrive as batches of tuples straight from a database cursor (:meth:`LedgerStore.iter_rows`); each
batch becomes one Arrow ``RecordBatch`` with an explicit schema and is written before the next is read,
so memory stays a few batches however big the ledger is.

Every format carries every column of the row schema, in schema order, plus ``cost_usd``, the cost in
dollars, for readers that cannot divide integers exactly; ``cost_pico_usd`` stays the exact integer:

- Parquet: ``decimal128(38, 12)``, an exact decimal type (pandas reads ``Decimal``, DuckDB ``DECIMAL``);
- JSON Lines and CSV: a decimal string in plain notation (``"0.002500000001"``), empty/null when unpriced.

Booleans are JSON/Parquet booleans and ``true``/``false`` in CSV; NULL is JSON ``null``, a Parquet null and
an empty CSV field (an empty *string* is ``""``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from modelyard.ledger.schema import AttemptRow, RequestRow
from modelyard.ledger.store import attempt_values, request_values

ExportFormat = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[ExportFormat, ...] = ("jsonl", "csv", "parquet")
RowType = type[RequestRow] | type[AttemptRow]
#: A batch of rows as the store's cursor returns them: tuples in the row type's column order.
Batch = Sequence[Sequence[Any]]

#: Parquet's ``cost_usd``: 38 digits, 12 after the point. Every BIGINT of pico-dollars fits exactly.
COST_USD_DECIMAL = pa.decimal128(38, 12)
#: Rows per Parquet row group: store batches are gathered up to this so readers (DuckDB scans row groups
#: in parallel) get a few large groups rather than many small ones.
ROW_GROUP_ROWS = 131_072
_PICO = 10**12

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


def arrow_schema(row_type: RowType, *, cost_usd: pa.DataType = COST_USD_DECIMAL) -> pa.Schema:
    """The schema of an export: the row type's columns, then ``cost_usd`` (Parquet's decimal by default)."""
    columns = [pa.field(f.name, _ARROW_TYPES[str(f.type)]) for f in fields(row_type)]
    return pa.schema([*columns, pa.field("cost_usd", cost_usd)])


def record_batch(rows: Batch, schema: pa.Schema) -> pa.RecordBatch:
    """One Arrow batch from row tuples; ``cost_usd`` is derived from ``cost_pico_usd`` in Arrow."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * (len(schema) - 1)
    arrays = [_array(values, field.type) for values, field in zip(columns, schema, strict=False)]
    pico = arrays[schema.get_field_index("cost_pico_usd")]
    cost_type = schema.field("cost_usd").type
    arrays.append(usd_decimal(pico) if pa.types.is_decimal(cost_type) else usd_text(pico))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def usd_decimal(pico: pa.Array) -> pa.Array:
    """Exact dollars: the integer read as a decimal with 12 places (the same 128-bit value, rescaled)."""
    return pico.cast(pa.decimal128(38, 0)).view(COST_USD_DECIMAL)


def usd_text(pico: pa.Array) -> pa.Array:
    """Dollars as plain decimal strings, ``usd_text(pico_to_usd(x))`` for each ``x``, computed in Arrow.

    Arrow's own decimal-to-string switches to scientific notation (``1E-12``), which the export promises
    never to write, so the string is put together from the whole dollars and the 12-digit remainder.
    """
    whole = pc.divide(pico, _PICO)  # integer division truncates towards zero, so |whole| is exact
    remainder = pc.abs(pc.subtract(pico, pc.multiply(whole, _PICO)))
    digits = pc.utf8_lpad(pc.cast(remainder, pa.string()), width=12, padding="0")
    sign = pc.if_else(pc.less(pico, 0), "-", "")
    return pc.binary_join_element_wise(sign, pc.cast(pc.abs(whole), pa.string()), ".", digits, "")


def _array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if arrow_type == pa.bool_():
        # SQLite stores booleans as 0/1 and PostgreSQL as booleans: let Arrow infer, then cast.
        return pa.array(values).cast(pa.bool_())
    return pa.array(values, type=arrow_type)


class _Sink(Protocol):
    def write(self, rows: Batch) -> None: ...

    def close(self) -> None: ...


class _ParquetSink:
    def __init__(self, target: str | BinaryIO, row_type: RowType) -> None:
        self._schema = arrow_schema(row_type)
        self._writer = pq.ParquetWriter(target, self._schema)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0

    def write(self, rows: Batch) -> None:
        self._pending.append(record_batch(rows, self._schema))
        self._pending_rows += len(rows)
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            table = pa.Table.from_batches(self._pending, schema=self._schema)
            self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
            self._pending, self._pending_rows = [], 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


class _CsvSink:
    def __init__(self, target: str | BinaryIO, row_type: RowType) -> None:
        self._schema = arrow_schema(row_type, cost_usd=pa.string())
        # RFC 4180: quote only fields that need it; Arrow writes booleans as true/false and NULL as empty.
        options = pa_csv.WriteOptions(quoting_style="needed")
        self._writer = pa_csv.CSVWriter(target, self._schema, write_options=options)

    def write(self, rows: Batch) -> None:
        self._writer.write_batch(record_batch(rows, self._schema))

    def close(self) -> None:
        self._writer.close()


class _JsonlSink:
    def __init__(self, target: str | BinaryIO, row_type: RowType) -> None:
        self._names = tuple(f.name for f in fields(row_type))
        self._bools = [i for i, f in enumerate(fields(row_type)) if f.type == "bool"]
        self._cost_index = self._names.index("cost_pico_usd")
        self._file: BinaryIO = open(target, "wb") if isinstance(target, str) else target  # noqa: SIM115
        self._owned = isinstance(target, str)

    def write(self, rows: Batch) -> None:
        # Straight from the tuples (faster than Arrow → Python objects); Arrow only formats the costs.
        pico = pa.array([row[self._cost_index] for row in rows], pa.int64())
        costs = usd_text(pico).to_pylist()
        names, bools = self._names, self._bools
        lines = []
        for row, cost in zip(rows, costs, strict=True):
            record = dict(zip(names, row, strict=True))
            for i in bools:
                record[names[i]] = bool(row[i])
            record["cost_usd"] = cost
            lines.append(orjson.dumps(record))
        lines.append(b"")
        self._file.write(b"\n".join(lines))

    def close(self) -> None:
        if self._owned:
            self._file.close()
        else:
            self._file.flush()


_SINKS: dict[ExportFormat, Callable[[str | BinaryIO, RowType], _Sink]] = {
    "parquet": _ParquetSink,
    "csv": _CsvSink,
    "jsonl": _JsonlSink,
}


def export_batches(
    batches: Iterable[Batch],
    row_type: RowType,
    output: str | Path | BinaryIO,
    fmt: ExportFormat,
    *,
    on_rows: Callable[[int], None] | None = None,
) -> int:
    """Write ``batches`` of row tuples to ``output`` (a path, or a binary stream such as stdout).

    A path is written to ``<path>.partial`` and renamed when complete, so a failed or interrupted export
    never leaves a truncated file that looks whole. ``on_rows(n)`` is called after each batch is written
    (a progress bar). Returns how many rows were written; an empty export is a valid file with no rows
    (Parquet and CSV keep the header/schema).
    """
    if fmt not in _SINKS:
        raise ValueError(f"unknown export format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if not isinstance(output, (str, Path)):
        return _write(batches, _SINKS[fmt](output, row_type), on_rows)
    partial = f"{output}.partial"
    try:
        count = _write(batches, _SINKS[fmt](partial, row_type), on_rows)
        os.replace(partial, output)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return count


def _write(batches: Iterable[Batch], sink: _Sink, on_rows: Callable[[int], None] | None) -> int:
    count = 0
    try:
        for rows in batches:
            if rows:
                sink.write(rows)
                count += len(rows)
                if on_rows is not None:
                    on_rows(len(rows))
    finally:
        sink.close()
    return count


def export_requests(rows: Sequence[RequestRow], path: str | Path, fmt: ExportFormat) -> int:
    """Write request rows held in memory to ``path`` in ``fmt``. Returns how many were written."""
    return export_batches([request_values(rows)], RequestRow, path, fmt)


def export_attempts(rows: Sequence[AttemptRow], path: str | Path, fmt: ExportFormat) -> int:
    """Write attempt rows held in memory to ``path`` in ``fmt``. Returns how many were written."""
    return export_batches([attempt_values(rows)], AttemptRow, path, fmt)

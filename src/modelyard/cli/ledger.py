"""``modelyard ledger``: list, summarise and export what the gateway recorded.

Every command reads the database named by ``--db URL`` or by ``ledger.url`` in the gateway's ``--config``
file, and takes the same filters (``--since``, ``--until``, ``--workload``, ``--model``, ``--status``,
``--purpose``, ``--eval-run``, ``--template``, ``--trace``). ``summary`` keeps what calls were for apart (``--by purpose``, on by default): the gateway's
answers, shadow mirrors, and the candidate (``eval``) and grading (``judge``) calls of eval runs.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from modelyard.cli.database import database_options, database_url
from modelyard.ledger.export import FORMATS, export_batches
from modelyard.ledger.schema import PURPOSES, AttemptRow, RequestRow
from modelyard.ledger.store import (
    DEFAULT_BATCH_ROWS,
    LedgerStore,
    LedgerTable,
    RequestFilter,
    open_store,
    sqlite_path,
)
from modelyard.ledger.summary import GROUP_KEYS, GroupKey, SummaryRow, pico_to_usd

F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_GROUPS: tuple[GroupKey, ...] = ("purpose", "workload", "model")

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")


class TimeParam(click.ParamType[float]):
    """A point in time: ``30m``/``24h``/``7d`` ago, unix seconds, or ISO 8601 (local time if no offset)."""

    name = "time"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        if match := _AGO.match(text):
            return time.time() - float(match.group(1)) * _UNITS[match.group(2)]
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text).astimezone().timestamp()
        except ValueError:
            self.fail(
                f"{text!r} is not a time: use 30m, 24h, 7d, unix seconds or 2025-01-31T12:00", param, ctx
            )


def _filter_options(command: F) -> F:
    for option in reversed(
        [
            click.option("--since", type=TimeParam(), help="From this time (30m, 24h, 7d, unix, ISO)."),
            click.option("--until", type=TimeParam(), help="Before this time."),
            click.option("--workload", help="Only this workload."),
            click.option("--model", help="Only this public model name."),
            click.option("--status", type=int, help="Only this HTTP status."),
            click.option(
                "--purpose",
                type=click.Choice(PURPOSES),
                help="Only calls made for this: answers, shadow mirrors, eval runs' candidate or judge calls.",
            ),
            click.option("--eval-run", "eval_run_id", metavar="RUN_ID", help="Only this eval run's calls."),
            click.option(
                "--template",
                metavar="NAME[@VERSION]",
                help="Only requests built from this prompt template (any version, or the one named).",
            ),
            click.option(
                "--trace", "trace_id", metavar="TRACE_ID", help="Only this OpenTelemetry trace's requests."
            ),
        ]
    ):
        command = option(command)
    return command


def _filter(
    since: float | None,
    until: float | None,
    workload: str | None,
    model: str | None,
    status: int | None,
    purpose: str | None,
    eval_run_id: str | None,
    template: str | None,
    trace_id: str | None,
) -> RequestFilter:
    template_id, _, template_version = (template or "").partition("@")
    return RequestFilter(
        since=since,
        until=until,
        workload=workload,
        model=model,
        status=status,
        purpose=purpose,
        eval_run_id=eval_run_id,
        template_id=template_id or None,
        template_version=template_version or None,
        # Trace ids are written in lower-case hex (W3C Trace Context); accept what a UI shows in capitals.
        trace_id=trace_id.lower() if trace_id else None,
    )


@contextmanager
def _open(config_path: Path | None, db_url: str | None) -> Iterator[LedgerStore]:
    """The store to read, or a message saying how to name one."""
    db_url = database_url(config_path, db_url, "ledger")
    if db_url.startswith("sqlite:///") and not Path(sqlite_path(db_url)).exists():
        raise click.ClickException(f"no ledger database at {sqlite_path(db_url)}; has the gateway run yet?")
    try:
        store = open_store(db_url)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # the driver's connection errors: say which database and why
        raise click.ClickException(f"cannot open the ledger at {db_url.split('@')[-1]}: {exc}") from None
    try:
        yield store
    finally:
        store.close()


@click.group("ledger")
def ledger_group() -> None:
    """Read the ledger: one row per request the gateway answered."""


@ledger_group.command("list")
@database_options
@_filter_options
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Newest N requests.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per line) instead of a table.")
def list_command(
    config_path: Path | None, db_url: str | None, limit: int, as_json: bool, **filters: Any
) -> None:
    """The newest requests, with their status, tokens, cost and latency."""
    with _open(config_path, db_url) as store:
        rows = store.query(_filter(**filters), limit=limit)
    if as_json:
        for row in rows:
            click.echo(orjson.dumps(row.to_dict()).decode())
        return
    Console().print(_requests_table(rows))


@ledger_group.command("summary")
@database_options
@_filter_options
@click.option(
    "--by",
    "group_by",
    type=click.Choice(GROUP_KEYS),
    multiple=True,
    help="Group by these columns (repeatable). Default: --by purpose --by workload --by model.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one object per group) instead of a table.")
def summary_command(
    config_path: Path | None, db_url: str | None, group_by: tuple[str, ...], as_json: bool, **filters: Any
) -> None:
    """Requests, errors, tokens, cost and latency per purpose, workload and model: what eval runs spent
    (purposes ``eval`` and ``judge``) is never added into the gateway's traffic."""
    keys = cast(tuple[GroupKey, ...], group_by or DEFAULT_GROUPS)
    with _open(config_path, db_url) as store:
        groups = store.summary(keys, _filter(**filters))
    if as_json:
        for group in groups:
            click.echo(orjson.dumps(group.to_dict()).decode())
        return
    Console().print(_summary_table(groups, keys))


@ledger_group.command("export")
@database_options
@_filter_options
@click.option("--format", "fmt", type=click.Choice(FORMATS), required=True, help="File format.")
@click.option(
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    required=True,
    help="File to write, or - for standard output.",
)
@click.option(
    "--table",
    type=click.Choice(["requests", "attempts"]),
    default="requests",
    show_default=True,
    help="Requests, or the upstream attempts of the selected requests.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=DEFAULT_BATCH_ROWS,
    show_default=True,
    help="Rows read from the database per batch (memory grows with it).",
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show a progress bar on stderr. Default: when writing a file and stderr is a terminal.",
)
def export_command(
    config_path: Path | None,
    db_url: str | None,
    fmt: Any,
    output: str,
    table: LedgerTable,
    batch_size: int,
    progress: bool | None,
    **filters: Any,
) -> None:
    """Write every selected row, oldest first, with every column plus cost_usd (see docs/ledger.md).

    Rows stream from the database in batches, so a ledger of any size exports in bounded memory.
    """
    where = _filter(**filters)
    row_type = RequestRow if table == "requests" else AttemptRow
    target = sys.stdout.buffer if output == "-" else output
    if progress is None:
        progress = output != "-" and sys.stderr.isatty()
    with _open(config_path, db_url) as store:
        total = store.count(table, where) if progress else None
        with (
            _progress_bar(total, table) as advance,
            closing(store.iter_rows(table, where, batch_size=batch_size)) as rows,
        ):
            count = export_batches(rows, row_type, target, fmt, on_rows=advance)
    click.echo(f"wrote {count} {table} to {'standard output' if output == '-' else output}", err=True)


@contextmanager
def _progress_bar(total: int | None, table: str) -> Iterator[Callable[[int], None] | None]:
    """A rich progress bar on stderr advanced by rows written; nothing when ``total`` is ``None``."""
    if total is None:
        yield None
        return
    columns = (TextColumn(f"exporting {table}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(table, total=total)
        yield lambda rows: bar.advance(task, rows)


def _requests_table(rows: list[RequestRow]) -> Table:
    table = Table(title=f"{len(rows)} request(s), newest first")
    for name in ("time", "request", "workload", "model", "provider", "status"):
        table.add_column(name)
    for name in ("in", "out", "cost", "latency ms", "ttft ms"):
        table.add_column(name, justify="right", no_wrap=True)
    # Shown only when some row has one: most ledgers record neither templates nor tool calls.
    templates = any(row.template_id for row in rows)
    tools = any(row.tool_calls for row in rows)
    if templates:
        table.add_column("template")
    if tools:
        table.add_column("tools", justify="right")
    for row in rows:
        cost = "unpriced" if row.cost_pico_usd is None else usd(pico_to_usd(row.cost_pico_usd))
        status = str(row.status) + (f" {row.error_kind}" if row.error_kind else "")
        cells = [
            datetime.fromtimestamp(row.ts).strftime("%Y-%m-%d %H:%M:%S"),
            row.request_id,
            row.workload or "-",
            row.model,
            row.provider or "-",
            status if row.status < 400 and not row.error_kind else f"[red]{status}[/red]",
            str(row.input_tokens),
            str(row.output_tokens),
            cost,
            _ms(row.latency_ms),
            _ms(row.ttft_ms),
        ]
        if templates:
            version = f"@{row.template_version}" if row.template_version else ""
            cells.append(f"{row.template_id}{version}" if row.template_id else "-")
        if tools:
            cells.append("-" if row.tool_calls is None else str(row.tool_calls))
        table.add_row(*cells)
    return table


def _summary_table(groups: list[SummaryRow], keys: tuple[str, ...]) -> Table:
    table = Table(title="Ledger summary")
    for key in keys:
        # Group names never shrink away in a narrow terminal: the figures fold first.
        table.add_column(key, no_wrap=True)
    for name in ("requests", "errors", "in tokens", "out tokens", "cost", "p50 ms", "p95 ms", "ttft p50 ms"):
        table.add_column(name, justify="right", overflow="fold")
    for g in groups:
        table.add_row(
            *(getattr(g, key) or "-" for key in keys),
            str(g.requests),
            f"{g.errors} ({g.error_rate:.1%})",
            f"{g.input_tokens:,}",
            f"{g.output_tokens:,}",
            _cost_cell(g),
            _ms(g.latency_p50_ms),
            _ms(g.latency_p95_ms),
            _ms(g.ttft_p50_ms),
        )
    return table


def _cost_cell(group: SummaryRow) -> str:
    """The priced sum, and how many requests it leaves out: an unpriced request never reads as $0."""
    if group.cost_usd is None:
        return f"[yellow]unpriced ({group.unpriced})[/yellow]"
    if group.unpriced:
        return f"{usd(group.cost_usd)} [yellow]+{group.unpriced} unpriced[/yellow]"
    return usd(group.cost_usd)


def usd(amount: Decimal) -> str:
    """Dollars for people: cents from $1 up, six decimals below (one request costs fractions of a cent)."""
    if 0 < amount < Decimal("0.000001"):
        return "<$0.000001"
    places = Decimal("0.01") if abs(amount) >= 1 else Decimal("0.000001")
    return f"${amount.quantize(places):,}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"

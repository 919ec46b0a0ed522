"""The run's report: a rich terminal table and one offline HTML page (no scripts, no external assets)."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any

from rich.console import Console
from rich.markup import escape as escape_markup
from rich.table import Table


def _money(value: str | None) -> str:
    return "unpriced" if value is None else f"${Decimal(value):,.4f}"


def _share(value: float | None, percent: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def print_report(document: dict[str, Any], console: Console) -> None:
    """Quality, cost and latency per candidate, then gates and the worst cases."""
    table = Table(title=f"eval {document['set']} · {document['cases']} cases · run {document['run_id']}")
    columns = (
        "candidate",
        "quality",
        "pass rate",
        "errors",
        "judge errors",
        "cost / 1k cases",
        "p50 ms",
        "p95 ms",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "candidate" else "right")
    for name, c in document["candidates"].items():
        table.add_row(
            name, _share(c["quality"]), _share(c["pass_rate"], True), str(c["errors"]), str(c["judge_errors"]),
            _money(c["cost_per_1k_cases_usd"]), _ms(c["latency_ms"]["p50"]), _ms(c["latency_ms"]["p95"]),
        )  # fmt: skip
    console.print(table)
    retries = document.get("retries", 0)
    console.print(
        f"{document['calls_made']} model calls, {document['cache_hits']} answers from the cache"
        + (f", {retries} retries after transient failures" if retries else "")
    )
    judge_errors = document.get("judge_errors", 0)
    if judge_errors:
        console.print(
            f"[red]{judge_errors} answers could not be graded (judge errors): left out of quality and the "
            "gate, not cached; re-run to grade them (exit code 4)[/red]"
        )
        for name, c in document["candidates"].items():
            for u in c["ungraded"][:5]:
                console.print(f"  {escape_markup(name)} {escape_markup(u['case_id'])}: "
                              f"{escape_markup(str(u['judge_error'])[:120])}")  # fmt: skip
    for g in document["gates"]:
        style = {"non_inferior": "green", "worse": "red", "inconclusive": "yellow"}[g["outcome"]]
        console.print(f"[{style}]{escape_markup(g['text'])}[/{style}]")
    for name, c in document["candidates"].items():
        failing = [w for w in c["worst"] if w["score"] < 1]
        if failing:
            console.print(f"worst cases for {name}:")
            for w in failing:
                console.print(
                    f"  {escape_markup(w['case_id'])}  {w['score']:.2f}  {escape_markup(w['reason'][:120])}"
                )


_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0;width:100%}th,td{padding:.35rem .6rem;border-bottom:1px solid #ddd}
th{text-align:left;background:#f5f5f5}td.n{text-align:right;font-variant-numeric:tabular-nums}
.non_inferior{color:#17803d}.worse{color:#b42318}.inconclusive{color:#a15c00}
code,pre{font-family:ui-monospace,monospace;font-size:12px}pre{white-space:pre-wrap;margin:0;max-height:8em;overflow:auto}
"""


def _row(cells: list[str], numeric: set[int]) -> str:
    return (
        "<tr>"
        + "".join(f"<td class=n>{c}</td>" if i in numeric else f"<td>{c}</td>" for i, c in enumerate(cells))
        + "</tr>"
    )


def render_html(document: dict[str, Any]) -> str:
    """One self-contained page for the run."""
    e = escape
    head = [
        "candidate",
        "provider / upstream",
        "quality",
        "pass rate",
        "errors",
        "judge errors",
        "cost / 1k cases",
        "p50 ms",
        "p95 ms",
    ]
    rows = [
        _row(
            [
                e(name),
                e(f"{c['provider']} / {c['upstream_model']}"),
                _share(c["quality"]),
                _share(c["pass_rate"], True),
                str(c["errors"]),
                str(c["judge_errors"]),
                e(_money(c["cost_per_1k_cases_usd"])),
                _ms(c["latency_ms"]["p50"]),
                _ms(c["latency_ms"]["p95"]),
            ],
            {2, 3, 4, 5, 6, 7, 8},
        )
        for name, c in document["candidates"].items()
    ]
    gates = "".join(f"<p class={e(g['outcome'])}>{e(g['text'])}</p>" for g in document["gates"])
    worst = []
    for name, c in document["candidates"].items():
        for w in c["worst"]:
            if w["score"] < 1:
                worst.append(_row([e(name), e(w["case_id"]), f"{w['score']:.2f}", e(w["reason"]),
                                   f"<pre>{e(w['output'])}</pre>"], {2}))  # fmt: skip
    worst_table = (
        "<h2>Worst cases</h2><table><tr><th>candidate</th><th>case</th><th>score</th><th>reason</th>"
        f"<th>answer</th></tr>{''.join(worst)}</table>"
        if worst
        else "<p>Every case passed.</p>"
    )
    title = f"modelyard eval · {document['set']} · {document['run_id']}"
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{e(title)}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{e(title)}</h1>"
        f"<p>{document['cases']} cases · workload {e(str(document['workload'] or '—'))} · "
        f"{document['calls_made']} model calls, {document['cache_hits']} from cache · "
        f"params <code>{e(str(document['params']))}</code></p>"
        "<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>"
        f"{gates}{worst_table}</body></html>"
    )

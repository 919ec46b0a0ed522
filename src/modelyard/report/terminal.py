"""The terminal summary: one table of recommendations, the portfolio line, and the fired triggers."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from modelyard.economics.engine import Decision
from modelyard.economics.provenance import inputs
from modelyard.economics.quality import quality_inputs


def print_summary(decision: Decision, console: Console) -> None:
    h = decision.org.horizon_months
    table = Table(title=f"modelyard decide: {decision.org.organisation} ({h} months)", show_lines=True)
    for col in ("workload", "class", "requests/mo", "run it on", f"TCO {h} mo (stand-alone)"):
        table.add_column(col, overflow="fold")
    for d in decision.workloads:
        cost = d.tcos[d.chosen].total(h) if d.chosen else None
        table.add_row(
            d.profile.name,
            f"{d.profile.workload_class}\n{d.profile.data_class}"
            + ("\n[bold]planned[/]" if d.profile.origin == "planned" else ""),
            f"{d.profile.requests_per_month:,.0f}",
            d.headline,
            "" if cost is None else f"${cost:,.0f}",
        )
    console.print("[bold]Inputs[/] (how hard to lean on the figures below):")
    for line in inputs(decision):
        mark = "[yellow]![/] " if line.warn else "  "
        console.print(f"{mark}[bold]{line.what}[/]: {line.origin} — {escape(line.detail)}", highlight=False)
    console.print(table)
    for d in decision.workloads:
        console.print(f"[bold]{d.profile.name}[/]: {escape(d.why)}", highlight=False)
        for c in d.conditions:
            if not c.headline:
                console.print(f"  [dim]condition[/] {escape(c.text)}", highlight=False)
    for workload, scores in quality_inputs(decision).items():
        measured = "; ".join(q.describe() for q in scores if q.score is not None) or "none"
        unknown = ", ".join(q.model for q in scores if q.score is None)
        console.print(
            f"quality {workload}: {escape(measured)}" + (f"; unknown: {escape(unknown)}" if unknown else ""),
            highlight=False,
        )
    p = decision.portfolio
    console.print(
        f"Portfolio: [bold]${p.total:,.0f}[/] over {h} months "
        f"(stand-alone ${p.standalone_total:,.0f}; reuse saves ${p.reuse_savings:,.0f})"
    )
    fired = [t for d in decision.workloads for t in d.triggers if t.fired] + [
        t for t in decision.org_triggers if t.fired
    ]
    for t in fired:
        console.print(f"[red]trigger[/] {t.name} ({t.workload or 'organisation'}): {t.evidence}")

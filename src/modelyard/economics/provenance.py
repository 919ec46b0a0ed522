"""Where a run's inputs came from, in a few lines for the report's first screen.

Each line says what kind of evidence a family of inputs is — measured, imported, planned, published,
estimated, stated, unknown — for the options the decision actually rests on (the chosen ones), and how old
the price catalog behind them is. A CTO reads it before any figure, to know how hard to lean on them.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from modelyard.economics.quality import EVAL_SOURCE
from modelyard.ledger.summary import pico_to_usd

if TYPE_CHECKING:
    from modelyard.economics.engine import Decision
    from modelyard.economics.options import Option


@dataclass(frozen=True, slots=True)
class InputLine:
    what: str
    #: The weakest kind of evidence on the line (what a reader should weigh it by).
    origin: str
    detail: str
    #: The line needs attention (stale prices, unmeasured inputs the decision rests on).
    warn: bool = False

    def to_json(self) -> dict[str, object]:
        return {"what": self.what, "origin": self.origin, "detail": self.detail, "warn": self.warn}


_IMPORTED = ("litellm", "openai usage", ".csv", ".parquet")


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{n} {what}" for what, n in counter.most_common())


def _parts(option: Option) -> list[Option]:
    return list(option.parts) if option.parts is not None else [option]


def inputs(decision: Decision) -> list[InputLine]:
    """The run's inputs, one line per family, weakest evidence named first on each."""
    wls = decision.workloads
    source = decision.traffic_source
    measured = [d for d in wls if d.profile.origin == "measured"]
    planned = [d for d in wls if d.profile.origin == "planned"]
    kind = (
        "synthetic"
        if "synthetic" in source.lower()
        else "imported"
        if any(s in source.lower() for s in _IMPORTED)
        else "measured"
    )
    traffic_detail = f"{len(measured)} workloads from {source}" if measured else "no traffic"
    if measured:
        days = min(float(d.profile.days_observed) for d in measured)
        thin = sum(1 for d in measured if d.profile.thin_trace)
        traffic_detail += f" (shortest trace {days:.1f} days" + (f"; {thin} thin" if thin else "") + ")"
    if planned:
        traffic_detail += f"; {len(planned)} planned: {', '.join(d.profile.name for d in planned)}"
    out = [
        InputLine(
            "Traffic",
            "planned" if planned and not measured else kind,
            traffic_detail,
            warn=bool(planned) or any(d.profile.thin_trace for d in measured),
        )
    ]
    chosen = [p for d in wls if d.chosen for p in _parts(d.option(d.chosen))]
    hosted = Counter(
        "scaled " + p.source if (p.reference or "").startswith("scaled from") else p.source
        for p in chosen
        if p.kind == "self_hosted"
    )
    if hosted:
        out.append(
            InputLine(
                "Throughput of chosen self-hosted options",
                "measured"
                if set(hosted) == {"measured"}
                else "estimated"
                if "estimated" in hosted
                else "published",
                _counts(hosted) + " (tiers: docs/capacity.md)",
                warn="measured" not in hosted,
            )
        )
    quality: Counter[str] = Counter()
    for d in wls:
        if not d.chosen:
            continue
        for p in _parts(d.option(d.chosen)):
            q = decision.org.quality_of(d.profile.name, p.model)
            quality[
                "unknown" if q is None else "measured" if q.source.startswith(EVAL_SOURCE) else "stated"
            ] += 1
    if quality:
        out.append(
            InputLine(
                "Quality of chosen models",
                "unknown" if "unknown" in quality else "stated" if "stated" in quality else "measured",
                _counts(quality) + " (eval runs: modelyard eval run)",
                warn="unknown" in quality,
            )
        )
    out += _quality_calls(decision)
    out += _ages(decision)
    return out


def _quality_calls(decision: Decision) -> list[InputLine]:
    """What eval runs spent (a ledger's ``eval`` and ``judge`` calls), said once: not in any workload."""
    q = decision.quality_calls
    if q is None:
        return []
    cost = f"${pico_to_usd(q.cost_pico_usd).quantize(Decimal('0.000001'))}"
    unpriced = f" + {q.unpriced:,} unpriced" if q.unpriced else ""
    detail = f"{q.calls:,} calls, {cost}{unpriced}, left out of workload volumes"
    return [InputLine("Eval and judge calls (quality cost)", "measured", detail)]


def _ages(decision: Decision) -> list[InputLine]:
    """How old the prices are that the options considered rest on; stale beyond the org's limit."""
    limit = decision.org.catalog.max_age_days
    lines = []
    for what, kinds in (("API prices", ("api", "managed_open")), ("GPU prices", ("self_hosted",))):
        dated = [
            (o.price_as_of, f"{o.vendor}/{o.gpu}" if o.kind == "self_hosted" else o.label)
            for d in decision.workloads
            for o in d.options
            if o.kind in kinds and o.price_as_of is not None
        ]
        if not dated:
            continue
        oldest, label = min(dated)
        age = (decision.today - oldest).days
        stale = sorted({lab for when, lab in dated if (decision.today - when).days > limit})
        detail = f"oldest figure used {oldest.isoformat()} ({age} days, {label})"
        if stale:
            shown = ", ".join(stale[:4]) + (f" and {len(stale) - 4} more" if len(stale) > 4 else "")
            detail += f"; older than {limit} days: {shown}"
        lines.append(InputLine(what, "published", detail, warn=bool(stale)))
    return lines

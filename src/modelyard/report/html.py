"""The self-contained HTML report: one file, inline CSS and SVG, no script, no external reference.

Read top-down in a minute: the recommendation per workload, the portfolio total, the fired triggers; then
one section per workload with its charts and the numbers behind them.
"""

from __future__ import annotations

import re
from fractions import Fraction
from html import escape

from modelyard.economics.breakeven import curves
from modelyard.economics.engine import Decision, WorkloadDecision
from modelyard.economics.options import Option
from modelyard.economics.provenance import inputs
from modelyard.economics.quality import QualityInput, quality_inputs
from modelyard.economics.workload import WorkloadProfile
from modelyard.report.charts import hbars, histogram, line_chart, stacked_bars, tornado

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#0f172a;background:#f8fafc}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid #e2e8f0}
h3{font-size:15px;margin:18px 0 6px}.sub{color:#475569}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0 12px}
th,td{border:1px solid #e2e8f0;padding:5px 8px;text-align:left;vertical-align:top}th{background:#f1f5f9}
td.n{text-align:right;font-variant-numeric:tabular-nums}.fired{color:#b91c1c;font-weight:600}
.ok{color:#15803d}.tag{display:inline-block;padding:0 6px;border-radius:8px;font-size:12px;background:#e2e8f0}
.measured{background:#bbf7d0}.published{background:#bfdbfe}.estimated{background:#fde68a}
.planned,.unknown,.synthetic{background:#fecaca}.stated,.imported{background:#e9d5ff}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px 16px;margin:10px 0}
.charts{display:flex;flex-wrap:wrap;gap:10px}.chart{background:#fff;border:1px solid #e2e8f0;max-width:100%}
.ct{font-weight:600;font-size:13px}.tk{font-size:11px;fill:#334155}.lb{font-size:11px;fill:#475569}
.cond{color:#92400e;background:#fef3c7;margin-top:4px;padding:2px 6px;font-size:13px}
.ax{stroke:#94a3b8}.mk{stroke:#b91c1c;stroke-dasharray:4 3}.synthetic{background:#fef3c7;padding:6px 10px}
"""


def render(decision: Decision) -> str:
    org = decision.org
    h = org.horizon_months
    parts = [
        f"<h1>API or self-hosted? {escape(org.organisation)}</h1>",
        f'<p class="sub">Traffic: {escape(decision.traffic_source)} · horizon {h} months · generated '
        f"{decision.today.isoformat()} · prices {escape(decision.catalogs.prices.version)} · GPUs "
        f"{escape(decision.catalogs.gpus.version)}</p>",
    ]
    if "synthetic" in decision.traffic_source.lower():
        parts.append(
            '<p class="synthetic">This report runs on the bundled <b>synthetic</b> traffic trace.</p>'
        )
    parts += [_inputs(decision), _summary(decision), _triggers(decision)]
    quality = quality_inputs(decision)
    parts += [_workload(d, decision) + _quality(quality[d.profile.name]) for d in decision.workloads]
    parts.append(_notes(decision))
    body = "\n".join(parts)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>modelyard decision: {escape(org.organisation)}</title><style>{CSS}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )


def _inputs(decision: Decision) -> str:
    """The first screen's word on evidence: what each family of inputs is, and how old the prices are."""
    rows = "".join(
        f"<tr><td>{escape(line.what)}</td><td><span class='tag {escape(line.origin)}'>{escape(line.origin)}</span>"
        f"</td><td class='{'cond' if line.warn else ''}'>{escape(line.detail)}</td></tr>"
        for line in inputs(decision)
    )
    return f"<h2>Inputs</h2><table><tr><th>Input</th><th>Evidence</th><th>Detail</th></tr>{rows}</table>"


def _summary(decision: Decision) -> str:
    p = decision.portfolio
    h = decision.org.horizon_months
    rows = "".join(
        f"<tr><td><b>{escape(d.profile.name)}</b><br><span class='sub'>{escape(d.profile.workload_class)}, "
        f"{escape(d.profile.data_class)}</span></td><td>{escape(d.headline)}{_condition_tags(d)}</td>"
        f"<td>{escape(d.why)}</td></tr>"
        for d in decision.workloads
    )
    return (
        "<h2>Recommendation</h2><table><tr><th>Workload</th><th>Run it on</th><th>Why, in numbers</th></tr>"
        f"{rows}</table><div class='card'>Optimal portfolio over {h} months: <b>${p.total:,.0f}</b> "
        f"(stand-alone sum ${p.standalone_total:,.0f}; shared pools and platforms save "
        f"<b>${p.reuse_savings:,.0f}</b>). Solver: {escape(p.status)}.</div>"
    )


def _condition_tags(d: WorkloadDecision) -> str:
    """The recommendation's headline conditions, as warnings under it; the others in a hover title."""
    lead = "".join(f"<div class='cond'>⚠ {escape(c.text)}</div>" for c in d.conditions if c.headline)
    rest = [c.text for c in d.conditions if not c.headline]
    more = (
        f"<div class='sub' title='{escape(' | '.join(rest))}'>+{len(rest)} more conditions</div>"
        if rest
        else ""
    )
    return lead + more


def _triggers(decision: Decision) -> str:
    fired = [t for d in decision.workloads for t in d.triggers if t.fired] + [
        t for t in decision.org_triggers if t.fired
    ]
    if not fired:
        return "<h2>Migration triggers</h2><p class='ok'>No trigger fired.</p>"
    rows = "".join(
        f"<tr><td class='fired'>{escape(t.name)}</td><td>{escape(t.workload or 'organisation')}</td>"
        f"<td>{escape(t.evidence)}</td></tr>"
        for t in fired
    )
    return f"<h2>Migration triggers fired</h2><table><tr><th>Trigger</th><th>Where</th><th>Evidence</th></tr>{rows}</table>"


def _workload(d: WorkloadDecision, decision: Decision) -> str:
    wl = d.profile
    h = decision.org.horizon_months
    lat = wl.latency_ms
    latency = (
        f"p50/p95/p99 {lat['p50']:,.0f}/{lat['p95']:,.0f}/{lat['p99']:,.0f} ms"
        if {"p50", "p95", "p99"} <= lat.keys()
        else "latency unknown (the source records none)"
    )
    head = (
        f"<h2>{escape(wl.name)}</h2><p>{wl.requests_per_month:,.0f} requests/month · "
        f"{wl.input_tokens_mean:,.0f} in ({wl.cached_input_tokens_mean:,.0f} cached) / {wl.output_tokens_mean:,.0f} out "
        f"tokens per request · peak/avg {wl.peak_to_avg:.1f} · {_concurrency(wl)} · {latency} · growth {float(d.demand.growth_per_month) * 100:.1f}%/month "
        f"({escape(d.growth_source)}) · API spend ${d.api_spend_month:,.0f}/month ({escape(d.api_spend_source)})</p>"
    )
    if wl.thin_trace:
        head += f"<p class='cond'>⚠ {escape(wl.thin_trace)}</p>"
    if wl.origin == "planned":
        head += (
            "<p class='cond'>⚠ planned, not measured: the volume, tokens, daily shape and growth above are "
            "the plan's; latency and concurrency are unknown until traffic exists.</p>"
        )
    head += _break_even_basis(d, h)
    charts = [_crossover(d, decision), *_stacked(d, h), _tornado(d), _scorecard(d)]
    charts.append(
        histogram(f"{wl.name}: end-to-end latency distribution", wl.latency_histogram, "latency (ms, log)")
    )
    return (
        head
        + '<div class="charts">'
        + "".join(c for c in charts if c)
        + "</div>"
        + _derivation(d)
        + _options(d, h)
    )


def _concurrency(wl: WorkloadProfile) -> str:
    if wl.mean_latency_ms <= 0:
        return "concurrency unknown (no latency measured)"
    return f"concurrency mean {wl.concurrency_mean:.1f}, peak {wl.concurrency_peak:.1f}"


def _derivation(d: WorkloadDecision) -> str:
    """The chosen option's scorecard with each score's derivation, so it reads on paper too."""
    if d.chosen is None or d.chosen not in d.scores:
        return ""
    card = d.scores[d.chosen]
    rows = "".join(
        f"<tr><td>{escape(s.dimension)}</td><td class='n'>{s.score}</td><td>{escape(s.why)}</td></tr>"
        for s in card.scores
    )
    return (
        f"<h3>Scorecard of the recommendation (weighted {card.weighted} of 5)</h3>"
        f"<table><tr><th>Dimension</th><th>Score 1–5</th><th>Derived from</th></tr>{rows}</table>"
    )


def _crossover(d: WorkloadDecision, decision: Decision) -> str:
    if d.break_even is None:
        return ""
    api, self_ = d.option(d.break_even.api), d.option(d.break_even.self_hosted)
    a, b = curves(api, self_, d.demand, decision.org)
    current = float(d.profile.requests_per_month)
    be = d.break_even.sustained
    xmax = max(current * 3, float(be) * 1.5 if be is not None else 0.0, 1.0)
    xs = [Fraction(xmax) * i / 200 for i in range(201)]
    markers = [(current, f"today {current:,.0f}/mo")]
    if be is not None:
        markers.append((float(be), f"break-even {float(be):,.0f}/mo (run-rate)"))
    if d.horizon_break_even is not None and float(d.horizon_break_even) <= xmax:
        markers.append((float(d.horizon_break_even), f"{decision.org.horizon_months}-mo basis"))
    return line_chart(
        f"{d.profile.name}: monthly run-rate cost vs volume (today's prices)",
        [
            (api.label, [(float(x), float(a.cost(x))) for x in xs]),
            (self_.label, [(float(x), float(b.cost(x))) for x in xs]),
        ],
        "requests per month",
        "USD/month",
        markers,
    )


def _stacked(d: WorkloadDecision, h: int) -> list[str]:
    key = d.chosen
    if key is None or key not in d.tcos:
        return []
    t = d.tcos[key]
    out = []
    for span in sorted({min(12, h), h}):
        months = t.months[:span]
        stacks = [
            (name, [float(getattr(m, name)) * (-1 if name == "reuse" else 1) for m in months])
            for name in ("direct", "hosting", "platform", "operations", "risk", "reuse")
        ]
        out.append(stacked_bars(f"{d.profile.name}: monthly TCO by bucket, {span} months ({key.split(':', 1)[1][:40]})",
                                [str(i + 1) for i in range(span)], stacks, "USD"))  # fmt: skip
    return out


def _tornado(d: WorkloadDecision) -> str:
    if d.tornado_base is None:
        return ""
    bars = [(b.parameter, b.low_label, b.high_label, float(b.low), float(b.high)) for b in d.tornado]
    return tornado(
        f"{d.profile.name}: what moves self-host − API ({len(bars)} inputs)", float(d.tornado_base), bars
    )


def _scorecard(d: WorkloadDecision) -> str:
    rows = sorted(((k.split(":", 1)[1], float(c.weighted)) for k, c in d.scores.items()), key=lambda r: -r[1])
    return hbars(f"{d.profile.name}: weighted scorecard (1–5)", rows[:8], 5.0) if rows else ""


def _options(d: WorkloadDecision, h: int) -> str:
    rows = []
    for o in d.options:
        t = d.tcos.get(o.key)
        card = d.scores.get(o.key)
        src = _source_tag(o) if o.kind == "self_hosted" else ""
        quality = "unknown" if o.quality is None else f"{o.quality:.2f}"
        status = escape(o.infeasible) if o.infeasible else ("<b>chosen</b>" if o.key == d.chosen else "")
        be_text = _break_even_cell(d, o)
        scores = "" if card is None else " · ".join(f"{s.dimension[:4]} {s.score}" for s in card.scores)
        rows.append(
            f"<tr><td>{escape(o.label)} {src}</td><td>{escape(o.kind)}</td>"
            f"<td class='n'>{'' if t is None else '$' + format(t.total(min(12, h)), ',.0f')}</td>"
            f"<td class='n'>{'' if t is None else '$' + format(t.total(h), ',.0f')}</td>"
            f"<td class='n'>{be_text}</td><td>{quality}</td>"
            f"<td title='{escape(' | '.join(s.why for s in card.scores) if card else '')}'>{scores}</td>"
            f"<td>{status}</td></tr>"
        )
    return (
        f"<h3>Options considered</h3><table><tr><th>Option</th><th>Kind</th><th>TCO 12 mo</th><th>TCO {h} mo</th>"
        "<th>Break-even (run-rate): API vs its lowest self-host; self-host vs today's API</th><th>Quality</th><th>Scores (hover: why)</th><th>Status</th></tr>"
        + "".join(rows) + "</table>"
    )  # fmt: skip


def _break_even_basis(d: WorkloadDecision, h: int) -> str:
    """The break-even on both bases, in one sentence, so neither seems to contradict the totals."""
    be = d.break_even
    if be is None:
        return ""
    pair = f"{escape(d.option(be.self_hosted).label)} against {escape(d.option(be.api).label)}"
    run = "never below the cap" if be.sustained is None else f"from {float(be.sustained):,.0f} requests/month"
    hz = d.horizon_break_even
    horizon = "never below the cap" if hz is None else f"from {float(hz):,.0f} requests/month today"
    return (
        f"<p>Lowest break-even: {pair} — {run} on the run-rate basis (today's prices, one-offs spread over "
        f"{h} months); {horizon} on the {h}-month basis (growth and price trends, as in the totals). "
        f"Cap: {float(be.cap):,.0f} requests/month; every feasible self-hosted option was tried.</p>"
    )


def _source_tag(o: Option) -> str:
    scaled = o.reference is not None and o.reference.startswith("scaled from")
    words = f"{o.source}, scaled" if scaled else o.source
    # Citations are shown without their scheme: the page references nothing outside itself.
    cite = re.sub(r"https?://", "", o.reference or "")
    return f"<span class='tag {o.source}' title='{escape(cite)}'>{escape(words)}</span>"


def _break_even_cell(d: WorkloadDecision, o: Option) -> str:
    if d.break_even is None:
        return ""
    if o.key in d.break_evens:
        be = d.break_evens[o.key]
        if be.sustained is None:
            return f"never below {float(be.cap):,.0f}/mo"
        return f"{float(be.sustained):,.0f}/mo ({escape(d.option(be.self_hosted).label)})"
    if o.key in d.break_even.per_option:
        own = d.break_even.per_option[o.key]
        return "never below the cap" if own.sustained is None else f"{float(own.sustained):,.0f}/mo"
    return ""


def _quality(inputs: list[QualityInput]) -> str:
    """Where each model's quality came from: an eval run, the organisation profile, or nowhere."""
    rows = []
    for q in inputs:
        score = "unknown" if q.score is None else f"{q.score:.2f}"
        source = q.source or "never measured: the quality floor cannot be checked"
        rows.append(
            f"<tr><td>{escape(q.model)}</td><td class='n'>{score}</td><td>{escape(q.origin)}</td>"
            f"<td>{escape(source)}</td></tr>"
        )
    return (
        "<h3>Quality inputs</h3><table><tr><th>Model</th><th>Score</th><th>From</th><th>Source</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _notes(decision: Decision) -> str:
    items = [escape(n) for n in decision.notes]
    items.append(
        "Throughput labels: <span class='tag measured'>measured</span> by modelyard benchmark, "
        "<span class='tag published'>published</span> (cited in the JSON), <span class='tag estimated'>estimated</span> "
        "by a memory-bandwidth roofline when nothing better exists."
    )
    items.append("TCO = direct + hosting + platform engineering + operations + risk premium − reuse savings.")
    return "<h2>Notes and sources</h2><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"

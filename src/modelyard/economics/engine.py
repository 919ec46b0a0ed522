"""One ``decide`` run: traffic + org profile + catalogs → a :class:`Decision` the renderers print.

Pure apart from the catalogs it is given; :func:`load_inputs` does the file reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from decimal import Decimal
from fractions import Fraction

from modelyard.catalog.gpus import load_gpu_catalog
from modelyard.catalog.prices import load_catalog
from modelyard.catalog.serving import load_serving_catalog
from modelyard.economics import triggers as trig
from modelyard.economics.breakeven import (
    lowest_break_evens,
    tornado_bars,
    volume_cap,
)
from modelyard.economics.decision import Catalogs, Decision, WorkloadDecision
from modelyard.economics.grid import evaluate
from modelyard.economics.hybrid import hybrid_options
from modelyard.economics.lazy import LazyMap
from modelyard.economics.options import build_options
from modelyard.economics.org import OrgProfile
from modelyard.economics.plan import Plan, planned_profiles, with_plan_policies
from modelyard.economics.portfolio import Candidate, optimise
from modelyard.economics.recommend import explain_pairs, recommend
from modelyard.economics.scorecard import Scorecard, scorecard
from modelyard.economics.spend import monthly_use_spend, observed_spend
from modelyard.economics.tco import Adjust, Demand, tco
from modelyard.economics.traffic import Traffic
from modelyard.economics.workload import (
    WorkloadProfile,
    build_profiles,
)
from modelyard.errors import ConfigError

__all__ = ["Catalogs", "Decision", "WorkloadDecision", "decide", "load_catalogs", "sensitivity"]


def load_catalogs(org: OrgProfile) -> Catalogs:
    return Catalogs(
        prices=load_catalog(org.catalog.price_files),
        gpus=load_gpu_catalog(org.catalog.gpu_files),
        serving=load_serving_catalog(org.catalog.profiles_dir),
    )


def _demand(wl: WorkloadProfile, org: OrgProfile) -> tuple[Demand, str]:
    yearly = org.trends.volume_growth_pct_per_year
    if wl.origin == "planned" and wl.growth_per_month is not None:
        growth = Decimal(str(round(wl.growth_per_month, 6)))
        source = f"planned: {wl.growth_per_month * 100:g}%/month"
    elif yearly is not None:
        growth = (1 + yearly / 100) ** (Decimal(1) / 12) - 1
        source = f"org profile: {yearly}%/year"
    elif wl.growth_per_month is not None and wl.origin == "measured":
        growth = Decimal(str(round(wl.growth_per_month, 6)))
        source = f"fitted from {wl.days_observed:.0f} days of traffic"
    else:
        growth, source = (
            Decimal(0),
            "none: planned without growth"
            if wl.origin == "planned"
            else f"none: only {wl.days_observed:.0f} days of traffic, too short to fit a trend",
        )
    policy = org.workloads.get(wl.name)
    if policy is not None and policy.deferrable:
        # A queue spreads deferrable work evenly over the day.
        return Demand(wl.requests_per_month, growth, Decimal(1), [Decimal(1) / 24] * 24), source
    peak = Decimal(str(round(wl.peak_to_avg, 4)))
    hours = [Decimal(str(round(h, 6))) for h in wl.hour_of_day]
    return Demand(wl.requests_per_month, growth, peak, hours), source


def _workload(wl: WorkloadProfile, org: OrgProfile, catalogs: Catalogs, today: date) -> WorkloadDecision:
    demand, growth_source = _demand(wl, org)
    options = build_options(wl, org, catalogs.prices, catalogs.gpus, catalogs.serving, today)
    options += hybrid_options(options, demand, wl.name, org)
    by_key = {o.key: o for o in options if o.feasible}
    exact = LazyMap(by_key, lambda key: tco(by_key[key], demand, org))
    d = WorkloadDecision(wl, demand, growth_source, options, exact)
    d.api_spend_month, d.api_spend_source = observed_spend(wl, catalogs.prices)
    return d


def decide(
    org: OrgProfile, traffic: Traffic, catalogs: Catalogs, today: date, plan: Plan | None = None
) -> Decision:
    """Profile the traffic (and the planned workloads), price every option per workload, and choose the
    optimal portfolio.

    Every (workload, option) pair is costed at once in float64 (:mod:`.grid`) to rank and optimise; the
    figures a reader sees are exact ``Decimal``, computed for the options that are read."""
    plan_notes: list[str] = []
    if plan is not None:
        org = with_plan_policies(org, plan)
    profiles = build_profiles(traffic, org)
    if plan is not None:
        planned, plan_notes = planned_profiles(plan, org, {p.name for p in profiles})
        profiles = sorted([*profiles, *planned], key=lambda p: p.name)
    if not profiles:
        raise ConfigError("no workloads: the traffic has no calls and no plan was given (--plan FILE)")
    concentration, concentrated = trig.vendor_concentration(profiles, org, monthly_use_spend(catalogs.prices))
    decisions = [_workload(wl, org, catalogs, today) for wl in profiles]
    candidates = [Candidate(d.profile.name, o, d.demand) for d in decisions for o in d.options if o.feasible]
    grid = evaluate([(c.option, c.demand) for c in candidates], org)
    totals = grid.totals(org.horizon_months)
    for c, total in zip(candidates, totals, strict=True):
        next(d for d in decisions if d.profile.name == c.workload).ranking[c.option.key] = float(total)
    for d in decisions:
        d.scores = _scorecards(d, org, concentrated)
        _pair_analysis(d, org)
    sensitivity(decisions, org)
    for d in decisions:
        d.triggers = _triggers(d, org)
    portfolio = optimise(candidates, [d.profile.name for d in decisions], org, grid)
    for d in decisions:
        d.tcos.seed(portfolio.assignment[d.profile.name], portfolio.chosen_tcos[d.profile.name])  # type: ignore[attr-defined]
    explain_pairs(decisions, portfolio, org)
    for d in decisions:
        recommend(d, portfolio, org)
    return Decision(
        org, traffic.source, catalogs, today, decisions, portfolio, [concentration],
        plan_notes + _notes(decisions, org), traffic.quality,
    )  # fmt: skip


def _notes(decisions: list[WorkloadDecision], org: OrgProfile) -> list[str]:
    notes = []
    for d in decisions:
        policy = org.workloads.get(d.profile.name)
        if policy is None or policy.quality_floor is None:
            continue
        for model in dict.fromkeys(o.model for o in d.options if o.quality is None and o.kind != "hybrid"):
            notes.append(
                f"{d.profile.name}: quality of {model} was never measured; the quality floor cannot be checked"
            )
    return notes


def _scorecards(d: WorkloadDecision, org: OrgProfile, concentrated: str | None) -> Mapping[str, Scorecard]:
    if not d.ranking:
        return {}
    cheapest_key = min(d.ranking, key=d.ranking.__getitem__)
    known = [o.latency_p95_ms for o in d.options if o.feasible and o.latency_p95_ms is not None]
    fastest = min(known) if known else None

    def card(key: str) -> Scorecard:
        cheapest = d.tcos[cheapest_key].total(org.horizon_months)
        return scorecard(
            d.option(key),
            d.tcos[key].total(org.horizon_months),
            cheapest,
            fastest,
            d.profile,
            org,
            concentrated,
        )

    return LazyMap(d.ranking, card)


def _pair_analysis(d: WorkloadDecision, org: OrgProfile) -> None:
    """Break-even of each API-priced option against every feasible self-hosted one (the lowest is kept)."""
    priced = [o for o in d.options if o.feasible and o.kind in ("api", "managed_open")]
    hosted = sorted(
        (o for o in d.options if o.feasible and o.kind == "self_hosted"), key=lambda o: d.ranking[o.key]
    )
    if priced:
        d.best_api = min(priced, key=lambda o: d.ranking[o.key]).key
    if hosted:
        d.best_self = hosted[0].key
    used = {u.model for u in d.profile.models}
    d.incumbent = next((o.key for o in priced if o.label.split("/", 1)[1] in used), d.best_api)
    if d.incumbent and hosted:
        cap = volume_cap(d.profile.requests_per_month)
        d.break_evens = lowest_break_evens(priced, hosted, d.demand, org, cap)
        d.break_even = d.break_evens[d.incumbent]


def sensitivity(decisions: list[WorkloadDecision], org: OrgProfile) -> None:
    """Tornado of every workload with an API and a self-hosted option, all costed in one batch per input."""
    pairs = [d for d in decisions if d.incumbent and d.best_self]
    if not pairs:
        return
    rows = [(d.option(k), d.demand) for d in pairs for k in (d.best_self, d.incumbent) if k]
    bars = tornado_bars(rows, org)
    h = org.horizon_months
    for i, d in enumerate(pairs):
        assert d.best_self and d.incumbent
        d.tornado_base = d.tcos[d.best_self].total(h) - d.tcos[d.incumbent].total(h)
        d.tornado = bars[i]
    for pct in org.triggers.price_change_pct:  # the price-change triggers, costed in the same batches
        t = evaluate(rows, org, Adjust(api_price=1 + pct / 100)).totals(h)
        for i, d in enumerate(pairs):
            d.self_cheaper_after[pct] = bool(t[2 * i] < t[2 * i + 1])


def _triggers(d: WorkloadDecision, org: OrgProfile) -> list[trig.Trigger]:
    wl = d.profile
    sustained = _dec(d.break_even.sustained) if d.break_even and d.break_even.sustained is not None else None
    out = [
        trig.volume_past_break_even(wl, sustained, org, _pair_words(d)),
        trig.latency_missed(wl, org),
        trig.restricted_external(wl),
        trig.api_spend_over(wl, d.api_spend_month, d.api_spend_source, org),
    ]
    if d.incumbent and d.best_self:
        api, self_ = d.option(d.incumbent), d.option(d.best_self)
        spend = d.tcos[api.key].months[0].direct
        base_self_cheaper = d.ranking[self_.key] < d.ranking[api.key]
        for pct in org.triggers.price_change_pct:
            cheaper = d.self_cheaper_after[pct]
            out.append(
                trig.price_change(
                    wl, pct, spend, cheaper != base_self_cheaper, self_.label if cheaper else api.label
                )
            )
    return out


def _pair_words(d: WorkloadDecision) -> str:
    be = d.break_even
    if be is None:
        return ""
    return f", {d.option(be.self_hosted).label} vs {d.option(be.api).label}"


def _dec(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)

"""One ``decide`` run: traffic + org profile + catalogs → a :class:`Decision` the renderers print.

Pure apart from the catalogs it is given; :func:`load_inputs` does the file reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction

from modelyard.catalog.gpus import GpuCatalog, load_gpu_catalog
from modelyard.catalog.prices import PriceCatalog, load_catalog
from modelyard.catalog.serving import ServingCatalog, load_serving_catalog
from modelyard.economics import triggers as trig
from modelyard.economics.breakeven import BreakEven, TornadoBar, break_even, tornado_bars
from modelyard.economics.grid import evaluate
from modelyard.economics.hybrid import hybrid_options
from modelyard.economics.lazy import LazyMap
from modelyard.economics.options import Option, build_options, price_per_request
from modelyard.economics.org import OrgProfile
from modelyard.economics.portfolio import Candidate, Portfolio, optimise, pool_of
from modelyard.economics.scorecard import Scorecard, scorecard
from modelyard.economics.tco import Adjust, Demand, Tco, tco
from modelyard.economics.traffic import Traffic
from modelyard.economics.workload import (
    DAYS_PER_MONTH,
    INTERNAL_PROVIDER_KINDS,
    WorkloadProfile,
    build_profiles,
)


@dataclass(frozen=True, slots=True)
class Catalogs:
    prices: PriceCatalog
    gpus: GpuCatalog
    serving: ServingCatalog


def load_catalogs(org: OrgProfile) -> Catalogs:
    return Catalogs(
        prices=load_catalog(org.catalog.price_files),
        gpus=load_gpu_catalog(org.catalog.gpu_files),
        serving=load_serving_catalog(org.catalog.profiles_dir),
    )


@dataclass(slots=True)
class WorkloadDecision:
    profile: WorkloadProfile
    demand: Demand
    growth_source: str
    options: list[Option]
    #: Exact (Decimal) TCO of every feasible option, computed when first read.
    tcos: Mapping[str, Tco]
    #: Scorecard of every feasible option, computed when first read.
    scores: Mapping[str, Scorecard] = field(default_factory=dict)
    #: Horizon TCO of every feasible option in float64, for ranking (exact figures: ``tcos``).
    ranking: dict[str, float] = field(default_factory=dict)
    best_api: str | None = None
    best_self: str | None = None
    #: The API-priced option the traffic already uses (when a candidate), else the cheapest one.
    incumbent: str | None = None
    break_even: BreakEven | None = None
    #: Break-even of every feasible API-priced option against the best self-hosted one.
    break_evens: dict[str, BreakEven] = field(default_factory=dict)
    #: Observed API spend per month: ledger costs when recorded, else the traffic priced at catalog rates.
    api_spend_month: Decimal = Decimal(0)
    api_spend_source: str = ""
    tornado_base: Decimal | None = None
    tornado: list[TornadoBar] = field(default_factory=list)
    #: API price change (%) → whether self-hosting is then cheaper than the incumbent over the horizon.
    self_cheaper_after: dict[Decimal, bool] = field(default_factory=dict)
    triggers: list[trig.Trigger] = field(default_factory=list)
    recommendation: str = ""
    chosen: str | None = None
    why: str = ""

    def option(self, key: str) -> Option:
        return next(o for o in self.options if o.key == key)


@dataclass(slots=True)
class Decision:
    org: OrgProfile
    traffic_source: str
    catalogs: Catalogs
    today: date
    workloads: list[WorkloadDecision]
    portfolio: Portfolio
    org_triggers: list[trig.Trigger]
    notes: list[str]


def _demand(wl: WorkloadProfile, org: OrgProfile) -> tuple[Demand, str]:
    yearly = org.trends.volume_growth_pct_per_year
    if yearly is not None:
        growth = (1 + yearly / 100) ** (Decimal(1) / 12) - 1
        source = f"org profile: {yearly}%/year"
    elif wl.growth_per_month is not None:
        growth = Decimal(str(round(wl.growth_per_month, 6)))
        source = f"fitted from {wl.days_observed:.0f} days of traffic"
    else:
        growth, source = (
            Decimal(0),
            f"none: only {wl.days_observed:.0f} days of traffic, too short to fit a trend",
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
    d.api_spend_month, d.api_spend_source = _observed_spend(wl, catalogs.prices)
    return d


def decide(org: OrgProfile, traffic: Traffic, catalogs: Catalogs, today: date) -> Decision:
    """Profile the traffic, price every option per workload, and choose the optimal portfolio.

    Every (workload, option) pair is costed at once in float64 (:mod:`.grid`) to rank and optimise; the
    figures a reader sees are exact ``Decimal``, computed for the options that are read."""
    profiles = build_profiles(traffic, org)
    concentration, concentrated = trig.vendor_concentration(profiles, org)
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
        _recommend(d, portfolio, org)
    return Decision(
        org, traffic.source, catalogs, today, decisions, portfolio, [concentration], _notes(decisions, org)
    )


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
    """Break-even between each API-priced option and the cheapest self-hosted one."""
    priced = [o for o in d.options if o.feasible and o.kind in ("api", "managed_open")]
    hosted = [o for o in d.options if o.feasible and o.kind == "self_hosted"]
    if priced:
        d.best_api = min(priced, key=lambda o: d.ranking[o.key]).key
    if hosted:
        d.best_self = min(hosted, key=lambda o: d.ranking[o.key]).key
    used = {u.model for u in d.profile.models}
    d.incumbent = next((o.key for o in priced if o.label.split("/", 1)[1] in used), d.best_api)
    if d.incumbent and d.best_self:
        self_ = d.option(d.best_self)
        d.break_evens = {o.key: break_even(o, self_, d.demand, org) for o in priced}
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
        trig.volume_past_break_even(wl, sustained, org),
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


def _observed_spend(wl: WorkloadProfile, prices: PriceCatalog) -> tuple[Decimal, str]:
    """Monthly external API spend: recorded costs if the traffic has them, else catalog rates × volume."""
    external = [u for u in wl.models if (u.provider_kind or "") not in INTERNAL_PROVIDER_KINDS]
    recorded = sum((u.cost_usd for u in external), Decimal(0))
    scale = DAYS_PER_MONTH / wl.days_observed
    if recorded and all(u.unpriced == 0 for u in external):
        return recorded * scale, "recorded costs"
    total = Decimal(0)
    for u in external:
        price = prices.price_for(u.provider_kind or "", u.model)
        if price is None:
            return recorded * scale, f"recorded costs only: no catalog price for {u.provider_kind}/{u.model}"
        total += u.requests * price_per_request(price, wl)
    return total * scale, "traffic priced at catalog rates"


def _dec(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)


KIND_WORDS = {
    "api": "API",
    "managed_open": "managed open-model API",
    "self_hosted": "self-host",
    "hybrid": "hybrid",
}


def _recommend(d: WorkloadDecision, portfolio: Portfolio, org: OrgProfile) -> None:
    h = org.horizon_months
    key = portfolio.assignment[d.profile.name]
    chosen = d.option(key)
    d.chosen = key
    d.recommendation = KIND_WORDS[chosen.kind]
    cost = d.tcos[key].total(h)
    if chosen.kind == "hybrid":
        others = [k for k, o in ((o.key, o) for o in d.options if o.feasible) if o.kind != "hybrid"]
        alternative = min(others, key=d.ranking.__getitem__) if others else None
    else:
        alternative = d.best_self if chosen.kind != "self_hosted" else d.best_api
    if alternative is None:
        d.why = f"{chosen.label}: ${cost:,.0f} over {h} months; the only feasible kind of option for this workload."
        return
    pool = pool_of(chosen)
    shared = [
        w for w, k in portfolio.assignment.items() if w != d.profile.name and pool and pool_of_key(k) == pool
    ]
    if shared:
        d.why = (
            f"{chosen.label}: shares the GPU pool with {', '.join(shared)}; the portfolio adds it at a lower "
            f"marginal cost than any API (stand-alone it would be ${cost:,.0f} over {h} months)."
        )
        return
    alt = d.option(alternative)
    alt_cost = d.tcos[alternative].total(h)
    be = d.break_even.sustained if d.break_even else None
    be_text = f"; self-hosting pays from {_dec(be):,.0f} requests/month" if be is not None else ""
    d.why = (
        f"{chosen.label}: ${cost:,.0f} over {h} months vs ${alt_cost:,.0f} for {alt.label}"
        f" at {d.profile.requests_per_month:,.0f} requests/month today{be_text}."
    )


def pool_of_key(key: str) -> str | None:
    """The GPU pool of an option key (self-hosted or hybrid), without the option object."""
    if key.startswith("self_hosted:"):
        return key
    if key.startswith("hybrid:"):
        return "self_hosted:" + key.split(":", 2)[2].split("|", 1)[0]
    return None

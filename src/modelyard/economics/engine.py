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
from modelyard.economics.breakeven import (
    PairBreakEven,
    TornadoBar,
    horizon_break_evens,
    lowest_break_evens,
    tornado_bars,
    volume_cap,
)
from modelyard.economics.conditions import Condition, conditions, headline_suffix
from modelyard.economics.grid import evaluate
from modelyard.economics.hybrid import hybrid_options
from modelyard.economics.lazy import LazyMap
from modelyard.economics.options import Option, build_options, price_per_request
from modelyard.economics.org import OrgProfile
from modelyard.economics.plan import Plan, planned_profiles, with_plan_policies
from modelyard.economics.portfolio import Candidate, Portfolio, optimise, pool_of
from modelyard.economics.scorecard import Scorecard, scorecard
from modelyard.economics.tco import Adjust, Demand, Tco, tco
from modelyard.economics.traffic import Traffic
from modelyard.economics.vendors import locus
from modelyard.economics.workload import (
    DAYS_PER_MONTH,
    ModelUse,
    WorkloadProfile,
    build_profiles,
)
from modelyard.errors import ConfigError


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
    #: The incumbent's break-even against the self-hosted option that breaks even lowest (run-rate basis).
    break_even: PairBreakEven | None = None
    #: Break-even of every feasible API-priced option against its lowest-breaking self-hosted option.
    break_evens: dict[str, PairBreakEven] = field(default_factory=dict)
    #: The same pair as ``break_even`` on the horizon basis (growth, trends, one-offs): today's volume from
    #: which self-hosting's horizon TCO stays no dearer; ``None``: not below the cap.
    horizon_break_even: Decimal | None = None
    #: The (API, self-hosted) pair the recommendation's reason compares, and horizon-basis break-evens by pair.
    reason_pair: tuple[str, str] | None = None
    horizon: dict[tuple[str, str], Decimal | None] = field(default_factory=dict)
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
    #: What the recommendation rests on that was not measured (:mod:`.conditions`).
    conditions: list[Condition] = field(default_factory=list)

    @property
    def headline(self) -> str:
        """The recommendation in a few words, with its headline conditions."""
        label = self.option(self.chosen).label if self.chosen else ""
        suffix = headline_suffix(self.conditions)
        return f"{self.recommendation}: {label}" + (f" — {suffix}" if suffix else "")

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
    d.api_spend_month, d.api_spend_source = _observed_spend(wl, catalogs.prices)
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
    concentration, concentrated = trig.vendor_concentration(
        profiles, org, _monthly_use_spend(catalogs.prices)
    )
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
    _explain_pairs(decisions, portfolio, org)
    for d in decisions:
        _recommend(d, portfolio, org)
    return Decision(
        org, traffic.source, catalogs, today, decisions, portfolio, [concentration],
        plan_notes + _notes(decisions, org),
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


def _observed_spend(wl: WorkloadProfile, prices: PriceCatalog) -> tuple[Decimal, str]:
    """Monthly API spend: recorded costs if the traffic has them, else catalog rates × volume.

    Every provider not run in-house counts (a provider of unknown kind that recorded a cost was paid)."""
    paid = [u for u in wl.models if locus(u.provider_kind) != "self_hosted"]
    recorded = sum((u.cost_usd for u in paid), Decimal(0))
    scale = DAYS_PER_MONTH / wl.days_observed
    if recorded and all(u.unpriced == 0 for u in paid):
        return recorded * scale, "recorded costs"
    priced = (
        "planned volume priced at catalog rates"
        if wl.origin == "planned"
        else "traffic priced at catalog rates"
    )
    total = Decimal(0)
    for u in paid:
        spend = _use_spend(u, wl, prices, recorded=False)
        if spend is None:
            return recorded * scale, f"recorded costs only: no catalog price for {u.provider_kind}/{u.model}"
        total += spend
    return total * scale, priced


def _use_spend(
    use: ModelUse, wl: WorkloadProfile, prices: PriceCatalog, recorded: bool = True
) -> Decimal | None:
    """Spend of one (model, provider) over the observed window: recorded, else priced; ``None``: neither."""
    if recorded and use.cost_usd and use.unpriced == 0:
        return use.cost_usd
    price = prices.price_for(use.provider_kind or "", use.model)
    return None if price is None else use.requests * price_per_request(price, wl)


def _monthly_use_spend(prices: PriceCatalog) -> trig.SpendOf:
    def spend(wl: WorkloadProfile, use: ModelUse) -> Decimal | None:
        total = _use_spend(use, wl, prices)
        return None if total is None else total * DAYS_PER_MONTH / wl.days_observed

    return spend


def _dec(x: Fraction) -> Decimal:
    return Decimal(x.numerator) / Decimal(x.denominator)


KIND_WORDS = {
    "api": "API",
    "managed_open": "managed open-model API",
    "self_hosted": "self-host",
    "hybrid": "hybrid",
}


def _reason_pair(d: WorkloadDecision, portfolio: Portfolio) -> tuple[str, str] | None:
    """The (API, self-hosted) pair the recommendation's reason compares: the recommended option is in it."""
    chosen = d.option(portfolio.assignment[d.profile.name])
    if chosen.kind in ("api", "managed_open") and chosen.key in d.break_evens:
        return chosen.key, d.break_evens[chosen.key].self_hosted
    if chosen.kind == "self_hosted" and d.incumbent:
        return d.incumbent, chosen.key
    return None


def _explain_pairs(decisions: list[WorkloadDecision], portfolio: Portfolio, org: OrgProfile) -> None:
    """Each workload's reason pair, and the horizon-basis break-even of it and of the lowest pair (one batch)."""
    wanted: list[tuple[WorkloadDecision, tuple[str, str]]] = []
    for d in decisions:
        d.reason_pair = _reason_pair(d, portfolio)
        if d.break_even is not None:
            wanted.append((d, (d.break_even.api, d.break_even.self_hosted)))
        if d.reason_pair is not None:
            wanted.append((d, d.reason_pair))
    unique = list(dict.fromkeys((d.profile.name, pair) for d, pair in wanted))
    by_name = {d.profile.name: d for d in decisions}
    found = horizon_break_evens(
        [
            (
                by_name[w].option(a),
                by_name[w].option(s),
                by_name[w].demand,
                volume_cap(by_name[w].profile.requests_per_month),
            )
            for w, (a, s) in unique
        ],
        org,
    )
    for (w, pair), volume in zip(unique, found, strict=True):
        by_name[w].horizon[pair] = volume
    for d in decisions:
        if d.break_even is not None:
            d.horizon_break_even = d.horizon[(d.break_even.api, d.break_even.self_hosted)]


def _recommend(d: WorkloadDecision, portfolio: Portfolio, org: OrgProfile) -> None:
    key = portfolio.assignment[d.profile.name]
    chosen = d.option(key)
    d.chosen = key
    d.recommendation = KIND_WORDS[chosen.kind]
    d.conditions = conditions(chosen, d.profile, org)
    d.why = _why(d, chosen, portfolio, org) + _conditional(d.conditions)


def _conditional(found: list[Condition]) -> str:
    lead = [c.text for c in found if c.headline]
    return f" Conditional: {'; '.join(lead)}." if lead else ""


def _why(d: WorkloadDecision, chosen: Option, portfolio: Portfolio, org: OrgProfile) -> str:
    h = org.horizon_months
    cost = d.tcos[chosen.key].total(h)
    if chosen.kind == "hybrid":
        others = [k for k, o in ((o.key, o) for o in d.options if o.feasible) if o.kind != "hybrid"]
        alternative = min(others, key=d.ranking.__getitem__) if others else None
    elif d.reason_pair is not None:
        api_key, self_key = d.reason_pair
        alternative = self_key if chosen.kind != "self_hosted" else api_key
    else:
        alternative = d.best_self if chosen.kind != "self_hosted" else d.best_api
    if alternative is None:
        return f"{chosen.label}: ${cost:,.0f} over {h} months; the only feasible kind of option for this workload."
    pool = pool_of(chosen)
    shared = [
        w for w, k in portfolio.assignment.items() if w != d.profile.name and pool and pool_of_key(k) == pool
    ]
    if shared:
        return (
            f"{chosen.label}: shares the GPU pool with {', '.join(shared)}; the portfolio adds it at a lower "
            f"marginal cost than any API (stand-alone it would be ${cost:,.0f} over {h} months"
            f"{_break_even_text(d, org)})."
        )
    alt = d.option(alternative)
    alt_cost = d.tcos[alternative].total(h)
    return (
        f"{chosen.label}: ${cost:,.0f} over {h} months vs ${alt_cost:,.0f} for {alt.label}"
        f" at {d.profile.requests_per_month:,.0f} requests/month today{_break_even_text(d, org)}."
    )


def _break_even_text(d: WorkloadDecision, org: OrgProfile) -> str:
    """The reason pair's break-even on both bases, so the totals beside it never seem to contradict it."""
    if d.reason_pair is None:
        return ""
    api_key, self_key = d.reason_pair
    be = d.break_evens[api_key].per_option[self_key] if api_key in d.break_evens else None
    if be is None:
        return ""
    horizon = d.horizon.get(d.reason_pair)
    cap = volume_cap(d.profile.requests_per_month)
    run_rate = (
        f"from {_dec(be.sustained):,.0f} requests/month on the run-rate basis (today's prices, one-offs "
        f"spread over {org.horizon_months} months)"
        if be.sustained is not None
        else f"at no volume below {_dec(cap):,.0f} requests/month on the run-rate basis (today's prices)"
    )
    trend = (
        f"from {horizon:,.0f} requests/month today on the {org.horizon_months}-month basis (growth and "
        f"price trends, as in the totals)"
        if horizon is not None
        else f"at no volume below the cap on the {org.horizon_months}-month basis"
    )
    return f"; {d.option(self_key).label} pays against {d.option(api_key).label} {run_rate}, and {trend}"


def pool_of_key(key: str) -> str | None:
    """The GPU pool of an option key (self-hosted or hybrid), without the option object."""
    if key.startswith("self_hosted:"):
        return key
    if key.startswith("hybrid:"):
        return "self_hosted:" + key.split(":", 2)[2].split("|", 1)[0]
    return None

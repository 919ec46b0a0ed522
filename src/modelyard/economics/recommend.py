"""The recommendation of each workload, in words a CTO can check: the pair compared, both break-even bases,
the conditions it rests on.

The reason always compares the recommended option with its counterpart (the chosen API and its
lowest-breaking self-hosted option, or the chosen self-hosted option and the API the traffic uses today),
and quotes that pair's break-even on the run-rate basis and on the horizon basis side by side.
"""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from modelyard.economics.breakeven import horizon_break_evens, volume_cap
from modelyard.economics.conditions import Condition, conditions
from modelyard.economics.decision import WorkloadDecision
from modelyard.economics.options import Option
from modelyard.economics.org import OrgProfile
from modelyard.economics.portfolio import Portfolio, pool_of


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


def explain_pairs(decisions: list[WorkloadDecision], portfolio: Portfolio, org: OrgProfile) -> None:
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


def recommend(d: WorkloadDecision, portfolio: Portfolio, org: OrgProfile) -> None:
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
